"""Daily rollups: which (organization, day) slices changed, and rewriting them from the raw rows.

A slice is one organization's day in its own time zone. Rewriting a slice deletes its `DailyStat`,
`LinkDailyStat` and `AgentDailyStat` rows and inserts them again with one INSERT … SELECT … GROUP BY
per table over messages, message events, conversions and callback requests, so a run is idempotent
and a late event for an old day rewrites that day only.

Which slices changed comes from the watermarks in `RollupState`: event and conversion ids above
the last ones rolled up (insert-only tables), messages sent or failed and callbacks updated since
the last run (rows that change, read with a safety margin because their times are stamped a little
before they commit). The same reading, without the id lookback, gives the selectors the slices whose
rollup rows are stale, which they compute live.

Days older than EVENT_RETENTION_DAYS are frozen: their raw events may be pruned, so their rollup
rows are kept as they are and never recomputed.
"""

# Only fixed table and column names and placeholders are formatted into these statements; every value
# is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Organization
from analytics.models import COUNTERS, TOTALS, Conversion, RollupState
from callbacks.models import CallbackStatus
from campaigns.models import MessageStatus
from tracking import retention
from tracking.models import EventType, MessageEvent

SOURCES = ("events", "conversions", "messages", "callbacks")
# Counter columns of a DailyStat row, in one fixed order for every SELECT that fills them.
FIELDS = (*COUNTERS, *TOTALS)
DIMENSIONS = ("date", "campaign_id", "step", "variant_id", "channel", "sending_domain")
AGENT_FIELDS = (
    "handled",
    "first_contacts",
    "first_contact_seconds",
    "resolutions",
    "resolution_seconds",
    "sla_breaches",
)

# Send and callback times are stamped before their transaction commits: rows are read back this far.
COMMIT_MARGIN = timedelta(minutes=10)
# A message fails when its last retry fails, minutes after it was due (the day it is counted on), or
# later when a backlog is sent late: failures due this far back are read again on every run.
FAILURE_LOOKBACK = timedelta(hours=6)
# Ids are handed out before commit, so a batch inserted by a slower transaction can appear below the
# watermark after a run moved past it: the rollup looks again at this many ids below it, those stored
# since shortly before the previous run.
EVENT_ID_LOOKBACK = 20_000
CONVERSION_ID_LOOKBACK = 1_000
# Days per statement when rewriting: bounds the statement's size and one transaction's work.
DAYS_PER_CHUNK = 31
PRUNE_BATCH = 10_000
WRITE_WORK_MEM = "64MB"
# pg_advisory_xact_lock key shared by the incremental run and rebuilds ("analytic" in ASCII).
LOCK_KEY = 0x616E616C7974

SENT_STATUSES = (MessageStatus.SENT, MessageStatus.COMPLAINED)  # the range from sent up to complained
EVENT_TYPES = (
    EventType.DELIVERED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.BOUNCED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.REPLIED,
)


# --- SQL pieces shared by both databases -------------------------------------------------------------


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def local_date_sql(column: str, tz_sql: str = "%s") -> str:
    """The date of `column` in the time zone `tz_sql` (a placeholder or a column), as SQL."""
    if _postgres():
        return f"(({column}) AT TIME ZONE {tz_sql})::date"
    # Django's own SQLite function for TruncDate in a time zone; stored times are UTC.
    return f"django_datetime_cast_date({column}, {tz_sql}, '{connection.timezone_name}')"


def seconds_between_sql(later: str, earlier: str) -> str:
    if _postgres():
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS BIGINT)"
    return f"CAST(ROUND((julianday({later}) - julianday({earlier})) * 86400) AS INTEGER)"


def uuid_param(value) -> object:
    return models.UUIDField().get_db_prep_value(value, connection)


def date_param(value: date) -> object:
    return connection.ops.adapt_datefield_value(value)


