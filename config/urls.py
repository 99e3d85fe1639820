from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.health import health
from config.routing import api_path

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("contacts.urls")),
    path("", include("templates_app.urls")),
    path("", include("campaigns.urls")),
    path("", include("callbacks.urls")),
    path("", include("tracking.urls")),
    path("", include("analytics.urls")),
    path("", include("webhooks.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # Swagger UI and Redoc come from drf-spectacular-sidecar's static files: no CDN, works offline.
    api_path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    api_path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    api_path(
        "api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"
    ),
    path("anymail/", include("tracking.anymail_urls")),
    path("", include("tracking.public_urls")),
    path("", include("callbacks.public_urls")),
    path("health", health, name="health"),
]

# Under /api/ errors answer {"detail": ...} JSON as API.md says (unknown routes, malformed ids,
# crashes); elsewhere Django's HTML pages.
handler400 = "config.http_errors.bad_request"
handler403 = "config.http_errors.permission_denied"
handler404 = "config.http_errors.not_found"
handler500 = "config.http_errors.server_error"

admin.site.site_header = "Campaign Central"
admin.site.site_title = "Campaign Central"
admin.site.index_title = "Back office"
