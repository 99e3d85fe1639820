from django.urls import re_path
from rest_framework.routers import SimpleRouter

from campaigns import sequence_views, views

router = SimpleRouter()
# API.md writes actions without a trailing slash (/campaigns/{id}/launch); accept both forms.
router.trailing_slash = "/?"
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("messages", views.MessageViewSet, basename="message")
router.register("sending-domains", views.SendingDomainViewSet, basename="sending-domain")
router.register("sequences", sequence_views.SequenceViewSet, basename="sequence")
router.register("enrollments", sequence_views.EnrollmentViewSet, basename="enrollment")

urlpatterns = [
    re_path(r"^sending-policy/?$", sequence_views.SendingPolicyView.as_view(), name="sending-policy"),
    *router.urls,
]
