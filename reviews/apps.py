from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        # App loading: notifications learn the task body that calls back into them.
        from reviews import notifications, tasks

        notifications.use_tasks(deliver=tasks.deliver_notification)
