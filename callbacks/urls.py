from callbacks import views
from config.routing import ApiRouter, api_path

router = ApiRouter()
router.register("callbacks", views.CallbackViewSet, basename="callback")

urlpatterns = [
    api_path("callbacks/settings", views.CallbackSettingsView.as_view(), name="callback-settings"),
    api_path("callbacks/metrics", views.AgentMetricsView.as_view(), name="callback-metrics"),
    *router.urls,
]
