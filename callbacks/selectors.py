"""Callback reads: the agents' queue and the per-agent daily metrics."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import TruncDate

from accounts.models import Organization, User
from callbacks.models import PRIORITY_RANK, CallbackActivity, CallbackRequest, CallbackStatus


def priority_rank() -> Case:
    """0 for urgent ... 3 for low: sorts categories by importance rather than by name."""
    return Case(
        *[When(priority=priority, then=Value(rank)) for priority, rank in PRIORITY_RANK.items()],
        default=Value(len(PRIORITY_RANK)),
        output_field=IntegerField(),
    )


def with_priority_rank(queryset: QuerySet) -> QuerySet:
    return queryset.annotate(priority_rank=priority_rank())


def callback_queue(queryset: QuerySet | None = None) -> QuerySet:
    """Requests in queue order: priority (urgent first), then the earliest SLA due, then the
    highest score; contact and agent loaded in the same query."""
    queryset = CallbackRequest.objects.all() if queryset is None else queryset
    return with_priority_rank(queryset.select_related("contact", "assigned_to")).order_by(
        "priority_rank", "sla_due_at", "-priority_score", "pk"
    )


def callback_activities(*, callback: CallbackRequest) -> QuerySet:
    return (
        CallbackActivity.objects.filter(callback=callback).select_related("actor", "agent").order_by("created_at", "id")
    )


# --- per agent per day ----------------------------------------------------------------------


class _Median(Aggregate):
    """PostgreSQL's median of an interval."""

    function = "PERCENTILE_CONT"
    name = "median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass(frozen=True)
class AgentDay:
    agent: str
    agent_email: str
    date: date
    first_contacts: int
    avg_time_to_first_contact: float | None  # seconds from the request coming in
    median_time_to_first_contact: float | None
    handled: int  # requests completed that day
    avg_time_to_resolution: float | None  # seconds from the request coming in to completion


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 1)


def agent_daily_metrics(*, organization: Organization, date_from: date, date_to: date, agent_id=None) -> list[dict]:
    """One row per agent per day (days in the organization's time zone, both ends included):
    first contacts made (the first call of a request, answered or not) with the average and
    median time to first contact, and requests completed with the average time to resolution.
    Aggregated in SQL; ordered by date, then agent email."""
    tz = ZoneInfo(organization.timezone)
    start = datetime.combine(date_from, time.min, tzinfo=tz)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz)
    base = CallbackRequest.objects.filter(organization=organization)
    if agent_id is not None:
        base_first = base.filter(first_contact_by_id=agent_id)
        base_done = base.filter(assigned_to_id=agent_id)
    else:
        base_first = base_done = base

    first = (
        base_first.filter(first_contact_at__gte=start, first_contact_at__lt=end, first_contact_by__isnull=False)
        .annotate(
            day=TruncDate("first_contact_at", tzinfo=tz),
            wait=ExpressionWrapper(F("first_contact_at") - F("created_at"), output_field=DurationField()),
        )
        .order_by()
    )
    postgres = connection.vendor == "postgresql"
    aggregates = {"count": Count("pk"), "avg": Avg("wait")}
    if postgres:
        aggregates["median"] = _Median("wait")
    first_rows = list(first.values("first_contact_by", "day").annotate(**aggregates))
    if not postgres:
        # SQLite has no median aggregate: take it from the same durations, one row per request.
        waits: dict[tuple, list[timedelta]] = defaultdict(list)
        for row in first.values_list("first_contact_by", "day", "wait"):
            waits[(row[0], row[1])].append(row[2])
        for row in first_rows:
            row["median"] = statistics.median(waits[(row["first_contact_by"], row["day"])])

    done_rows = list(
        base_done.filter(
            status=CallbackStatus.COMPLETED, closed_at__gte=start, closed_at__lt=end, assigned_to__isnull=False
        )
        .annotate(
            day=TruncDate("closed_at", tzinfo=tz),
            took=ExpressionWrapper(F("closed_at") - F("created_at"), output_field=DurationField()),
        )
        .values("assigned_to", "day")
        .order_by()
        .annotate(count=Count("pk"), avg=Avg("took"))
    )

    cells: dict[tuple, dict] = defaultdict(dict)
    for row in first_rows:
        cells[(row["first_contact_by"], row["day"])].update(
            first_contacts=row["count"],
            avg_time_to_first_contact=_seconds(row["avg"]),
            median_time_to_first_contact=_seconds(row["median"]),
        )
    for row in done_rows:
        cells[(row["assigned_to"], row["day"])].update(
            handled=row["count"], avg_time_to_resolution=_seconds(row["avg"])
        )
    emails = dict(User.objects.filter(pk__in={key[0] for key in cells}).values_list("pk", "email"))
    days = [
        AgentDay(
            agent=str(agent),
            agent_email=emails.get(agent, ""),
            date=day,
            first_contacts=cell.get("first_contacts", 0),
            avg_time_to_first_contact=cell.get("avg_time_to_first_contact"),
            median_time_to_first_contact=cell.get("median_time_to_first_contact"),
            handled=cell.get("handled", 0),
            avg_time_to_resolution=cell.get("avg_time_to_resolution"),
        )
        for (agent, day), cell in cells.items()
    ]
    days.sort(key=lambda d: (d.date, d.agent_email))
    return [asdict(d) for d in days]