def datetime_param(value: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def to_uuid(value) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def to_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def to_decimal(value) -> Decimal:
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(Decimal("0.01"))


def day_start(tz: ZoneInfo, day: date) -> datetime:
    """The instant the local day begins (a midnight skipped by a clock change maps to the change)."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(ZoneInfo("UTC"))


def local_date(tz: ZoneInfo, at: datetime) -> date:
    return at.astimezone(tz).date()


def time_ranges(tz: ZoneInfo, dates: Iterable[date]) -> list[tuple[datetime, datetime]]:
    """[start, end) of every run of consecutive local days, in UTC."""
    ranges: list[tuple[datetime, datetime]] = []
    run_start = previous = None
    for day in sorted(set(dates)):
        if previous is not None and day == previous + timedelta(days=1):
            previous = day
            continue
        if run_start is not None:
            ranges.append((day_start(tz, run_start), day_start(tz, previous + timedelta(days=1))))
        run_start = previous = day
    if run_start is not None:
        ranges.append((day_start(tz, run_start), day_start(tz, previous + timedelta(days=1))))
    return ranges


def _in_ranges(column: str, ranges: Sequence[tuple[datetime, datetime]]) -> tuple[str, list]:
    sql = " OR ".join(f"({column} >= %s AND {column} < %s)" for _ in ranges)
    params = [datetime_param(bound) for pair in ranges for bound in pair]
    return f"({sql})", params


def _select_list(dimensions: dict[str, str], values: dict[str, str], fields: Sequence[str]) -> str:
    columns = [f"{expr} AS {name}" for name, expr in dimensions.items()]
    columns += [f"{values.get(name, '0')} AS {name}" for name in fields]
    return ", ".join(columns)


def daily_rows_sql(organization_id, tz_name: str, dates: Iterable[date], *, campaign_id=None) -> tuple[str, list]:
    """SELECT organization_id, date, campaign_id, step, variant_id, channel, sending_domain, *FIELDS of the
    given local days, computed from the raw rows."""
    tz = ZoneInfo(tz_name)
    ranges = time_ranges(tz, dates)
    org = uuid_param(organization_id)
    campaign = uuid_param(campaign_id) if campaign_id is not None else None
    group = ", ".join(DIMENSIONS)
    parts: list[str] = []
    params: list = []

    def message_part(day_column: str, where: str, where_params: list, values: dict[str, str]) -> None:
        range_sql, range_params = _in_ranges(day_column, ranges)
        campaign_sql = " AND m.campaign_id = %s" if campaign is not None else ""
        inner = (
            f"SELECT {local_date_sql(day_column)} AS date, m.campaign_id, m.step, m.variant_id, c.channel, "
            "m.sending_domain, m.id AS message_id FROM campaigns_message m "
            "JOIN campaigns_campaign c ON c.id = m.campaign_id "
            f"WHERE m.organization_id = %s AND {where} AND {range_sql}{campaign_sql}"
        )
        dims = {name: name for name in DIMENSIONS}
        parts.append(f"SELECT {_select_list(dims, values, FIELDS)} FROM ({inner}) x GROUP BY {group}")
        params.extend([tz_name, org, *where_params, *range_params, *([campaign] if campaign is not None else [])])

    message_part(
        "m.sent_at",
        "m.sent_at IS NOT NULL AND m.status >= %s AND m.status <= %s",
        list(map(int, SENT_STATUSES)),
        {"sent": "COUNT(*)"},
    )
    message_part(
        "COALESCE(m.scheduled_at, m.created_at)", "m.status = %s", [int(MessageStatus.FAILED)], {"failed": "COUNT(*)"}
    )

    # Events: dimensions from the event's message, the channel from its campaign.
    def distinct_messages(event_type: str) -> str:
        return f"COUNT(DISTINCT CASE WHEN type = '{event_type}' THEN message_id END)"

    def events_where(event_type: str, condition: str) -> str:
        return f"SUM(CASE WHEN type = '{event_type}' AND {condition} THEN 1 ELSE 0 END)"

    event_values = {
        "delivered": distinct_messages(EventType.DELIVERED),
        "bounced": distinct_messages(EventType.BOUNCED),
        "complained": distinct_messages(EventType.COMPLAINED),
        "unsubscribed": distinct_messages(EventType.UNSUBSCRIBED),
        "replied": distinct_messages(EventType.REPLIED),
        "opened": events_where(EventType.OPENED, "is_unique AND NOT machine"),
        "clicked": events_where(EventType.CLICKED, "is_unique AND NOT machine"),
        "opens": events_where(EventType.OPENED, "NOT machine"),
        "clicks": events_where(EventType.CLICKED, "NOT machine"),
        "machine_opens": events_where(EventType.OPENED, "machine"),
        "machine_clicks": events_where(EventType.CLICKED, "machine"),
    }
    range_sql, range_params = _in_ranges("e.occurred_at", ranges)
    campaign_sql = " AND m.campaign_id = %s" if campaign is not None else ""
    inner = (
        f"SELECT {local_date_sql('e.occurred_at')} AS date, m.campaign_id, m.step, m.variant_id, c.channel, "
        "m.sending_domain, e.message_id, e.type, e.is_unique, e.machine FROM tracking_messageevent e "
        "JOIN campaigns_message m ON m.id = e.message_id AND m.organization_id = e.organization_id "
        "JOIN campaigns_campaign c ON c.id = m.campaign_id "
        f"WHERE e.organization_id = %s AND e.type IN ({', '.join(['%s'] * len(EVENT_TYPES))}) "
        f"AND {range_sql}{campaign_sql}"
    )
    dims = {name: name for name in DIMENSIONS}
    parts.append(f"SELECT {_select_list(dims, event_values, FIELDS)} FROM ({inner}) x GROUP BY {group}")
    params.extend([tz_name, org, *map(str, EVENT_TYPES), *range_params, *([campaign] if campaign is not None else [])])

    # Conversions: dimensions from their message if any, else their campaign only, else none.
    range_sql, range_params = _in_ranges("cv.occurred_at", ranges)
    campaign_sql = " AND COALESCE(m.campaign_id, cv.campaign_id) = %s" if campaign is not None else ""
    inner = (
        f"SELECT {local_date_sql('cv.occurred_at')} AS date, COALESCE(m.campaign_id, cv.campaign_id) AS campaign_id, "
        "COALESCE(m.step, 0) AS step, m.variant_id, COALESCE(c.channel, '') AS channel, "
        "COALESCE(m.sending_domain, '') AS sending_domain, cv.value FROM analytics_conversion cv "
        "LEFT JOIN campaigns_message m ON m.id = cv.message_id AND m.organization_id = cv.organization_id "
        "LEFT JOIN campaigns_campaign c ON c.id = COALESCE(m.campaign_id, cv.campaign_id) "
        f"WHERE cv.organization_id = %s AND {range_sql}{campaign_sql}"
    )
    parts.append(
        f"SELECT {_select_list(dims, {'conversions': 'COUNT(*)', 'revenue': 'SUM(value)'}, FIELDS)} "
        f"FROM ({inner}) x GROUP BY {group}"
    )
    params.extend([tz_name, org, *range_params, *([campaign] if campaign is not None else [])])

    sums = ", ".join(f"SUM({name}) AS {name}" for name in FIELDS)
    sql = f"SELECT %s AS organization_id, {group}, {sums} FROM ({' UNION ALL '.join(parts)}) u GROUP BY {group}"
    return sql, [org, *params]


def link_rows_sql(organization_id, tz_name: str, dates: Iterable[date], *, campaign_id=None) -> tuple[str, list]:
    """SELECT organization_id, date, campaign_id, url, clicks, unique_clicks: human clicks per original URL.
    A click is unique when it is the message's first human click on that URL."""
    tz = ZoneInfo(tz_name)
    org = uuid_param(organization_id)
    range_sql, range_params = _in_ranges("e.occurred_at", time_ranges(tz, dates))
    campaign_sql = " AND m.campaign_id = %s" if campaign_id is not None else ""
    inner = (
        f"SELECT {local_date_sql('e.occurred_at')} AS date, m.campaign_id, e.url, "
        "CASE WHEN NOT EXISTS (SELECT 1 FROM tracking_messageevent p WHERE p.message_id = e.message_id "
        "AND p.type = e.type AND p.url = e.url AND NOT p.machine "
        "AND (p.occurred_at < e.occurred_at OR (p.occurred_at = e.occurred_at AND p.id < e.id))) "
        "THEN 1 ELSE 0 END AS first_click FROM tracking_messageevent e "
        "JOIN campaigns_message m ON m.id = e.message_id AND m.organization_id = e.organization_id "
        f"WHERE e.organization_id = %s AND e.type = %s AND NOT e.machine AND e.url <> '' AND {range_sql}"
        f"{campaign_sql}"
    )
    sql = (
        "SELECT %s AS organization_id, date, campaign_id, url, COUNT(*) AS clicks, SUM(first_click) AS unique_clicks "
        f"FROM ({inner}) x GROUP BY date, campaign_id, url"
    )
    params = [org, tz_name, org, str(EventType.CLICKED), *range_params]
    if campaign_id is not None:
        params.append(uuid_param(campaign_id))
    return sql, params


def agent_rows_sql(organization_id, tz_name: str, dates: Iterable[date]) -> tuple[str, list]:
    """SELECT organization_id, date, agent_id, *AGENT_FIELDS: callbacks closed, first reached and
    breached per agent per local day."""
    tz = ZoneInfo(tz_name)
    ranges = time_ranges(tz, dates)
    org = uuid_param(organization_id)
    dims = {"date": "date", "agent_id": "agent_id"}
    closed_range, closed_params = _in_ranges("r.closed_at", ranges)
    completed = f"r.status = '{CallbackStatus.COMPLETED}'"
    closed = (
        f"SELECT {local_date_sql('r.closed_at')} AS date, r.assigned_to_id AS agent_id, "
        f"CASE WHEN {completed} THEN 1 ELSE 0 END AS resolved, "
        f"CASE WHEN {completed} THEN {seconds_between_sql('r.closed_at', 'r.created_at')} ELSE 0 END AS took, "
        "CASE WHEN r.closed_at > r.sla_due_at OR r.overdue THEN 1 ELSE 0 END AS breached "
        "FROM callbacks_callbackrequest r WHERE r.organization_id = %s AND r.assigned_to_id IS NOT NULL "
        f"AND r.status IN (%s, %s) AND {closed_range}"
    )
    contact_range, contact_params = _in_ranges("r.first_contact_at", ranges)
    contacted = (
        f"SELECT {local_date_sql('r.first_contact_at')} AS date, r.first_contact_by_id AS agent_id, "
        f"{seconds_between_sql('r.first_contact_at', 'r.created_at')} AS took "
        "FROM callbacks_callbackrequest r WHERE r.organization_id = %s AND r.first_contact_by_id IS NOT NULL "
        f"AND {contact_range}"
    )
    closed_values = {
        "handled": "SUM(resolved)",
        "resolutions": "SUM(resolved)",
        "resolution_seconds": "SUM(took)",
        "sla_breaches": "SUM(breached)",
    }
    contact_values = {"first_contacts": "COUNT(*)", "first_contact_seconds": "SUM(took)"}
    parts = [
        f"SELECT {_select_list(dims, closed_values, AGENT_FIELDS)} FROM ({closed}) x GROUP BY date, agent_id",
        f"SELECT {_select_list(dims, contact_values, AGENT_FIELDS)} FROM ({contacted}) y GROUP BY date, agent_id",
    ]
    sums = ", ".join(f"SUM({name}) AS {name}" for name in AGENT_FIELDS)
    sql = (
        f"SELECT %s AS organization_id, date, agent_id, {sums} "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY date, agent_id"
    )
    params = [
        org,
        tz_name,
        org,
        str(CallbackStatus.COMPLETED),
        str(CallbackStatus.CANCELLED),
        *closed_params,
        tz_name,
        org,
        *contact_params,
    ]
    return sql, params


def _tune(cursor, *, work_mem: str | None = None) -> None:
    """Per-transaction settings for these large aggregates on PostgreSQL: JIT compiling them costs
    seconds and saves nothing, and a larger sort memory keeps their GROUP BY off the disk."""
    if not _postgres():
        return
    cursor.execute("SET LOCAL jit = off")
    if work_mem:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [work_mem])


