from django.urls import re_path
from rest_framework.routers import SimpleRouter

from callbacks import views

# Every path answers as API.md writes it and with a trailing slash, without redirects.
router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only knows "/" or ""
router.register("callbacks", views.CallbackViewSet, basename="callback")

urlpatterns = [
    # With and without a trailing slash, like every path of the API.
    re_path(r"^callbacks/settings(?:/)?$", views.CallbackSettingsView.as_view(), name="callback-settings"),
    re_path(r"^callbacks/metrics(?:/)?$", views.AgentMetricsView.as_view(), name="callback-metrics"),
    *router.urls,
]
