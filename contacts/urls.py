from config.routing import ApiRouter, api_path
from contacts import views

router = ApiRouter()
router.register("contacts/imports", views.ContactImportViewSet, basename="contact-import")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("tags", views.TagViewSet, basename="tag")
router.register("lists", views.ContactListViewSet, basename="list")
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("suppressions", views.SuppressionViewSet, basename="suppression")
router.register("events", views.EventViewSet, basename="event")

urlpatterns = [
    api_path("contacts/import/", views.ContactImportViewSet.as_view({"post": "upload"}), name="contact-import-upload"),
    *router.urls,
]
