from django.urls import re_path
from rest_framework.routers import SimpleRouter

from templates_app import views

# Every path answers as API.md writes it and with a trailing slash, without redirects.
router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only knows "/" or ""
router.register("templates", views.MessageTemplateViewSet, basename="template")
router.register("layouts", views.LayoutViewSet, basename="layout")

urlpatterns = [
    re_path(
        r"^templates/(?P<pk>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/preview/?$",
        views.TemplatePreviewView.as_view(),
        name="template-preview",
    ),
    *router.urls,
]
