from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics

from accounts.tenancy import Area, TenantScopedViewMixin
from campaigns.models import Message
from tracking import selectors
from tracking.models import MessageEvent
from tracking.serializers import MessageEventSerializer


@extend_schema(tags=["messages"])
class MessageEventListView(TenantScopedViewMixin, generics.ListAPIView):
    """A message's events (opens, clicks, provider events), newest first. Another organization's
    message is a 404."""

    permission_area = Area.CAMPAIGNS
    serializer_class = MessageEventSerializer
    queryset = MessageEvent.objects.all()
    filterset_fields = ["type", "machine"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return MessageEvent.objects.none()
        organization = self.request.organization
        message_id = self.kwargs["message_id"]
        if not Message.objects.filter(pk=message_id, organization=organization).exists():
            raise Http404
        return selectors.message_events(organization_id=organization.pk, message_id=message_id)
