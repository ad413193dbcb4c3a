"""Review items store their plan's risk facts and their submitter: the queue's indexed orders."""

from django.conf import settings
from django.db import migrations, models

from reviews.risk import stored_facts_backfill


def fill_stored_risk(apps, schema_editor):
    """Every existing item's risk facts and submitter, scored against today's threshold."""
    policy = apps.get_model("reviews", "ApprovalPolicy").objects.filter(
        tool__isnull=True, task__isnull=True
    ).first()
    threshold = (
        policy.confidence_threshold if policy is not None else settings.PLANNERWEB_GATE_CONFIDENCE
    )
    stored_facts_backfill(
        apps.get_model("reviews", "ReviewItem").objects.all(),
        apps.get_model("runs", "Step").objects.all(),
        apps.get_model("runs", "Run").objects.all(),
        low_confidence=threshold,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0006_elicitation_kind'),
        ('runs', '0023_task_confirm_plan'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='reviewitem',
            name='risk_min_confidence',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='risk_production',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='risk_score',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='risk_sensitive',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='submitter_name',
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddIndex(
            model_name='reviewitem',
            index=models.Index(condition=models.Q(('status', 'open')), fields=['-risk_score', 'due_at', 'id'], name='review_open_by_risk'),
        ),
        migrations.AddIndex(
            model_name='reviewitem',
            index=models.Index(condition=models.Q(('status', 'open')), fields=['submitter_name', 'created_at', 'id'], name='review_open_by_submitter'),
        ),
        migrations.AddIndex(
            model_name='reviewitem',
            index=models.Index(fields=['created_at', 'id'], name='review_by_created'),
        ),
        migrations.RunPython(fill_stored_risk, migrations.RunPython.noop, elidable=True),
    ]
