from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import django_filters
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from accounts.tenancy import Area, TenantScopedViewMixin
from analytics import selectors, services
from analytics.models import COUNTERS, Conversion, DailyStat
from analytics.serializers import (
    CampaignAnalyticsSerializer,
    ConversionCreateSerializer,
    ConversionSerializer,
    DashboardSerializer,
    RangeQuerySerializer,
)
from campaigns.models import Campaign, CampaignVariant, Message, step_order
from config import csvsafe

UUID_REGEX = r"[0-9a-fA-F-]{32,36}"
DEFAULT_DAYS = 30
MAX_DAYS = 366

RANGE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (default: 29 days before `to`)."),
    OpenApiParameter(
        "to", OpenApiTypes.DATE, description="Last day, included (default: today in the organization's time zone)."
    ),
]


# --- conversions ------------------------------------------------------------------------------------


class ConversionFilter(django_filters.FilterSet):
    campaign = django_filters.UUIDFilter(field_name="campaign_id")
    contact = django_filters.UUIDFilter(field_name="contact__public_id", help_text="The contact's id.")

    class Meta:
        model = Conversion
        fields = ["campaign", "contact"]


class ConversionViewSet(TenantScopedViewMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Purchases, sign-ups and other goals contacts reached, with their value, newest first."""

    permission_area = Area.CAMPAIGNS
    serializer_class = ConversionSerializer
    queryset = Conversion.objects.select_related("contact")
    filterset_class = ConversionFilter

    @extend_schema(request=ConversionCreateSerializer, responses={201: ConversionSerializer})
    def create(self, request):
        """Record a conversion. Without `campaign` or `message` it is credited to the contact's last clicked
        (else opened) message within CONVERSION_ATTRIBUTION_DAYS, or kept unattributed."""
        body = ConversionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = request.organization
        campaign = message = None
        if data.get("campaign") is not None:
            campaign = Campaign.objects.filter(organization=organization, pk=data["campaign"]).first()
            if campaign is None:
                raise DRFValidationError({"campaign": ["No campaign with this id."]})
        if data.get("message") is not None:
            message = Message.objects.filter(organization_id=organization.pk, pk=int(data["message"])).first()
            if message is None:
                raise DRFValidationError({"message": ["No message with this id."]})
        conversion = services.conversion_record(
            organization_id=organization.pk,
            contact=data["contact"],
            campaign=campaign,
            message=message,
            value=data["value"],
            currency=data["currency"],
            name=data.get("name", ""),
            occurred_at=data.get("occurred_at"),
        )
        return Response(ConversionSerializer(conversion).data, status=status.HTTP_201_CREATED)


# --- reports ----------------------------------------------------------------------------------------


def _counters(row: dict[str, Any] | None) -> dict[str, Any]:
    row = row or {}
    return {name: row.get(name) or (Decimal("0") if name == "revenue" else 0) for name in COUNTERS}


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    return {"counters": _counters(row), "rates": selectors.rates(row)}


def _every_day(rows: list[dict[str, Any]], date_from: date, date_to: date) -> list[dict[str, Any]]:
    """One entry per day of the range, zeros on days nothing happened (a chart's x axis)."""
    by_date = {row["date"]: row for row in rows}
    days = (date_to - date_from).days + 1
    return [
        {"date": day, "counters": _counters(by_date.get(day))}
        for day in (date_from + timedelta(days=offset) for offset in range(days))
    ]


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Errors are JSON whatever `?format=` or Accept say: here `format` picks the export's file format."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AnalyticsView(TenantScopedViewMixin, generics.GenericAPIView):
    """A report over a range of days in the organization's time zone."""

    permission_area = Area.ANALYTICS
    pagination_class = None
    queryset = DailyStat.objects.all()

    def date_range(self, request) -> tuple[date, date]:
        """`from` and `to` from the query (default: the last 30 days); 400 naming the field when bad."""
        params = {
            key: value
            for key, value in {
                "date_from": request.query_params.get("from"),
                "date_to": request.query_params.get("to"),
            }.items()
            if value
        }
        query = RangeQuerySerializer(data=params)
        if not query.is_valid():
            names = {"date_from": "from", "date_to": "to"}
            raise DRFValidationError({names.get(key, key): errors for key, errors in query.errors.items()})
        date_to = query.validated_data.get("date_to") or selectors.organization_today(request.organization)
        date_from = query.validated_data.get("date_from") or date_to - timedelta(days=DEFAULT_DAYS - 1)
        if date_from > date_to:
            raise DRFValidationError({"from": ["Must be on or before `to`."]})
        if (date_to - date_from).days + 1 > MAX_DAYS:
            raise DRFValidationError({"from": [f"The range may span at most {MAX_DAYS} days."]})
        return date_from, date_to


class DashboardView(AnalyticsView):
    """The organization's totals and rates, a day-by-day series and the campaigns that sent most."""

    serializer_class = DashboardSerializer

    @extend_schema(parameters=RANGE_PARAMETERS, responses={200: DashboardSerializer})
    def get(self, request):
        date_from, date_to = self.date_range(request)
        span = {"scope": selectors.scope_of(request.organization), "date_from": date_from, "date_to": date_to}
        days = selectors.report(**span, by=("date",))
        totals = _sums(days, lambda row: None).get(None, _counters(None))
        top_campaigns = [
            {
                "campaign_id": row["campaign_id"],
                "name": row["name"],
                "channel": row["channel"],
                **{name: row[name] for name in ("sent", "opened", "clicked", "conversions", "revenue")},
                "open_rate": row["rates"]["open_rate"],
                "click_rate": row["rates"]["click_rate"],
            }
            for row in selectors.top_campaigns(**span)
        ]
        body = {
            "from": date_from,
            "to": date_to,
            "totals": _totals(totals),
            "days": _every_day(days, date_from, date_to),
            "top_campaigns": top_campaigns,
        }
        return Response(DashboardSerializer(body).data)


def _sums(rows: list[dict[str, Any]], key) -> dict[Any, dict[str, Any]]:
    """The counters of `rows` added up per key(row)."""
    sums: dict[Any, dict[str, Any]] = {}
    for row in rows:
        into = sums.setdefault(key(row), _counters(None))
        for name, value in _counters(row).items():
            into[name] += value
    return sums


class CampaignAnalyticsView(AnalyticsView):
    """One campaign (or sequence's campaign): budget, revenue and ROI over its life; totals, days,
    variants, steps and links over the range. Another organization's campaign is a 404."""

    serializer_class = CampaignAnalyticsSerializer
    queryset = Campaign.objects.all()

    @extend_schema(parameters=RANGE_PARAMETERS, responses={200: CampaignAnalyticsSerializer})
    def get(self, request, pk=None):
        campaign = self.get_object()
        date_from, date_to = self.date_range(request)
        scope = selectors.scope_of(request.organization)
        span = {"scope": scope, "campaign_id": campaign.pk, "date_from": date_from, "date_to": date_to}
        [lifetime] = selectors.report(scope=scope, campaign_id=campaign.pk)
        # One read of the range, summed here per day, variant and step (a few hundred rows at most).
        rows = selectors.report(**span, by=("date", "variant", "step"))
        # A sequence's re-entries number their messages' steps past STEP_SPAN: the step is its order.
        per_day = _sums(rows, lambda row: row["date"])
        per_variant = _sums(rows, lambda row: row["variant_id"])
        per_step = _sums(rows, lambda row: step_order(row["step"]))
        totals = _sums(rows, lambda row: None).get(None, _counters(None))
        revenue = lifetime["revenue"] or Decimal("0")
        body = {
            "campaign": campaign.pk,
            "budget": campaign.budget,
            "revenue": revenue,
            "roi": selectors.roi(revenue, campaign.budget),
            "totals": _totals(totals),
            "days": _every_day([{"date": day, **counters} for day, counters in per_day.items()], date_from, date_to),
            "variants": [
                {"variant": variant.name, "variant_id": variant.pk, "counters": _counters(per_variant.get(variant.pk))}
                for variant in CampaignVariant.objects.filter(campaign=campaign).order_by("name")
            ],
            "steps": [{"step": step, "counters": counters} for step, counters in sorted(per_step.items())],
            "links": selectors.links(scope=scope, campaign_id=campaign.pk, date_from=date_from, date_to=date_to),
        }
        return Response(CampaignAnalyticsSerializer(body).data)


class ExportView(AnalyticsView):
    """Daily figures per campaign as CSV: one row per day and campaign that had any activity
    (conversions credited to no campaign on a row without one)."""

    content_negotiation_class = JSONOnlyNegotiation

    @extend_schema(
        parameters=[
            *RANGE_PARAMETERS,
            OpenApiParameter("format", OpenApiTypes.STR, enum=["csv"], description="The file format (csv)."),
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        file_format = request.query_params.get("format") or "csv"
        if file_format != "csv":
            raise DRFValidationError({"format": ["Only csv is offered."]})
        date_from, date_to = self.date_range(request)
        rows = selectors.export_rows(
            scope=selectors.scope_of(request.organization), date_from=date_from, date_to=date_to
        )
        response = StreamingHttpResponse(csvsafe.stream_rows(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="analytics-{date_from}-{date_to}.csv"'
        return response
