from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response

from accounts.models import Role
from accounts.tenancy import Area, TenantScopedViewMixin, request_membership
from callbacks import selectors, services
from callbacks.models import CallbackPriority, CallbackRequest, CallbackStatus, overdue_q
from callbacks.serializers import (
    ActivitySerializer,
    AgentDaySerializer,
    AssignSerializer,
    CallbackCreateSerializer,
    CallbackSerializer,
    CallbackSettingsSerializer,
    CompleteSerializer,
    MetricsQuerySerializer,
    NoteSerializer,
    StatusChangeSerializer,
)
from config.schema import conflict
from contacts.models import Contact

UUID_REGEX = r"[0-9a-fA-F-]{32,36}"
DEFAULT_METRICS_DAYS = 30
MAX_METRICS_DAYS = 366


class CallbackFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=CallbackStatus.choices)
    priority = django_filters.MultipleChoiceFilter(choices=CallbackPriority.choices)
    agent = django_filters.CharFilter(method="filter_agent", help_text='Agent user id, or "me".')
    unassigned = django_filters.BooleanFilter(field_name="assigned_to", lookup_expr="isnull")
    overdue = django_filters.BooleanFilter(method="filter_overdue", help_text="SLA breached.")
    contact = django_filters.UUIDFilter(field_name="contact__public_id")
    campaign = django_filters.UUIDFilter(field_name="campaign_id")

    class Meta:
        model = CallbackRequest
        fields = ["status", "priority", "agent", "unassigned", "overdue", "contact", "campaign"]

    def filter_agent(self, queryset, name, value):
        if value == "me":
            return queryset.filter(assigned_to=self.request.user)
        try:
            return queryset.filter(assigned_to_id=value)
        except DjangoValidationError:
            raise DRFValidationError({"agent": ['A user id or "me".']}) from None

    def filter_overdue(self, queryset, name, value):
        breached = overdue_q(timezone.now())
        return queryset.filter(breached) if value else queryset.exclude(breached)


