"""Idempotency keys: one per step, sent with every call of its tool; tools that honour them.

Adding the column gives every existing step the same default value, so the
steps already stored get a key of their own afterwards.
"""

import uuid

from django.db import migrations, models


def distinct_keys(apps, schema_editor):
    Step = apps.get_model("runs", "Step")
    batch = []
    for step in Step.objects.only("pk").iterator(chunk_size=2000):
        step.idempotency_key = uuid.uuid4()
        batch.append(step)
        if len(batch) >= 2000:
            Step.objects.bulk_update(batch, ["idempotency_key"])
            batch = []
    if batch:
        Step.objects.bulk_update(batch, ["idempotency_key"])


class Migration(migrations.Migration):
    dependencies = [("runs", "0011_resource_locks")]

    operations = [
        migrations.AddField(
            model_name="step",
            name="idempotency_key",
            field=models.UUIDField(default=uuid.uuid4, editable=False),
        ),
        migrations.RunPython(distinct_keys, migrations.RunPython.noop),
        migrations.AddField(
            model_name="tool",
            name="honours_idempotency_key",
            field=models.BooleanField(default=False),
        ),
    ]
