"""The project's URLs with tracking's public endpoints and its batching Anymail URLs mounted."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("anymail/", include("tracking.anymail_urls")),
    path("", include("tracking.public_urls")),
    *project_urlpatterns,
]
