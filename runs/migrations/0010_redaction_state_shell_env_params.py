"""A run's redaction state; shell tools list the parameters their scripts read by name.

Shell tools used to export every lowercase parameter under its own name; now only
the names a tool's ``env_params`` lists are. Existing shell tools get the lowercase
parameters of their schema listed (minus names the system acts on), so their
scripts keep reading ``"$db"``.
"""

import re

from django.db import migrations, models

_BARE = re.compile(r"^[a-z_][a-z0-9_]*$")
_PROTECTED = {"path", "home", "lang", "lc_all", "tz", "tmpdir", "ifs", "env", "bash_env", "cdpath"}


def _listable(name: str) -> bool:
    return (
        bool(_BARE.match(name))
        and name not in _PROTECTED
        and not name.startswith(("ld_", "dyld_", "bash_func_", "param_", "python", "perl5"))
        and not name.endswith("_proxy")
    )


def list_env_params(apps, schema_editor):
    Tool = apps.get_model("runs", "Tool")
    for tool in Tool.objects.filter(kind="shell"):
        config = tool.config if isinstance(tool.config, dict) else None
        if config is None or "env_params" in config:
            continue
        props = (tool.parameters_schema or {}).get("properties")
        names = sorted(n for n in props or {} if isinstance(n, str) and _listable(n))
        if names:
            tool.config = {**config, "env_params": names}
            tool.save(update_fields=["config"])


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0009_rollback_undo_read_only_cancel_rollback"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="redaction",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(list_env_params, migrations.RunPython.noop),
    ]