def fetch_dicts(sql: str, params: list) -> list[dict]:
    with transaction.atomic(), connection.cursor() as cursor:
        _tune(cursor)
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --- Which slices changed ----------------------------------------------------------------------------


def first_open_day(tz: ZoneInfo, at: datetime) -> date:
    """The oldest local day still recomputed: days before it may have lost raw events to pruning."""
    return local_date(tz, at - timedelta(days=settings.EVENT_RETENTION_DAYS)) + timedelta(days=1)


def _states(*, for_update: bool = False) -> dict[str, RollupState]:
    queryset = RollupState.objects.filter(source__in=SOURCES)
    if for_update:
        queryset = queryset.select_for_update()
    return {state.source: state for state in queryset}


def _touched(sql: str, params: list, into: dict) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for organization_id, day in cursor.fetchall():
            if organization_id is not None and day is not None:
                into[to_uuid(organization_id)].add(to_date(day))


def touched_slices(
    *,
    states: dict[str, RollupState],
    organization_id=None,
    events_upto: int | None = None,
    conversions_upto: int | None = None,
    lookback: bool = False,
) -> dict[uuid.UUID, set[date]]:
    """{organization id: local days} changed since the watermarks in `states`."""
    touched: dict[uuid.UUID, set[date]] = defaultdict(set)
    org_sql = " AND {alias}.organization_id = %s" if organization_id is not None else ""
    org_params = [uuid_param(organization_id)] if organization_id is not None else []

    def by_id(table: str, alias: str, source: str, upto: int | None, lookback_ids: int, stored: str) -> None:
        state = states.get(source)
        since = state.last_id if state else 0
        where, params = f"{alias}.id > %s", [since]
        if lookback and since:
            # Ids just below the watermark stored since the last run may have committed after it.
            where = f"{alias}.id > %s AND ({alias}.id > %s OR {alias}.{stored} >= %s)"
            params = [max(0, since - lookback_ids), since, datetime_param(state.updated_at - COMMIT_MARGIN)]
        if upto is not None:
            where += f" AND {alias}.id <= %s"
            params.append(upto)
        _touched(
            f"SELECT DISTINCT {alias}.organization_id, {local_date_sql(f'{alias}.occurred_at', 'o.timezone')} "
            f"FROM {table} {alias} JOIN accounts_organization o ON o.id = {alias}.organization_id "
            f"WHERE {where}{org_sql.format(alias=alias)}",
            [*params, *org_params],
            touched,
        )

    by_id("tracking_messageevent", "e", "events", events_upto, EVENT_ID_LOOKBACK, "received_at")
    by_id("analytics_conversion", "cv", "conversions", conversions_upto, CONVERSION_ID_LOOKBACK, "created_at")

    def by_time(
        table: str, column: str, since: datetime | None, where: str = "", where_params=(), since_sql: str = ""
    ) -> None:
        since_params = []
        if since is None:
            since_sql = ""
        else:
            since_sql = since_sql or f" AND {column} >= %s"
            since_params = [datetime_param(since)] * since_sql.count("%s")
        _touched(
            f"SELECT DISTINCT t.organization_id, {local_date_sql(column, 'o.timezone')} "
            f"FROM {table} t JOIN accounts_organization o ON o.id = t.organization_id "
            f"WHERE {column} IS NOT NULL{where}{since_sql}{org_sql.format(alias='t')}",
            [*where_params, *since_params, *org_params],
            touched,
        )

    messages = states.get("messages")
    sent_since = messages.last_at - COMMIT_MARGIN if messages and messages.last_at else None
    failed_since = messages.last_at - FAILURE_LOOKBACK if messages and messages.last_at else None
    by_time("campaigns_message", "t.sent_at", sent_since)
    by_time(
        "campaigns_message",
        "COALESCE(t.scheduled_at, t.created_at)",
        failed_since,
        " AND t.status = %s",
        [int(MessageStatus.FAILED)],
        # Spelled out (not the COALESCE) so PostgreSQL reads the partial index of failed messages.
        since_sql=" AND (t.scheduled_at >= %s OR (t.scheduled_at IS NULL AND t.created_at >= %s))",
    )
    callbacks = states.get("callbacks")
    if callbacks and callbacks.last_at:
        since = datetime_param(callbacks.last_at - COMMIT_MARGIN)
        for column in ("closed_at", "first_contact_at"):
            by_time("callbacks_callbackrequest", f"t.{column}", None, " AND t.updated_at >= %s", [since])
    else:
        for column in ("closed_at", "first_contact_at"):
            by_time("callbacks_callbackrequest", f"t.{column}", None)
    return touched


