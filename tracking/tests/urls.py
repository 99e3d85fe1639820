"""The project's URLs with tracking mounted as config/urls.py mounts it, for the tracking tests."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("api/v1/", include("tracking.urls")),
    path("anymail/", include("tracking.anymail_urls")),
    path("", include("tracking.public_urls")),
    *project_urlpatterns,
]
