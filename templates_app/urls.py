from django.urls import path
from rest_framework.routers import SimpleRouter

from templates_app import views

router = SimpleRouter(trailing_slash=True)
router.register("templates", views.MessageTemplateViewSet, basename="template")
router.register("layouts", views.LayoutViewSet, basename="layout")

urlpatterns = [
    path("templates/<uuid:pk>/preview", views.TemplatePreviewView.as_view(), name="template-preview"),
    *router.urls,
]
