from django.urls import re_path
from rest_framework.routers import SimpleRouter

from analytics import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("conversions", views.ConversionViewSet, basename="conversion")

urlpatterns = [
    re_path(r"^analytics/dashboard/?$", views.DashboardView.as_view(), name="analytics-dashboard"),
    re_path(
        rf"^analytics/campaigns/(?P<pk>{views.UUID_REGEX})/?$",
        views.CampaignAnalyticsView.as_view(),
        name="analytics-campaign",
    ),
    re_path(r"^analytics/export/?$", views.ExportView.as_view(), name="analytics-export"),
    *router.urls,
]
