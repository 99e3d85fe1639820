from campaigns import sequence_views, views
from config.routing import ApiRouter, api_path

router = ApiRouter()
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("messages", views.MessageViewSet, basename="message")
router.register("sending-domains", views.SendingDomainViewSet, basename="sending-domain")
router.register("sequences", sequence_views.SequenceViewSet, basename="sequence")
router.register("enrollments", sequence_views.EnrollmentViewSet, basename="enrollment")

urlpatterns = [
    api_path("sending-policy/", sequence_views.SendingPolicyView.as_view(), name="sending-policy"),
    *router.urls,
]
