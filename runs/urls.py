from django.urls import path

from runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("runs/new/", views.run_new, name="new"),
    path("runs/new/check/", views.run_new_check, name="check"),
    path("runs/<int:run_id>/", views.run_detail, name="detail"),
    path("runs/<int:run_id>/live/", views.run_live, name="live"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("tools/", views.tool_list, name="tools"),
]