class CallbackViewSet(
    TenantScopedViewMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Callback requests, in queue order: priority (urgent first), then SLA due."""

    permission_area = Area.CALLBACKS
    serializer_class = CallbackSerializer
    queryset = CallbackRequest.objects.all()
    filterset_class = CallbackFilter
    lookup_value_regex = UUID_REGEX

    def get_queryset(self):
        return selectors.callback_queue(super().get_queryset())

    def _reload(self, callback: CallbackRequest) -> Response:
        return Response(CallbackSerializer(self.get_queryset().get(pk=callback.pk)).data)

    @extend_schema(request=CallbackCreateSerializer, responses={201: CallbackSerializer})
    def create(self, request, *args, **kwargs):
        body = CallbackCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        contact = Contact.objects.active().filter(organization=request.organization, public_id=data["contact"]).first()
        if contact is None:
            raise DRFValidationError({"contact": ["Unknown contact."]})
        window = data["preferred_time"] or {}
        callback = services.callback_create(
            organization=request.organization,
            contact=contact,
            phone=data["phone"],
            reason=data["reason"],
            urgency=data["urgency"],
            preferred_start=window.get("start"),
            preferred_end=window.get("end"),
            campaign_id=data.get("campaign"),
            source=data["source"],
            by=request.user,
        )
        body = CallbackSerializer(self.get_queryset().get(pk=callback.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=AssignSerializer,
        responses={200: CallbackSerializer, 409: conflict("The callback is closed or being called.")},
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Assign to an agent of the organization (agents can only take requests themselves)."""
        callback = self.get_object()  # another organization's id is a 404 whatever the body holds
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        callback = services.callback_assign(
            callback=callback,
            agent_id=body.validated_data["agent"],
            by=request.user,
            note=body.validated_data["note"],
        )
        return self._reload(callback)

    @extend_schema(
        request=StatusChangeSerializer,
        responses={200: CallbackSerializer, 409: conflict("The status cannot follow the current one.")},
    )
    @action(detail=True, methods=["post"], url_path="status")
    def change_status(self, request, pk=None):
        """Move along the status machine; an illegal move is 409."""
        callback = self.get_object()  # another organization's id is a 404 whatever the body holds
        body = StatusChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        callback = services.callback_transition(
            callback=callback,
            to_status=body.validated_data["status"],
            by=request.user,
            note=body.validated_data["note"],
            resolution=body.validated_data["resolution"],
        )
        return self._reload(callback)

    @extend_schema(
        request=CompleteSerializer,
        responses={200: CallbackSerializer, 409: conflict("Only a callback in progress can be completed.")},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """Close a request in progress with its resolution; from any other status 409."""
        callback = self.get_object()  # another organization's id is a 404 whatever the body holds
        body = CompleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        callback = services.callback_complete(
            callback=callback,
            resolution=body.validated_data["resolution"],
            by=request.user,
            note=body.validated_data["note"],
        )
        return self._reload(callback)

    @extend_schema(responses={200: ActivitySerializer(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def activities(self, request, pk=None):
        """Everything that happened to the request, oldest first."""
        page = self.paginate_queryset(selectors.callback_activities(callback=self.get_object()))
        return self.get_paginated_response(ActivitySerializer(page, many=True).data)

    @extend_schema(request=NoteSerializer, responses={201: ActivitySerializer})
    @activities.mapping.post
    def add_note(self, request, pk=None):
        """Add a note to the activity log."""
        callback = self.get_object()  # another organization's id is a 404 whatever the body holds
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        activity = services.callback_add_note(callback=callback, note=body.validated_data["note"], by=request.user)
        return Response(ActivitySerializer(activity).data, status=status.HTTP_201_CREATED)


class CallbackSettingsView(TenantScopedViewMixin, generics.RetrieveUpdateAPIView):
    """Business hours, SLA hours per priority and scoring inputs. Owners, admins and managers edit."""

    permission_area = Area.CALLBACKS
    serializer_class = CallbackSettingsSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return services.callback_settings_get(organization_id=self.request.organization.pk)

    def update(self, request, *args, **kwargs):
        if not services.can_supervise(request_membership(request).role):
            raise PermissionDenied("Only owners, admins and managers change callback settings.")
        return super().update(request, *args, **kwargs)

    def perform_update(self, serializer):
        serializer.instance = services.callback_settings_update(
            organization_id=self.request.organization.pk, data=serializer.validated_data
        )


class AgentMetricsView(TenantScopedViewMixin, generics.GenericAPIView):
    """Per agent per day: first contacts and their time, completed requests and time to resolution.
    Agents see their own rows."""

    permission_area = Area.CALLBACKS
    serializer_class = AgentDaySerializer
    queryset = CallbackRequest.objects.all()
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day (default: 30 days ago)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, included (default: today)."),
            OpenApiParameter("agent", OpenApiTypes.UUID, description="One agent's user id."),
        ],
        responses={200: AgentDaySerializer(many=True)},
    )
    def get(self, request):
        params = {
            key: value
            for key, value in {
                "date_from": request.query_params.get("from"),
                "date_to": request.query_params.get("to"),
                "agent": request.query_params.get("agent"),
            }.items()
            if value
        }
        query = MetricsQuerySerializer(data=params)
        if not query.is_valid():
            names = {"date_from": "from", "date_to": "to"}
            raise DRFValidationError({names.get(k, k): v for k, v in query.errors.items()})
        organization = request.organization
        today = timezone.now().astimezone(ZoneInfo(organization.timezone)).date()
        date_to = query.validated_data.get("date_to", today)
        date_from = query.validated_data.get("date_from", date_to - timedelta(days=DEFAULT_METRICS_DAYS - 1))
        if date_from > date_to or (date_to - date_from).days >= MAX_METRICS_DAYS:
            raise DRFValidationError({"from": [f"From must be on or before to, at most {MAX_METRICS_DAYS} days."]})
        agent_id = query.validated_data.get("agent")
        if request_membership(request).role == Role.AGENT:
            agent_id = request.user.pk
        rows = selectors.agent_daily_metrics(
            organization=organization, date_from=date_from, date_to=date_to, agent_id=agent_id
        )
        return Response(AgentDaySerializer(rows, many=True).data)
