from django.urls import path
from rest_framework.routers import DynamicRoute, SimpleRouter

from callbacks import views


class ContractRouter(SimpleRouter):
    """List and detail keep the trailing slash (`/callbacks/`, `/callbacks/{id}/`); actions are
    spelled as the API contract has them, without one (`/callbacks/{id}/assign`)."""

    routes = [
        route._replace(url=r"^{prefix}/{lookup}/{url_path}$")
        if isinstance(route, DynamicRoute) and route.detail
        else route
        for route in SimpleRouter.routes
    ]


router = ContractRouter(trailing_slash=True)
router.register("callbacks", views.CallbackViewSet, basename="callback")

urlpatterns = [
    path("callbacks/settings", views.CallbackSettingsView.as_view(), name="callback-settings"),
    path("callbacks/metrics", views.AgentMetricsView.as_view(), name="callback-metrics"),
    *router.urls,
]
