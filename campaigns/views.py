from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response

from accounts.tenancy import Area, TenantScopedViewMixin
from campaigns import ab, selectors, services
from campaigns.models import Campaign, CampaignKind, CampaignVariant, Message, MessageStatus, SendingDomain
from campaigns.serializers import (
    AbWinnerSerializer,
    CampaignSerializer,
    DryRunSerializer,
    MessageSerializer,
    SendingDomainSerializer,
    StatsSerializer,
    TestSendSerializer,
)
from config.schema import conflict

UUID_REGEX = r"[0-9a-fA-F-]{32,36}"

NOT_DRAFT = conflict("The campaign is not a draft (only its budget can change once launched).")


@extend_schema_view(
    partial_update=extend_schema(responses={200: CampaignSerializer, 409: NOT_DRAFT}),
    destroy=extend_schema(responses={204: None, 409: conflict("Only a draft campaign can be deleted.")}),
)
class CampaignViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Broadcast campaigns. Only drafts can be edited or deleted (409 otherwise)."""

    permission_area = Area.CAMPAIGNS
    serializer_class = CampaignSerializer
    # A sequence's own campaign is reached through its sequence, not listed among broadcasts.
    queryset = (
        Campaign.objects.filter(kind=CampaignKind.BROADCAST).select_related("organization").prefetch_related("variants")
    )
    filterset_fields = ["status", "channel"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_REGEX

    def _save(self, serializer, campaign: Campaign):
        data = dict(serializer.validated_data)
        variants = data.pop("variants", None)
        for key, value in data.items():
            setattr(campaign, key, value)
        with transaction.atomic():
            services.campaign_save(campaign=campaign, by=self.request.user)
            if variants is not None:
                campaign.variants.all().delete()
                CampaignVariant.objects.bulk_create([CampaignVariant(campaign=campaign, **v) for v in variants])
        serializer.instance = campaign

    def perform_create(self, serializer):
        self._save(serializer, Campaign(organization=self.request.organization, created_by=self.request.user))

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance):
        services.campaign_delete(campaign=instance)

    def _respond(self, campaign):
        campaign.refresh_from_db()
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: DryRunSerializer})
    @action(detail=True, methods=["post"], url_path="dry-run")
    def dry_run(self, request, pk=None):
        """Recipients, exclusions and the send schedule if launched now; writes nothing."""
        return Response(DryRunSerializer(services.campaign_dry_run(campaign=self.get_object())).data)

    @extend_schema(
        request=None,
        responses={
            200: CampaignSerializer,
            409: conflict("Only a draft can be launched, and only on a channel with a configured backend."),
        },
    )
    @action(detail=True, methods=["post"])
    def launch(self, request, pk=None):
        return self._respond(services.campaign_launch(campaign=self.get_object(), by=request.user))

    @extend_schema(
        request=None,
        responses={200: CampaignSerializer, 409: conflict("Only a running or scheduled campaign can be paused.")},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._respond(services.campaign_pause(campaign=self.get_object(), by=request.user))

    @extend_schema(
        request=None, responses={200: CampaignSerializer, 409: conflict("Only a paused campaign can be resumed.")}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._respond(services.campaign_resume(campaign=self.get_object(), by=request.user))

    @extend_schema(
        request=None,
        responses={200: CampaignSerializer, 409: conflict("A completed or cancelled campaign cannot be cancelled.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._respond(services.campaign_cancel(campaign=self.get_object(), by=request.user))

    @extend_schema(request=None, responses={200: CampaignSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        """The runs a recurring campaign (a series) has launched, newest first; each has its own
        messages and stats. Filters as the list: ?status=, ?channel=."""
        series = self.get_object()  # another organization's id is a 404
        runs = self.filter_queryset(self.get_queryset().filter(series=series)).order_by("-created_at")
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=TestSendSerializer, responses={202: None})
    @action(detail=True, methods=["post"], url_path="test-send")
    def test_send(self, request, pk=None):
        """Send the campaign's message with a sample contact, one email per address (at most
        TEST_SEND_MAX_RECIPIENTS); not counted."""
        campaign = self.get_object()  # another organization's id is a 404 whatever the body
        body = TestSendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.campaign_test_send_queue(campaign=campaign, emails=body.validated_data["emails"])
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=AbWinnerSerializer,
        responses={
            200: CampaignSerializer,
            409: conflict("No A/B test, or it is decided already, not started yet, or the campaign is not under way."),
        },
    )
    @action(detail=True, methods=["post"], url_path="ab-winner")
    def ab_winner(self, request, pk=None):
        """Pick the A/B test's winner by hand before the automatic decision: the held rest gets it."""
        campaign = self.get_object()  # another organization's id is a 404 whatever the body
        body = AbWinnerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data["variant"]
        variant = next((v for v in campaign.variants.all() if name in (v.name, str(v.pk))), None)
        if variant is None:
            raise DRFValidationError({"variant": [f"No variant {name!r} in this campaign."]})
        return self._respond(ab.campaign_ab_decide(campaign=campaign, variant=variant, by=request.user))

    @extend_schema(responses={200: StatsSerializer})
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """KPIs, a daily timeline and per-variant figures, live from the messages' statuses."""
        return Response(StatsSerializer(selectors.campaign_stats(campaign=self.get_object())).data)


class MessageFilter(django_filters.FilterSet):
    campaign = django_filters.UUIDFilter(field_name="campaign_id")
    contact = django_filters.UUIDFilter(field_name="contact__public_id")
    status = django_filters.ChoiceFilter(
        choices=[(s.label, s.label) for s in MessageStatus], method="filter_status", help_text="Status name."
    )

    class Meta:
        model = Message
        fields = ["campaign", "contact", "status"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(status={s.label: s.value for s in MessageStatus}[value])


class MessageViewSet(TenantScopedViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Messages of the organization's campaigns."""

    permission_area = Area.CAMPAIGNS
    serializer_class = MessageSerializer
    queryset = Message.objects.select_related("campaign", "contact", "variant").order_by("-id")
    filterset_class = MessageFilter
    lookup_value_regex = r"[0-9]+"

    @extend_schema(
        request=None,
        responses={
            200: MessageSerializer,
            409: conflict("Only a failed or unknown message of a campaign that was not cancelled can be resent."),
        },
    )
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        """Queue a failed or unknown message again (409 for any other status, or a cancelled campaign).
        A completed campaign runs again until the message is sent."""
        message = services.message_resend(message=self.get_object(), by=request.user)
        return Response(MessageSerializer(self.get_queryset().get(pk=message.pk)).data)


@extend_schema_view(
    destroy=extend_schema(responses={204: None, 409: conflict("Campaigns still under way send from this domain.")}),
)
class SendingDomainViewSet(
    TenantScopedViewMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The domains the organization may send from, once verified (owners and admins change them)."""

    permission_area = Area.ORGANIZATION
    serializer_class = SendingDomainSerializer
    queryset = SendingDomain.objects.select_related("verified_by")
    lookup_value_regex = UUID_REGEX

    def perform_create(self, serializer):
        serializer.instance = services.sending_domain_add(
            organization=self.request.organization,
            domain=serializer.validated_data["domain"],
            by=self.request.user,
        )

    def perform_destroy(self, instance):
        services.sending_domain_delete(sending_domain=instance, by=self.request.user)

    @extend_schema(request=None, responses={200: SendingDomainSerializer})
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        """Look up the DNS TXT record and mark the domain verified when it is there (400 saying why not)."""
        domain = services.sending_domain_verify(sending_domain=self.get_object(), by=request.user)
        return Response(SendingDomainSerializer(domain).data)
