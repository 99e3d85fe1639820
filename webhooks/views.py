from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from accounts.models import Role
from accounts.tenancy import TenantScopedViewMixin, request_membership
from webhooks import selectors, services
from webhooks.models import Endpoint
from webhooks.serializers import (
    DeliverySerializer,
    EndpointCreatedSerializer,
    EndpointSerializer,
    EndpointWriteSerializer,
)

UUID_REGEX = r"[0-9a-fA-F-]{32,36}"
WEBHOOK_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class ManagesWebhooks(BasePermission):
    """Webhooks carry the organization's data to outside systems: owners and admins only, reading too."""

    message = "Only owners and admins manage webhooks."

    def has_permission(self, request, view) -> bool:
        return request_membership(request).role in WEBHOOK_ROLES


class EndpointViewSet(
    TenantScopedViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Outgoing webhook endpoints of the organization, with their delivery logs."""

    permission_classes = [IsAuthenticated, ManagesWebhooks]
    serializer_class = EndpointSerializer
    queryset = Endpoint.objects.all()
    lookup_value_regex = UUID_REGEX
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=EndpointWriteSerializer, responses={201: EndpointCreatedSerializer})
    def create(self, request, *args, **kwargs):
        body = EndpointWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        endpoint = services.endpoint_create(
            organization=request.organization,
            url=data["url"],
            event_types=data["events"],
            description=data.get("description", ""),
            by=request.user,
        )
        return Response(EndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EndpointWriteSerializer, responses={200: EndpointSerializer})
    def partial_update(self, request, *args, **kwargs):
        endpoint = self.get_object()
        body = EndpointWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, by=request.user, **body.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    def perform_destroy(self, instance):
        services.endpoint_delete(endpoint=instance, by=self.request.user)

    @extend_schema(request=None, responses={200: DeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The endpoint's deliveries, newest first: status, attempts, last response."""
        queryset = selectors.endpoint_deliveries(endpoint=self.get_object())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a `webhook.test` event to the endpoint now."""
        delivery = services.endpoint_send_test(endpoint=self.get_object(), by=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
