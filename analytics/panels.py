"""What the admin shows of analytics: the figures of a campaign page's panel and the pieces the
dashboard shares with it (every day of a range, the daily chart, rates as percentages).

Figures come from `analytics.selectors` only, so the admin shows what the API shows.

    panel = campaign_panel(campaign, date_from=date(2025, 3, 1), date_to=date(2025, 3, 31))
    render_to_string("analytics/campaign_panel.html", panel)
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.safestring import SafeString

from analytics import selectors
from analytics.charts import Series, daily_chart, format_number
from analytics.models import COUNTERS, TOTALS
from campaigns.models import Campaign, CampaignKind, CampaignVariant, step_order

MAX_CHART_DAYS = 366
CENTS = Decimal("0.01")
BAR_CHART_MAX_DAYS = 14
# The counters as the admin names them, in the order it lists them.
COUNTER_LABELS = {
    "sent": "Sent",
    "delivered": "Delivered",
    "opened": "Opened",
    "clicked": "Clicked",
    "bounced": "Bounced",
    "complained": "Complained",
    "unsubscribed": "Unsubscribed",
    "failed": "Failed",
    "replied": "Replied",
    "conversions": "Conversions",
    "revenue": "Revenue",
    "opens": "Opens (all)",
    "clicks": "Clicks (all)",
    "machine_opens": "Machine opens",
    "machine_clicks": "Machine clicks",
}
RATE_LABELS = {
    "open_rate": "Open rate",
    "click_rate": "Click rate",
    "click_to_open_rate": "Click-to-open rate",
    "bounce_rate": "Bounce rate",
    "unsubscribe_rate": "Unsubscribe rate",
}
CHART_SERIES = (("sent", "Sent"), ("opened", "Opened"), ("clicked", "Clicked"))


def counters_of(row: dict[str, Any] | None) -> dict[str, Any]:
    """Every counter and total of a report row, zeros where absent (revenue a Decimal)."""
    row = row or {}
    counters = {name: int(row.get(name) or 0) for name in (*COUNTERS, *TOTALS) if name != "revenue"}
    counters["revenue"] = Decimal(row.get("revenue") or 0).quantize(CENTS)
    return {name: counters[name] for name in (*COUNTERS, *TOTALS)}


def every_day(rows: list[dict[str, Any]], date_from: date, date_to: date) -> list[dict[str, Any]]:
    """One row per day of [date_from, date_to] from `report(by=("date",))`, zeros on quiet days."""
    by_date = {row["date"]: row for row in rows}
    return [
        {"date": day, **counters_of(by_date.get(day))}
        for day in (date_from + timedelta(days=offset) for offset in range((date_to - date_from).days + 1))
    ]


def daily_svg(days: list[dict[str, Any]], *, title: str) -> SafeString:
    """Sent, opened and clicked per day: bars for up to two weeks, lines beyond."""
    return daily_chart(
        [day["date"] for day in days],
        [Series(label, [day[name] for day in days]) for name, label in CHART_SERIES],
        title=title,
        kind="bar" if len(days) <= BAR_CHART_MAX_DAYS else "line",
        value_label="Messages",
    )


def percent(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def counter_items(counters: dict[str, Any], names=(*COUNTERS, *TOTALS)) -> list[dict[str, Any]]:
    """[{name, label, value, shown}] for a template: `value` raw, `shown` formatted."""
    return [
        {
            "name": name,
            "label": COUNTER_LABELS[name],
            "value": counters[name],
            "shown": format_number(counters[name], 2 if name == "revenue" else 0),
        }
        for name in names
    ]


def rate_items(rates: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {"name": name, "label": label, "value": rates[name], "shown": percent(rates[name])}
        for name, label in RATE_LABELS.items()
    ]


def local_date(moment: datetime, time_zone: str) -> date:
    return moment.astimezone(ZoneInfo(time_zone)).date()


def campaign_panel(
    campaign: Campaign,
    date_from: date | None = None,
    date_to: date | None = None,
    *,
    scope: selectors.Scope | None = None,
) -> dict:
    """KPIs, rates, revenue, budget, ROI, the daily chart and the link report of one campaign over
    [date_from, date_to] (None: since the campaign began, until today in the organization's time zone).
    Revenue and ROI are over the campaign's whole life, as its budget is."""
    organization = campaign.organization
    scope = scope or selectors.scope_of(organization)
    today = selectors.organization_today(organization)
    span = {"scope": scope, "campaign_id": campaign.pk, "date_from": date_from, "date_to": date_to}
    # One read of the period, added up here per day, variant and step.
    rows = selectors.report(**span, by=("date", "variant", "step"))
    totals = selectors.total(rows)
    if date_from is None and date_to is None:
        lifetime = totals
    else:
        [lifetime] = selectors.report(scope=scope, campaign_id=campaign.pk)
    per_day = [{"date": day, **counters} for day, counters in _grouped(rows, lambda row: row["date"]).items()]

    chart_to = date_to or max([today, *(row["date"] for row in per_day)])
    began = local_date(campaign.launched_at or campaign.created_at, organization.timezone)
    chart_from = date_from or min([began, chart_to, *(row["date"] for row in per_day)])
    chart_from = max(chart_from, chart_to - timedelta(days=MAX_CHART_DAYS - 1))
    days = every_day([row for row in per_day if chart_from <= row["date"] <= chart_to], chart_from, chart_to)

    counters = counters_of(totals)
    rates = selectors.rates(totals)
    revenue = counters_of(lifetime)["revenue"]
    roi = selectors.roi(revenue, campaign.budget)
    return {
        "campaign": campaign,
        "date_from": date_from,
        "date_to": date_to,
        "chart_from": chart_from,
        "chart_to": chart_to,
        "counters": counters,
        "rates": rates,
        "kpis": counter_items(counters),
        "rate_items": rate_items(rates),
        "revenue": revenue,
        "budget": campaign.budget,
        "roi": roi,
        "roi_shown": percent(roi) if roi is not None else "",
        "days": days,
        "chart": daily_svg(days, title=f"{campaign.name}: sent, opened and clicked per day"),
        "links": selectors.links(scope=scope, campaign_id=campaign.pk, date_from=date_from, date_to=date_to),
        "variants": _variants(campaign, _grouped(rows, lambda row: row["variant_id"])),
        "steps": _steps(campaign, _grouped(rows, lambda row: step_order(row["step"]))),
    }


def _grouped(rows: list[dict[str, Any]], key) -> dict[Any, dict[str, Any]]:
    """Report rows added up per key(row)."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return {group: selectors.total(members) for group, members in groups.items()}


def _variants(campaign: Campaign, per_variant: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    variants = CampaignVariant.objects.filter(campaign=campaign).order_by("name").values("id", "name")
    return [{"name": variant["name"], **_figures(counters_of(per_variant.get(variant["id"])))} for variant in variants]


def _figures(counters: dict[str, Any]) -> dict[str, Any]:
    rates = selectors.rates(counters)
    return {
        "counters": counters,
        "rates": rates,
        "open_rate": percent(rates["open_rate"]),
        "click_rate": percent(rates["click_rate"]),
    }


def _steps(campaign: Campaign, per_step: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """A sequence's figures per step (every enrollment's n-th message together)."""
    if campaign.kind != CampaignKind.SEQUENCE:
        return []
    return [{"step": order, **_figures(counters_of(counters))} for order, counters in sorted(per_step.items())]
