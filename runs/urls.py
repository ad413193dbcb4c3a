from django.urls import path

from runs import views
from runs.views import steps as steps_views
from runs.views import tokens as tokens_views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("runs/new/", views.run_new, name="new"),
    path("runs/new/check/", views.run_new_check, name="check"),
    path("runs/new/task/", views.run_new_task, name="new_task"),
    path("runs/<int:run_id>/", views.run_detail, name="detail"),
    path("runs/<int:run_id>/live/", views.run_live, name="live"),
    path("runs/<int:run_id>/transcript/", views.run_transcript, name="transcript"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/retry/", views.run_retry, name="retry"),
    path("runs/<int:run_id>/steps/<int:step_id>/", steps_views.step_detail, name="step"),
    path(
        "runs/<int:run_id>/steps/<int:step_id>/<str:stream>.txt",
        steps_views.step_output,
        name="step_output",
    ),
    path("tools/", views.tool_list, name="tools"),
    path("tokens/", tokens_views.token_page, name="tokens"),
    path("tokens/<int:token_id>/revoke/", tokens_views.token_revoke, name="token_revoke"),
]
