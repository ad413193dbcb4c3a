from django.urls import path

from runs import views
from runs.views import answer as answer_views
from runs.views import confirm as confirm_views
from runs.views import evaluations as evaluation_views
from runs.views import steps as steps_views
from runs.views import tokens as tokens_views
from runs.views.metrics import metrics
from runs.views.overview import overview
from runs.views.playbooks import run_forecast_fragment, run_save_playbook

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("runs/new/", views.run_new, name="new"),
    path("runs/new/check/", views.run_new_check, name="check"),
    path("runs/new/words/", views.run_new_words, name="words"),
    path("runs/new/task/", views.run_new_task, name="new_task"),
    path("runs/<int:run_id>/", views.run_detail, name="detail"),
    path("runs/<int:run_id>/live/", views.run_live, name="live"),
    path("runs/<int:run_id>/tree/", views.run_tree, name="tree"),
    path("runs/<int:run_id>/transcript/", views.run_transcript, name="transcript"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/retry/", views.run_retry, name="retry"),
    path("runs/<int:run_id>/golden/", evaluation_views.run_save_golden, name="save_golden"),
    path("evaluations/", evaluation_views.evaluation_list, name="evaluations"),
    path("runs/<int:run_id>/playbook/", run_save_playbook, name="save_playbook"),
    path("runs/<int:run_id>/forecast/", run_forecast_fragment, name="forecast"),
    path("runs/<int:run_id>/answer/", answer_views.run_answer, name="answer"),
    path("runs/<int:run_id>/confirm/", confirm_views.run_confirm, name="confirm"),
    path("runs/<int:run_id>/discard/", confirm_views.run_discard, name="discard"),
    path(
        "runs/<int:run_id>/elicitations/<int:item_id>/",
        answer_views.run_elicitation_answer,
        name="elicitation",
    ),
    path("runs/<int:run_id>/steps/<int:step_id>/", steps_views.step_detail, name="step"),
    path(
        "runs/<int:run_id>/steps/<int:step_id>/<str:stream>.txt",
        steps_views.step_output,
        name="step_output",
    ),
    path("tools/", views.tool_list, name="tools"),
    path("metrics", metrics, name="metrics"),
    path("overview/", overview, name="overview"),
    path("tokens/", tokens_views.token_page, name="tokens"),
    path("tokens/<int:token_id>/revoke/", tokens_views.token_revoke, name="token_revoke"),
]
