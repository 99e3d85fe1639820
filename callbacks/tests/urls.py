"""The project's URLs plus the public callback pages, for tests that run before they are mounted."""

from django.urls import include, path

urlpatterns = [
    path("", include("callbacks.public_urls")),
    path("", include("config.urls")),
]