def _open_days(timezones: dict, touched: dict[uuid.UUID, set[date]], at: datetime) -> dict[uuid.UUID, list[date]]:
    result = {}
    for organization_id, days in touched.items():
        tz_name = timezones.get(organization_id)
        if tz_name is None:
            continue
        oldest = first_open_day(ZoneInfo(tz_name), at)
        kept = sorted(day for day in days if day >= oldest)
        if kept:
            result[organization_id] = kept
    return result


def stale_days(organization, *, at: datetime | None = None) -> list[date]:
    """The organization's days whose rollup rows are behind the raw rows (for the live tail)."""
    states = _states()
    touched = touched_slices(states=states, organization_id=organization.pk)
    return _open_days({organization.pk: organization.timezone}, touched, at or timezone.now()).get(organization.pk, [])


# --- Writing slices -----------------------------------------------------------------------------------


def _chunks(days: Sequence[date], size: int = DAYS_PER_CHUNK) -> Iterable[list[date]]:
    for start in range(0, len(days), size):
        yield list(days[start : start + size])


def write_slices(organization_id, tz_name: str, days: Sequence[date]) -> int:
    """Delete and recompute the organization's rollup rows of `days`; returns the rows written."""
    written = 0
    org = uuid_param(organization_id)
    with transaction.atomic(), connection.cursor() as cursor:
        _tune(cursor, work_mem=WRITE_WORK_MEM)
        for chunk in _chunks(sorted(set(days))):
            day_params = [date_param(day) for day in chunk]
            placeholders = ", ".join(["%s"] * len(chunk))
            for table in ("analytics_dailystat", "analytics_linkdailystat", "analytics_agentdailystat"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE organization_id = %s AND date IN ({placeholders})", [org, *day_params]
                )
            sql, params = daily_rows_sql(organization_id, tz_name, chunk)
            columns = ", ".join(("organization_id", *DIMENSIONS, *FIELDS))
            cursor.execute(f"INSERT INTO analytics_dailystat ({columns}) {sql}", params)
            written += max(cursor.rowcount, 0)
            sql, params = link_rows_sql(organization_id, tz_name, chunk)
            cursor.execute(
                "INSERT INTO analytics_linkdailystat (organization_id, date, campaign_id, url, clicks, unique_clicks) "
                + sql,
                params,
            )
            written += max(cursor.rowcount, 0)
            sql, params = agent_rows_sql(organization_id, tz_name, chunk)
            columns = ", ".join(("organization_id", "date", "agent_id", *AGENT_FIELDS))
            cursor.execute(f"INSERT INTO analytics_agentdailystat ({columns}) {sql}", params)
            written += max(cursor.rowcount, 0)
    return written


