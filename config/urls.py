from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import health

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("contacts.urls")),
    path("", include("templates_app.urls")),
    path("", include("campaigns.urls")),
    path("", include("callbacks.urls")),
    path("", include("tracking.urls")),
    path("", include("analytics.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("anymail/", include("tracking.anymail_urls")),
    path("", include("tracking.public_urls")),
    path("", include("callbacks.public_urls")),
    path("health", health, name="health"),
]

# Unknown /api/ routes and malformed ids answer {"detail": ...} as API.md says, never an HTML page.
handler404 = "config.api.not_found"

admin.site.site_header = "Campaign Central"
admin.site.site_title = "Campaign Central"
admin.site.index_title = "Back office"
