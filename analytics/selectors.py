"""Reads of the analytics figures: rollup rows plus the live tail, so figures are always current.

Rollup rows of a day whose raw rows changed since the last rollup run are stale; for those days the
figures are computed live from the raw rows with the very SQL the rollup writes them with, and the
stale rows are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Organization
from analytics import rollup
from analytics.models import COUNTERS, TOTALS, AgentDailyStat, DailyStat, LinkDailyStat
from campaigns.models import Campaign
from campaigns.rates import rates

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
TOP_CAMPAIGNS = 10
EXPORT_HEADER = ("date", "campaign_id", "campaign_name", "channel", *COUNTERS)


@dataclass(frozen=True)
class Scope:
    """An organization and its days whose rollup rows are stale, read once for the several reports
    of one page or response (finding the stale days costs a handful of queries)."""

    organization: Organization
    stale_days: tuple[date, ...]


def scope_of(organization) -> Scope:
    """The organization (or its id) with its stale days as of now."""
    organization = _organization(organization)
    return Scope(organization=organization, stale_days=tuple(rollup.stale_days(organization)))


def _scope(organization_id, given: Scope | None) -> Scope:
    if given is not None:
        return given
    if organization_id is None:
        raise TypeError("Pass organization_id or scope.")
    return scope_of(organization_id)


def roi(revenue: Decimal, budget: Decimal | None) -> float | None:
    """(revenue - budget) / budget rounded to 4 decimals; None without a budget (or a zero one)."""
    if not budget:
        return None
    return round(float((revenue - budget) / budget), 4)


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


def total(rows: Iterable[dict]) -> dict:
    """Every counter of report rows added up (the one row `report(by=())` would give for them)."""
    sums = _zero()
    for row in rows:
        _add(sums, row)
    return sums


def report(
    *,
    organization_id=None,
    scope: Scope | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    campaign_id=None,
    by: tuple[str, ...] = (),
) -> list[dict]:
    """Sums of every counter over the organization's days in [date_from, date_to], grouped by `by`
    (a subset of GROUP_KEYS); by=() gives exactly one row. Pass `scope` when reading several reports."""
    unknown = [name for name in by if name not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"Cannot group by {', '.join(unknown)}; choose from {', '.join(GROUP_KEYS)}.")
    scope = _scope(organization_id, scope)
    organization = scope.organization
    keys = [GROUP_KEYS[name] for name in dict.fromkeys(by)]
    stale = _in_range(scope.stale_days, date_from, date_to)

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


def links(
    *,
    organization_id=None,
    scope: Scope | None = None,
    campaign_id,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[dict]:
    """Clicks and unique clicks per original URL of one campaign, most clicked first."""
    scope = _scope(organization_id, scope)
    organization = scope.organization
    stale = _in_range(scope.stale_days, date_from, date_to)
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


def agents(*, organization_id=None, scope: Scope | None = None, date_from: date, date_to: date) -> list[dict]:
    """Per agent: callbacks handled, first contacts and resolutions with their average times, SLA
    breaches; the busiest agent first."""
    scope = _scope(organization_id, scope)
    organization = scope.organization
    stale = _in_range(scope.stale_days, date_from, date_to)
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


def top_campaigns(
    *,
    organization_id=None,
    scope: Scope | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: int = TOP_CAMPAIGNS,
) -> list[dict]:
    """The campaigns that sent most over [date_from, date_to] (ties by id), at most `limit`, as
    {campaign_id, name, channel, kind, sequence_id, every counter, rates}. Campaigns deleted since (a draft
    credited with a conversion) and conversions credited to no campaign are left out."""
    scope = _scope(organization_id, scope)
    rows = report(scope=scope, date_from=date_from, date_to=date_to, by=("campaign",))
    ranked = sorted(
        (row for row in rows if row.get("campaign_id") is not None),
        key=lambda row: (-row["sent"], str(row["campaign_id"])),
    )
    campaigns = {
        campaign["id"]: campaign
        for campaign in Campaign.objects.filter(
            organization_id=scope.organization.pk, pk__in=[row["campaign_id"] for row in ranked]
        ).values("id", "name", "channel", "kind", "sequence__id")
    }
    top = []
    for row in ranked:
        campaign = campaigns.get(row["campaign_id"])
        if campaign is None:
            continue
        top.append(
            {
                "campaign_id": campaign["id"],
                "name": campaign["name"],
                "channel": campaign["channel"],
                "kind": campaign["kind"],
                "sequence_id": campaign["sequence__id"],
                **{name: row[name] for name in FIELDS},
                "rates": rates(row),
            }
        )
        if len(top) == limit:
            break
    return top


def export_rows(*, organization_id=None, scope: Scope | None = None, date_from: date, date_to: date) -> Iterator[tuple]:
    """The CSV export: EXPORT_HEADER, then one row per day and campaign with any activity (conversions
    credited to no campaign on a row without one), by day then campaign id. The figures are read when
    called; the rows are produced as they are iterated."""
    scope = _scope(organization_id, scope)
    rows = report(scope=scope, date_from=date_from, date_to=date_to, by=("date", "campaign"))
    campaigns = {
        campaign["id"]: campaign
        for campaign in Campaign.objects.filter(
            organization_id=scope.organization.pk, pk__in={row["campaign_id"] for row in rows} - {None}
        ).values("id", "name", "channel")
    }
    rows.sort(key=lambda row: (row["date"], str(row["campaign_id"] or "")))

    def lines() -> Iterator[tuple]:
        yield EXPORT_HEADER
        for row in rows:
            campaign = campaigns.get(row["campaign_id"], {})
            yield (
                row["date"].isoformat(),
                str(row["campaign_id"] or ""),
                campaign.get("name", ""),
                campaign.get("channel", ""),
                *(f"{row[name]:.2f}" if name == "revenue" else row[name] for name in COUNTERS),
            )

    return lines()
