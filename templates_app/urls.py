from config.routing import ApiRouter, api_path
from templates_app import views

router = ApiRouter()
router.register("templates", views.MessageTemplateViewSet, basename="template")
router.register("layouts", views.LayoutViewSet, basename="layout")

urlpatterns = [
    api_path("templates/<uuid:pk>/preview/", views.TemplatePreviewView.as_view(), name="template-preview"),
    *router.urls,
]