def _lock(*, wait: bool) -> bool:
    """Serialize rollup writers; on SQLite the database's single writer does it."""
    if not _postgres():
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        return bool(cursor.fetchone()[0])


def rollup_incremental(*, now: datetime | None = None) -> dict:
    """Rewrite every slice touched since the watermarks, then move the watermarks, in one transaction."""
    RollupState.objects.bulk_create([RollupState(source=source) for source in SOURCES], ignore_conflicts=True)
    with transaction.atomic():
        if not _lock(wait=False):
            return {"skipped": True, "slices": 0, "rows": 0}
        states = _states(for_update=True)
        at = now or timezone.now()
        events_upto = MessageEvent.objects.aggregate(top=Max("id"))["top"]
        conversions_upto = Conversion.objects.aggregate(top=Max("id"))["top"]
        touched = touched_slices(
            states=states, events_upto=events_upto, conversions_upto=conversions_upto, lookback=True
        )
        timezones = dict(Organization.objects.filter(pk__in=list(touched)).values_list("pk", "timezone"))
        slices = _open_days(timezones, touched, at)
        rows = 0
        for organization_id, days in slices.items():
            rows += write_slices(organization_id, timezones[organization_id], days)
        for source, field, value in (
            ("events", "last_id", events_upto),
            ("conversions", "last_id", conversions_upto),
            ("messages", "last_at", at),
            ("callbacks", "last_at", at),
        ):
            state = states[source]
            if value is not None and (field == "last_at" or value > state.last_id):
                setattr(state, field, value)
            state.updated_at = at
            state.save(update_fields=[field, "updated_at"])
    return {
        "skipped": False,
        "organizations": len(slices),
        "slices": sum(len(days) for days in slices.values()),
        "rows": rows,
        "events_watermark": states["events"].last_id,
        "conversions_watermark": states["conversions"].last_id,
    }


