"""Drip sequences, their enrollments and the organization's sending policy over REST.

The views only translate: every rule and every write is in `campaigns.sequences`, whose
ValidationError (named by field path), ConflictError (409) and missing contacts (404) become
responses here or in `config.api.exception_handler`."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.tenancy import Area, TenantScopedViewMixin
from campaigns import sequences
from campaigns.models import Enrollment, EnrollmentStatus, SendingPolicy, Sequence, SequenceStep
from campaigns.sequence_serializers import (
    EnrollmentSerializer,
    EnrollResultSerializer,
    EnrollSerializer,
    SendingPolicySerializer,
    SendingPolicyWriteSerializer,
    SequenceSerializer,
    SequenceStatsSerializer,
    SequenceWriteSerializer,
)
from config.schema import conflict
from contacts.models import Contact

UUID_REGEX = r"[0-9a-fA-F-]{32,36}"
# Enrollment ids are bigints: longer digit strings are no id (a 404, never a database error).
ENROLLMENT_ID_REGEX = r"[0-9]{1,18}"
E = EnrollmentStatus


@extend_schema_view(
    destroy=extend_schema(
        responses={204: None, 409: conflict("Only a draft sequence can be deleted; archive the others.")}
    ),
)
class SequenceViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Drip sequences: ordered steps sent to each enrolled contact with delays between them.
    `steps`, when given, replaces the whole list; only drafts can be deleted (archive the others)."""

    permission_area = Area.CAMPAIGNS
    serializer_class = SequenceSerializer
    queryset = Sequence.objects.prefetch_related(Prefetch("steps", queryset=SequenceStep.objects.order_by("order")))
    filterset_fields = ["status", "channel"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_REGEX

    def get_serializer_class(self):
        if self.action in ("create", "partial_update"):
            return SequenceWriteSerializer
        return SequenceSerializer

    def _respond(self, sequence: Sequence, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=sequence.pk)
        return Response(SequenceSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    def _save(self, sequence: Sequence, data: dict) -> Sequence:
        for name in ("name", "channel"):
            if name in data:
                setattr(sequence, name, data[name])
        return sequences.sequence_save(
            sequence=sequence,
            trigger=data.get("trigger"),
            settings=data.get("settings"),
            steps=data.get("steps"),
            by=self.request.user,
        )

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {
            **self.get_serializer_context(),
            "enrollment_counts": sequences.enrollment_counts_by_sequence([sequence.pk for sequence in page]),
        }
        return self.get_paginated_response(SequenceSerializer(page, many=True, context=context).data)

    @extend_schema(request=SequenceWriteSerializer, responses={201: SequenceSerializer})
    def create(self, request, *args, **kwargs):
        body = SequenceWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sequence = Sequence(organization=request.organization)
        return self._respond(self._save(sequence, body.validated_data), status.HTTP_201_CREATED)

    @extend_schema(
        request=SequenceWriteSerializer,
        responses={200: SequenceSerializer, 409: conflict("An archived sequence cannot be changed.")},
    )
    def partial_update(self, request, *args, **kwargs):
        sequence = self.get_object()
        body = SequenceWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return self._respond(self._save(sequence, body.validated_data))

    def perform_destroy(self, instance):
        sequences.sequence_delete(sequence=instance)

    @extend_schema(
        request=None,
        responses={
            200: SequenceSerializer,
            409: conflict("Only a draft or paused sequence can be activated, on a channel with a configured backend."),
        },
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Draft or paused -> active (409 otherwise; 400 naming `steps` without steps)."""
        return self._respond(sequences.sequence_activate(sequence=self.get_object(), by=request.user))

    @extend_schema(
        request=None, responses={200: SequenceSerializer, 409: conflict("Only an active sequence can be paused.")}
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Active -> paused: nothing is written or sent until it is activated again (409 otherwise)."""
        return self._respond(sequences.sequence_pause(sequence=self.get_object(), by=request.user))

    @extend_schema(
        request=None, responses={200: SequenceSerializer, 409: conflict("The sequence is archived already.")}
    )
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Any -> archived: active enrollments stop, unsent step messages are cancelled (409 when archived)."""
        return self._respond(sequences.sequence_archive(sequence=self.get_object(), by=request.user))

    @extend_schema(
        request=EnrollSerializer,
        responses={
            202: EnrollResultSerializer,
            409: conflict("Only an active sequence with a manual or api trigger enrolls contacts by hand."),
        },
    )
    @action(detail=True, methods=["post"])
    def enroll(self, request, pk=None):
        """Enroll contacts by hand (active sequences with a manual or api trigger, else 409). Contacts
        who may not be messaged, or are or were already in it, are counted under `skipped`."""
        sequence = self.get_object()  # another organization's id is a 404 whatever the body
        body = EnrollSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            public_ids = {uuid.UUID(value) for value in body.validated_data["contact_ids"]}
        except ValueError:
            raise NotFound("Unknown contact.") from None
        found = dict(
            Contact.objects.active()
            .filter(organization=request.organization, public_id__in=public_ids)
            .values_list("public_id", "pk")
        )
        if len(found) != len(public_ids):
            raise NotFound("Unknown contact.")
        try:
            result = sequences.sequence_enroll(sequence=sequence, contact_ids=list(found.values()), by=request.user)
        except Contact.DoesNotExist:
            raise NotFound("Unknown contact.") from None
        return Response(EnrollResultSerializer(result).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=E.values, description="Enrollment status.")],
        responses={200: EnrollmentSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def enrollments(self, request, pk=None):
        """The sequence's enrollments, oldest first."""
        sequence = self.get_object()
        queryset = Enrollment.objects.filter(sequence=sequence, organization=request.organization).select_related(
            "contact"
        )
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in E.values:
                raise ValidationError({"status": [f"Must be one of: {', '.join(E.values)}."]})
            queryset = queryset.filter(status=wanted)
        page = self.paginate_queryset(queryset.order_by("id"))
        return self.get_paginated_response(EnrollmentSerializer(page, many=True).data)

    @extend_schema(responses={200: SequenceStatsSerializer})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def stats(self, request, pk=None):
        """Per step: messages sent, opened, clicked, replied and enrollments stopped; enrollment counts."""
        sequence = self.get_object()
        figures = {
            "steps": sequences.sequence_stats(sequence=sequence),
            "enrollments": sequences.enrollment_counts(sequence=sequence),
        }
        return Response(SequenceStatsSerializer(figures).data)


class EnrollmentViewSet(TenantScopedViewMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One contact's way through a sequence."""

    permission_area = Area.CAMPAIGNS
    serializer_class = EnrollmentSerializer
    queryset = Enrollment.objects.select_related("contact")
    lookup_value_regex = ENROLLMENT_ID_REGEX

    @extend_schema(
        request=None, responses={200: EnrollmentSerializer, 409: conflict("Only an active enrollment can be stopped.")}
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Stop an active enrollment by hand (409 otherwise); its unsent step messages are cancelled."""
        enrollment = sequences.enrollment_stop(enrollment=self.get_object(), by=request.user)
        return Response(EnrollmentSerializer(self.get_queryset().get(pk=enrollment.pk)).data)


class SendingPolicyView(TenantScopedViewMixin, generics.GenericAPIView):
    """The organization's business hours (for sequences that respect them) and its frequency cap.
    Every member reads it; owners and admins change it."""

    permission_area = Area.ORGANIZATION
    serializer_class = SendingPolicySerializer
    queryset = SendingPolicy.objects.all()
    pagination_class = None
    filter_backends: list = []

    @extend_schema(responses={200: SendingPolicySerializer})
    def get(self, request):
        return Response(SendingPolicySerializer(sequences.sending_policy(request.organization.pk)).data)

    @extend_schema(request=SendingPolicyWriteSerializer, responses={200: SendingPolicySerializer})
    def patch(self, request):
        body = SendingPolicyWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        policy = sequences.sending_policy_save(
            organization=request.organization, by=request.user, **body.validated_data
        )
        return Response(SendingPolicySerializer(policy).data)
