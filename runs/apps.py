from django.apps import AppConfig

from runs.telemetry import tracing


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # App loading: dispatch learns the task bodies that call back into the lifecycle.
        from runs import tasks
        from runs.lifecycle import dispatch  # the same: dispatch sits below the task bodies

        dispatch.use_tasks(execute=tasks.execute_run, resume=tasks.resume_run)
        tracing.setup_from_env()  # off unless the OTEL_* variables ask for traces
