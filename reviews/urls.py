from django.urls import path

from reviews import views

app_name = "reviews"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<int:item_id>/", views.item_detail, name="item"),
    path("<int:item_id>/claim/", views.item_claim, name="claim"),
    path("<int:item_id>/assign/", views.item_assign, name="assign"),
    path("<int:item_id>/approve/", views.item_approve, name="approve"),
    path("<int:item_id>/reject/", views.item_reject, name="reject"),
    path("<int:item_id>/edit/", views.item_edit, name="edit"),
    path("<int:item_id>/preview/", views.item_preview, name="preview"),
    path("<int:item_id>/save-approve/", views.item_save_approve, name="save_approve"),
    path("<int:item_id>/resolve/", views.item_resolve, name="resolve"),
    path("audit/", views.audit_log, name="audit"),
    path("audit.csv", views.audit_csv, name="audit_csv"),
]
