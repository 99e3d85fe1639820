"""Reads of the analytics figures: rollup rows plus the live tail, so figures are always current.

Rollup rows of a day whose raw rows changed since the last rollup run are stale; for those days the
figures are computed live from the raw rows with the very SQL the rollup writes them with, and the
stale rows are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Organization
from analytics import rollup
from analytics.models import COUNTERS, TOTALS, AgentDailyStat, DailyStat, LinkDailyStat

FIELDS = (*COUNTERS, *TOTALS)
# Grouping names callers pass in `by`, and the key each appears under in the result.
GROUP_KEYS = {
    "date": "date",
    "campaign": "campaign_id",
    "step": "step",
    "variant": "variant_id",
    "channel": "channel",
    "sending_domain": "sending_domain",
}


def rates(counters: dict) -> dict[str, float]:
    """Open, click, click-to-open, bounce and unsubscribe rates over sent - bounced (Mailchimp's base)."""

    def ratio(part, whole) -> float:
        return round(part / whole, 4) if whole else 0.0

    sent = counters.get("sent") or 0
    bounced = counters.get("bounced") or 0
    opened = counters.get("opened") or 0
    clicked = counters.get("clicked") or 0
    base = sent - bounced
    return {
        "open_rate": ratio(opened, base),
        "click_rate": ratio(clicked, base),
        "click_to_open_rate": ratio(clicked, opened),
        "bounce_rate": ratio(bounced, sent),
        "unsubscribe_rate": ratio(counters.get("unsubscribed") or 0, base),
    }


def organization_today(organization: Organization) -> date:
    """Today in the organization's time zone."""
    return timezone.now().astimezone(ZoneInfo(organization.timezone)).date()


def _organization(organization_id) -> Organization:
    if isinstance(organization_id, Organization):
        return organization_id
    return Organization.objects.only("id", "timezone").get(pk=organization_id)


def _in_range(days: Iterable[date], date_from: date | None, date_to: date | None) -> list[date]:
    return [d for d in days if (date_from is None or d >= date_from) and (date_to is None or d <= date_to)]


def _date_filter(date_from: date | None, date_to: date | None) -> Q:
    q = Q()
    if date_from is not None:
        q &= Q(date__gte=date_from)
    if date_to is not None:
        q &= Q(date__lte=date_to)
    return q


def _zero() -> dict:
    counters = {name: 0 for name in FIELDS}
    counters["revenue"] = Decimal("0.00")
    return counters


def _add(into: dict, row: dict) -> None:
    for name in FIELDS:
        value = row.get(name) or 0
        if name == "revenue":
            into[name] = rollup.to_decimal(into[name] + rollup.to_decimal(value))
        else:
            into[name] += int(value)


def _tail_key(row: dict, keys: list[str]) -> tuple:
    converters = {"date": rollup.to_date, "campaign_id": rollup.to_uuid, "variant_id": rollup.to_uuid}
    return tuple(converters.get(key, lambda v: v)(row[key]) for key in keys)


def _sort_key(key: tuple) -> tuple:
    return tuple((value is None, value if value is not None else "") for value in key)


def report(
    *,
    organization_id,
    date_from: date | None = None,
    date_to: date | None = None,
    campaign_id=None,
    by: tuple[str, ...] = (),
) -> list[dict]:
    """Sums of every counter over the organization's days in [date_from, date_to], grouped by `by`
    (a subset of GROUP_KEYS); by=() gives exactly one row."""
    unknown = [name for name in by if name not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"Cannot group by {', '.join(unknown)}; choose from {', '.join(GROUP_KEYS)}.")
    organization = _organization(organization_id)
    keys = [GROUP_KEYS[name] for name in dict.fromkeys(by)]
    stale = _in_range(rollup.stale_days(organization), date_from, date_to)

    rows = DailyStat.objects.filter(_date_filter(date_from, date_to), organization_id=organization.pk)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    if stale:
        rows = rows.exclude(date__in=stale)
    sums = {name: Sum(name) for name in FIELDS}
    groups: dict[tuple, dict] = {}
    if keys:
        for row in rows.values(*keys).annotate(**sums).order_by():
            _add(groups.setdefault(tuple(row[key] for key in keys), _zero()), row)
    else:
        _add(groups.setdefault((), _zero()), rows.aggregate(**sums))

    if stale:
        sql, params = rollup.daily_rows_sql(organization.pk, organization.timezone, stale, campaign_id=campaign_id)
        for row in rollup.fetch_dicts(sql, params):
            _add(groups.setdefault(_tail_key(row, keys), _zero()), row)

    return [dict(zip(keys, key, strict=True)) | groups[key] for key in sorted(groups, key=_sort_key)]


def links(*, organization_id, campaign_id, date_from: date | None = None, date_to: date | None = None) -> list[dict]:
    """Clicks and unique clicks per original URL of one campaign, most clicked first."""
    organization = _organization(organization_id)
    stale = _in_range(rollup.stale_days(organization), date_from, date_to)
    rows = LinkDailyStat.objects.filter(
        _date_filter(date_from, date_to), organization_id=organization.pk, campaign_id=campaign_id
    )
    if stale:
        rows = rows.exclude(date__in=stale)
    totals: dict[str, list[int]] = {}
    for row in rows.values("url").annotate(clicks=Sum("clicks"), unique_clicks=Sum("unique_clicks")).order_by():
        total = totals.setdefault(row["url"], [0, 0])
        total[0] += row["clicks"] or 0
        total[1] += row["unique_clicks"] or 0
    if stale:
        sql, params = rollup.link_rows_sql(organization.pk, organization.timezone, stale, campaign_id=campaign_id)
        for row in rollup.fetch_dicts(sql, params):
            total = totals.setdefault(row["url"], [0, 0])
            total[0] += int(row["clicks"] or 0)
            total[1] += int(row["unique_clicks"] or 0)
    result = [{"url": url, "clicks": clicks, "unique_clicks": unique} for url, (clicks, unique) in totals.items()]
    result.sort(key=lambda row: (-row["clicks"], -row["unique_clicks"], row["url"]))
    return result


def agents(*, organization_id, date_from: date, date_to: date) -> list[dict]:
    """Per agent: callbacks handled, first contacts and resolutions with their average times, SLA
    breaches; the busiest agent first."""
    organization = _organization(organization_id)
    stale = _in_range(rollup.stale_days(organization), date_from, date_to)
    rows = AgentDailyStat.objects.filter(_date_filter(date_from, date_to), organization_id=organization.pk)
    if stale:
        rows = rows.exclude(date__in=stale)
    fields = rollup.AGENT_FIELDS
    totals: dict = {}

    def add(agent_id, row) -> None:
        total = totals.setdefault(rollup.to_uuid(agent_id), dict.fromkeys(fields, 0))
        for name in fields:
            total[name] += int(row[name] or 0)

    for row in rows.values("agent_id").annotate(**{name: Sum(name) for name in fields}).order_by():
        add(row["agent_id"], row)
    if stale:
        sql, params = rollup.agent_rows_sql(organization.pk, organization.timezone, stale)
        for row in rollup.fetch_dicts(sql, params):
            add(row["agent_id"], row)

    names = {
        user.pk: user.full_name or user.email
        for user in get_user_model().objects.filter(pk__in=list(totals)).only("pk", "full_name", "email")
    }

    def average(seconds: int, count: int) -> int | None:
        return round(seconds / count) if count else None

    result = [
        {
            "agent_id": agent_id,
            "agent_name": names.get(agent_id, ""),
            "handled": total["handled"],
            "first_contacts": total["first_contacts"],
            "avg_first_contact_seconds": average(total["first_contact_seconds"], total["first_contacts"]),
            "resolutions": total["resolutions"],
            "avg_resolution_seconds": average(total["resolution_seconds"], total["resolutions"]),
            "sla_breaches": total["sla_breaches"],
        }
        for agent_id, total in totals.items()
    ]
    result.sort(key=lambda row: (-row["handled"], -row["first_contacts"], row["agent_name"]))
    return result