def rebuild(*, organization_id=None, date_from: date, date_to: date, now: datetime | None = None) -> dict:
    """Rewrite every organization's (or one organization's) days from `date_from` to `date_to`; days
    older than the event retention are left as they are."""
    if date_from > date_to:
        raise ValueError("date_from must not be after date_to.")
    at = now or timezone.now()
    organizations = Organization.objects.order_by("pk")
    if organization_id is not None:
        organizations = organizations.filter(pk=organization_id)
    result = {"organizations": 0, "days": 0, "rows": 0, "skipped_days": 0}
    span = (date_to - date_from).days + 1
    for organization_id_, tz_name in organizations.values_list("pk", "timezone"):
        oldest = first_open_day(ZoneInfo(tz_name), at)
        days = [date_from + timedelta(days=n) for n in range(span)]
        kept = [day for day in days if day >= oldest]
        result["organizations"] += 1
        result["skipped_days"] += len(days) - len(kept)
        for chunk in _chunks(kept):
            with transaction.atomic():
                _lock(wait=True)
                result["rows"] += write_slices(organization_id_, tz_name, chunk)
            result["days"] += len(chunk)
    return result


def prune_events(*, now: datetime | None = None, batch_size: int = PRUNE_BATCH) -> int:
    """Delete message events older than EVENT_RETENTION_DAYS that were rolled up; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EVENT_RETENTION_DAYS)
    state = RollupState.objects.filter(source="events").first()
    if state is None or not state.last_id:
        return 0
    return retention.events_prune(older_than=cutoff, up_to_id=state.last_id, batch_size=batch_size)
