from django.urls import re_path
from rest_framework.routers import SimpleRouter

from contacts import views

# Every path answers as API.md writes it and with a trailing slash, without redirects.
router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only knows "/" or ""
router.register("contacts/imports", views.ContactImportViewSet, basename="contact-import")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("tags", views.TagViewSet, basename="tag")
router.register("lists", views.ContactListViewSet, basename="list")
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("suppressions", views.SuppressionViewSet, basename="suppression")
router.register("events", views.EventViewSet, basename="event")

urlpatterns = [
    re_path(
        r"^contacts/import/?$", views.ContactImportViewSet.as_view({"post": "upload"}), name="contact-import-upload"
    ),
    *router.urls,
]
