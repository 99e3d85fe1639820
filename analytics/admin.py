"""The marketer's analytics page in the admin: organization totals and rates, sent/opened/clicked per
day, the top campaigns, agents' callback figures and a CSV download, over a range of days.

It lives at the daily rollups' changelist (Analytics, Daily stats in the index and the sidebar), so
the shared tenancy mechanism decides who sees it: staff whose role may read the analytics area, for
the organizations where it may. Figures come from `analytics.selectors`, as the API's do.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from accounts.models import Membership, Organization
from accounts.tenancy import Area, ReadOnlyAdminMixin, TenantModelAdmin
from analytics import selectors
from analytics.charts import bar_chart, format_number
from analytics.models import DailyStat
from analytics.panels import counter_items, counters_of, daily_svg, every_day, percent, rate_items
from campaigns.models import CampaignKind
from config import csvsafe

DEFAULT_DAYS = 30
MAX_DAYS = 366


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self):
        super().__init__(format="%Y-%m-%d")


class RangeForm(forms.Form):
    """The organization (when the user may read several) and the days, `from` and `to` included."""

    def __init__(self, data, *, organizations, default_organization: Organization | None):
        super().__init__(data)
        self.fields["organization"] = forms.ModelChoiceField(
            queryset=organizations, empty_label=None, initial=default_organization
        )
        if organizations.count() < 2:
            self.fields["organization"].widget = forms.HiddenInput()
        self.fields["from"] = forms.DateField(label="From", widget=DateInput(), input_formats=["%Y-%m-%d"])
        self.fields["to"] = forms.DateField(label="To", widget=DateInput(), input_formats=["%Y-%m-%d"])

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("from"), cleaned.get("to")
        if date_from and date_to:
            if date_from > date_to:
                self.add_error("from", "The first day must be on or before the last.")
            elif (date_to - date_from).days + 1 > MAX_DAYS:
                self.add_error("from", f"The range may span at most {MAX_DAYS} days.")
        return cleaned


def default_range(organization: Organization) -> tuple[date, date]:
    date_to = selectors.organization_today(organization)
    return date_to - timedelta(days=DEFAULT_DAYS - 1), date_to


def format_duration(seconds: float | None) -> str:
    """45 s, 12 min, 3 h 05 min, 2 d 4 h; a dash when there is nothing to average."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@admin.register(DailyStat)
class AnalyticsAdmin(ReadOnlyAdminMixin, TenantModelAdmin):
    """The dashboard in place of a list of rollup rows (derived data nobody edits)."""

    permission_area = Area.ANALYTICS

    def get_urls(self):
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="analytics_dailystat_export",
            ),
            *super().get_urls(),
        ]

    def get_model_perms(self, request):
        # Only "view": the index links to the page and offers no "Add".
        return {"view": self.has_view_permission(request)}

    # --- organization and range --------------------------------------------------------------------

    def _organizations(self, request):
        if request.user.is_superuser:
            return Organization.objects.order_by("name")
        return Organization.objects.filter(pk__in=self._org_ids(request, write=False)).order_by("name")

    def _default_organization(self, request, organizations) -> Organization | None:
        membership = (
            Membership.objects.filter(user=request.user, organization__in=organizations)
            .order_by("created_at", "id")
            .select_related("organization")
            .first()
        )
        return membership.organization if membership else organizations.first()

    def range_form(self, request) -> RangeForm:
        """The form bound to the query, with today's defaults filled in for what it leaves out."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        organizations = self._organizations(request)
        default = self._default_organization(request, organizations)
        data = request.GET.copy()
        chosen = organizations.filter(pk=_uuid_or_none(data.get("organization"))).first() or default
        if not data.get("organization") and default is not None:
            data["organization"] = str(default.pk)
        if chosen is not None:
            _, date_to = default_range(chosen)
            if not data.get("to"):
                data["to"] = date_to.isoformat()
            if not data.get("from"):
                to = _date_or_none(data["to"]) or date_to
                data["from"] = (to - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
        return RangeForm(data, organizations=organizations, default_organization=default)

    # --- the page ----------------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        form = self.range_form(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Analytics",
            "form": form,
            **(extra_context or {}),
        }
        if not form.is_valid():
            return TemplateResponse(request, "admin/analytics/dashboard.html", context, status=400)
        organization, date_from, date_to = (form.cleaned_data[name] for name in ("organization", "from", "to"))
        context.update(self.dashboard(organization, date_from, date_to))
        query = urlencode({"organization": organization.pk, "from": date_from, "to": date_to})
        context["export_url"] = f"{reverse('admin:analytics_dailystat_export')}?{query}"
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)

    def dashboard(self, organization: Organization, date_from: date, date_to: date) -> dict[str, Any]:
        span = {"scope": selectors.scope_of(organization), "date_from": date_from, "date_to": date_to}
        per_day = selectors.report(**span, by=("date",))
        counters = counters_of(selectors.total(per_day))
        rates = selectors.rates(counters)
        days = every_day(per_day, date_from, date_to)
        top = [_top_campaign(row) for row in selectors.top_campaigns(**span)]
        agents = [
            {
                **row,
                "first_contact_time": format_duration(row["avg_first_contact_seconds"]),
                "resolution_time": format_duration(row["avg_resolution_seconds"]),
            }
            for row in selectors.agents(**span)
        ]
        return {
            "organization": organization,
            "date_from": date_from,
            "date_to": date_to,
            "counters": counters,
            "kpis": counter_items(counters),
            "rate_items": rate_items(rates),
            "days": days,
            "chart": daily_svg(
                days, title=f"{organization.name}: sent, opened and clicked per day, {date_from} to {date_to}"
            ),
            "top_campaigns": top,
            "top_chart": bar_chart(
                [(row["name"], row["sent"]) for row in top],
                title=f"Messages sent by the top campaigns, {date_from} to {date_to}",
                value_label="Messages sent",
            ),
            "agents": agents,
            "agents_chart": bar_chart(
                [(row["agent_name"], row["handled"]) for row in agents],
                title=f"Callbacks handled per agent, {date_from} to {date_to}",
                value_label="Callbacks handled",
            ),
        }

    # --- CSV -----------------------------------------------------------------------------------------

    def export_view(self, request):
        """The API export's rows (one per day and campaign) for the page's organization and range."""
        form = self.range_form(request)
        if not form.is_valid():
            errors = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in form.errors.items())
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        organization, date_from, date_to = (form.cleaned_data[name] for name in ("organization", "from", "to"))
        rows = selectors.export_rows(scope=selectors.scope_of(organization), date_from=date_from, date_to=date_to)
        response = StreamingHttpResponse(csvsafe.stream_rows(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="analytics-{date_from}-{date_to}.csv"'
        return response


def _top_campaign(row: dict[str, Any]) -> dict[str, Any]:
    """A row of `selectors.top_campaigns` with its admin page (a sequence's own) and figures as shown."""
    if row["kind"] == CampaignKind.SEQUENCE and row["sequence_id"] is not None:
        url = reverse("admin:campaigns_sequence_change", args=[row["sequence_id"]])
    else:
        url = reverse("admin:campaigns_campaign_change", args=[row["campaign_id"]])
    counters = counters_of(row)
    return {
        "campaign_id": row["campaign_id"],
        "name": row["name"],
        "url": url,
        **counters,
        "revenue_shown": format_number(counters["revenue"], 2),
        "open_rate": percent(row["rates"]["open_rate"]),
        "click_rate": percent(row["rates"]["click_rate"]),
    }


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _date_or_none(value: str | None) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None
