from analytics import views
from config.routing import ApiRouter, api_path

router = ApiRouter()
router.register("conversions", views.ConversionViewSet, basename="conversion")

urlpatterns = [
    api_path("analytics/dashboard/", views.DashboardView.as_view(), name="analytics-dashboard"),
    api_path("analytics/campaigns/<uuid:pk>/", views.CampaignAnalyticsView.as_view(), name="analytics-campaign"),
    api_path("analytics/export/", views.ExportView.as_view(), name="analytics-export"),
    *router.urls,
]
