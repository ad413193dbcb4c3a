from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

from plannerweb.api import api
from runs import views as run_views

# The 403 page says which role a page needs; Django's default would only render the template.
handler403 = "runs.views.errors.forbidden"

urlpatterns = [
    # Browsers ask for /favicon.ico on pages without a link tag (JSON, API docs): the same icon.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("accounts/login/", run_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reviews/", include("reviews.urls")),
    path("", include("runs.urls")),
]
