from __future__ import annotations

import uuid
from contextlib import contextmanager

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.tenancy import Area, TenantScopedViewMixin
from config.clientip import client_address
from config.schema import conflict
from contacts import selectors, services
from contacts.models import Contact, ContactList, ContactStatus, ImportJob, Segment, Suppression, Tag
from contacts.segments import compile_rules
from contacts.serializers import (
    ContactIdsSerializer,
    ContactListSerializer,
    ContactSampleSerializer,
    ContactSerializer,
    EventAcceptedSerializer,
    EventSerializer,
    ImportErrorSerializer,
    ImportJobSerializer,
    ImportUploadSerializer,
    MembersChangedSerializer,
    SegmentPreviewSerializer,
    SegmentRulesSerializer,
    SegmentSerializer,
    SuppressionSerializer,
    TagSerializer,
)

UUID_REGEX = r"[0-9a-fA-F-]{32,36}"
SAMPLE_SIZE = 10


class TagViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Tags of the organization's contacts."""

    permission_area = Area.AUDIENCE
    serializer_class = TagSerializer
    queryset = Tag.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_REGEX

    def perform_create(self, serializer):
        serializer.instance = services.tag_create(
            organization=self.request.organization, name=serializer.validated_data["name"]
        )

    def perform_update(self, serializer):
        if "name" in serializer.validated_data:
            services.tag_rename(tag=serializer.instance, name=serializer.validated_data["name"])


class ContactFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", help_text="Email prefix, or part of a name.")
    tag = django_filters.CharFilter(method="filter_tag", help_text="Tag name.")
    status = django_filters.ChoiceFilter(choices=ContactStatus.choices)
    list = django_filters.UUIDFilter(method="filter_list", help_text="List id (subscribed members).")

    class Meta:
        model = Contact
        fields = ["q", "tag", "status", "list"]

    def filter_q(self, queryset, name, value):
        return selectors.contact_search(queryset, value)

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tag_links__tag__name__iexact=value.strip())

    def filter_list(self, queryset, name, value):
        return queryset.filter(list_memberships__contact_list_id=value, list_memberships__unsubscribed_at__isnull=True)


class ContactViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Contacts. DELETE erases the contact's personal data (GDPR) and keeps a hashed suppression."""

    permission_area = Area.AUDIENCE
    serializer_class = ContactSerializer
    queryset = Contact.objects.all()
    filterset_class = ContactFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_REGEX
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Contact.objects.none()
        return selectors.contact_queryset(organization_id=self.request.organization.pk)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        tags = data.pop("tags", None)
        serializer.instance = services.contact_create(
            organization_id=self.request.organization.pk,
            data=data,
            tags=tags,
            consent_source="api",
            consent_ip=client_address(self.request),
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        tags = data.pop("tags", None)
        serializer.instance = services.contact_update(contact=serializer.instance, data=data, tags=tags)

    def perform_destroy(self, instance):
        services.contact_erase(contact=instance, by=self.request.user)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Everything stored about the contact (GDPR)")
    @action(detail=True, methods=["get"])
    def export(self, request, id=None):
        return Response(services.contact_export(contact=self.get_object(), by=request.user))

    @extend_schema(request=None, responses={204: None}, summary="Erase the contact's personal data (GDPR)")
    @action(detail=True, methods=["post"])
    def erase(self, request, id=None):
        services.contact_erase(contact=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactImportViewSet(
    TenantScopedViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """CSV imports: upload with POST /contacts/import, then follow /contacts/imports/{id}/."""

    permission_area = Area.AUDIENCE
    serializer_class = ImportJobSerializer
    queryset = ImportJob.objects.prefetch_related("row_errors")
    lookup_value_regex = UUID_REGEX

    @extend_schema(request={"multipart/form-data": ImportUploadSerializer}, responses={202: ImportJobSerializer})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser], url_path="upload")
    def upload(self, request):
        upload = ImportUploadSerializer(data=request.data, context=self.get_serializer_context())
        upload.is_valid(raise_exception=True)
        job = ImportJob(
            organization=request.organization,
            created_by=request.user,
            tag_names=upload.validated_data.get("tags", []),
            contact_list=upload.validated_data.get("list"),
            event_name=upload.validated_data.get("event", ""),
        )
        services.import_start(job=job, uploaded_file=upload.validated_data["file"])
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: ImportErrorSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def errors(self, request, pk=None):
        job = self.get_object()
        page = self.paginate_queryset(job.row_errors.order_by("line", "id"))
        return self.get_paginated_response(ImportErrorSerializer(page, many=True).data)


class ContactListViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Contact lists, with subscribe/unsubscribe of members."""

    permission_area = Area.AUDIENCE
    serializer_class = ContactListSerializer
    # Explicitly ordered: Meta.ordering does not apply to a query grouped for the count.
    queryset = ContactList.objects.annotate(
        subscribers=Count("memberships", filter=Q(memberships__unsubscribed_at__isnull=True))
    ).order_by("name", "pk")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_REGEX

    def perform_create(self, serializer):
        with self._unique_name(serializer):
            serializer.instance = services.list_create(
                organization=self.request.organization,
                name=serializer.validated_data["name"],
                description=serializer.validated_data.get("description", ""),
            )
        serializer.instance.subscribers = 0  # a new list has no members yet

    def perform_update(self, serializer):
        with self._unique_name(serializer):
            serializer.save()

    @contextmanager
    def _unique_name(self, serializer):
        """Names are unique per organization regardless of case; the database has the last word
        (a rename onto another list's name, or two requests creating the same name at once)."""
        try:
            with transaction.atomic():
                yield
        except IntegrityError:
            name = serializer.validated_data.get("name", "")
            raise ValidationError({"name": [f"A list named {name!r} already exists."]}) from None

    def _contacts(self, request):
        body = ContactIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = set(body.validated_data["contact_ids"])
        contacts = Contact.objects.active().filter(organization=request.organization, public_id__in=ids)
        found = set(contacts.values_list("public_id", flat=True))
        missing = sorted(str(i) for i in ids - found)
        if missing:
            raise ValidationError({"contact_ids": [f"Unknown contact id(s): {', '.join(missing[:20])}"]})
        return contacts

    @extend_schema(request=ContactIdsSerializer, responses={200: MembersChangedSerializer})
    @action(detail=True, methods=["post"])
    def members(self, request, pk=None):
        """Subscribe contacts to the list (people who unsubscribed from it stay unsubscribed)."""
        contact_list = self.get_object()
        added = services.list_add_members(contact_list=contact_list, contacts=self._contacts(request))
        return Response({"changed": added})

    @extend_schema(request=ContactIdsSerializer, responses={200: MembersChangedSerializer})
    @action(detail=True, methods=["post"], url_path="members/remove")
    def remove_members(self, request, pk=None):
        """Unsubscribe contacts from the list."""
        contact_list = self.get_object()
        removed = services.list_remove_members(contact_list=contact_list, contacts=self._contacts(request))
        return Response({"changed": removed})


class SegmentViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Segments: saved rules over contacts. Invalid rules are a 400 naming the path in the rule."""

    permission_area = Area.AUDIENCE
    serializer_class = SegmentSerializer
    queryset = Segment.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_REGEX

    def perform_create(self, serializer):
        services.segment_validate_rules(serializer.validated_data["rules"])
        serializer.save(organization=self.request.organization)

    def perform_update(self, serializer):
        if "rules" in serializer.validated_data:
            services.segment_validate_rules(serializer.validated_data["rules"])
        serializer.save()

    def _preview(self, contacts):
        sample = list(contacts.order_by("-id")[:SAMPLE_SIZE])
        return Response({"count": contacts.count(), "sample": ContactSampleSerializer(sample, many=True).data})

    @extend_schema(responses={200: SegmentPreviewSerializer})
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        """How many contacts match, with a sample."""
        return self._preview(selectors.segment_contacts(segment=self.get_object()))

    @extend_schema(request=SegmentRulesSerializer, responses={200: SegmentPreviewSerializer})
    @action(detail=False, methods=["post"], url_path="preview")
    def preview_rules(self, request):
        """Preview rules before saving them."""
        body = SegmentRulesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.segment_validate_rules(body.validated_data["rules"])
        contacts = Contact.objects.active().filter(organization=request.organization)
        return self._preview(contacts.filter(compile_rules(body.validated_data["rules"])))


@extend_schema_view(
    destroy=extend_schema(
        responses={
            204: None,
            409: conflict("The suppression keeps an erased contact from being messaged; it cannot be lifted."),
        }
    ),
)
class SuppressionViewSet(
    TenantScopedViewMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Addresses, numbers and domains that are never messaged."""

    permission_area = Area.AUDIENCE
    serializer_class = SuppressionSerializer
    queryset = Suppression.objects.all()
    filterset_fields = ["kind", "reason"]
    lookup_value_regex = UUID_REGEX

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.suppression_add(
            organization_id=self.request.organization.pk,
            kind=data["kind"],
            value=data["value"],
            reason=data["reason"],
            source="api",
            by=self.request.user,
        )

    def perform_destroy(self, instance):
        services.suppression_remove(suppression=instance, by=self.request.user)


class EventViewSet(TenantScopedViewMixin, viewsets.GenericViewSet):
    """Custom events about contacts (`purchase`, ...); drip sequences can start from them."""

    permission_area = Area.AUDIENCE
    serializer_class = EventSerializer
    queryset = Contact.objects.none()

    @extend_schema(responses={202: EventAcceptedSerializer})
    def create(self, request):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        contacts = Contact.objects.active().filter(organization=request.organization)
        ref = data["contact"].strip()
        if "@" in ref:
            contact = contacts.filter(email=ref.lower()).first()
        else:
            try:
                contact = contacts.filter(public_id=uuid.UUID(ref)).first()
            except ValueError:
                contact = None
        if contact is None:
            raise ValidationError({"contact": ["No contact with this id or email address."]})
        event = services.event_record(
            organization_id=request.organization.pk,
            contact=contact,
            name=data["name"],
            properties=data.get("properties") or {},
            occurred_at=data.get("occurred_at"),
        )
        body = {"id": str(event.pk), "contact": contact.public_id, "name": event.name, "occurred_at": event.occurred_at}
        return Response(EventAcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED)
