from rest_framework.routers import SimpleRouter

from campaigns import views

router = SimpleRouter()
# API.md writes actions without a trailing slash (/campaigns/{id}/launch); accept both forms.
router.trailing_slash = "/?"
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("messages", views.MessageViewSet, basename="message")
router.register("sending-domains", views.SendingDomainViewSet, basename="sending-domain")

urlpatterns = router.urls
