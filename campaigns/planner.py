"""The send planner: gives every recipient of a campaign a send time and a sending domain.

A pure function of (settings, recipients): no database, no clock, no randomness. The launch
(`campaign_plan`) and the dry-run (`campaign_dry_run`) both run it, so what the dry-run shows is
what launching does.

    settings = PlanSettings.from_api(schedule=..., throttle=..., sending_domains=[...],
                                     default_timezone="Europe/Amsterdam", now=timezone.now())
    for slot in plan(settings, recipients):   # recipients: any iterable of Recipient, read once
        ...                                   # slot.key, slot.scheduled_at (UTC), slot.sending_domain

Rules
-----
Time. Every instant is handled as an integer number of microseconds since the Unix epoch (UTC), so
intervals are real elapsed time and arithmetic is exact. Slots come out as aware UTC datetimes.

Window. `SendWindow(days, start, end)` is wall-clock time in the campaign's time zone (or the
recipient's, see below): days 0 = Monday ... 6 = Sunday, `start` inclusive, `end` exclusive, so a
message due exactly at 17:00 in an 08:00-17:00 window goes at 08:00 on the next sending day.
`end == time(0)` means midnight at the end of the day (the API accepts "24:00" or "00:00");
overnight windows (22:00-06:00) are not supported. No window means any time of day, every day.
An opening is the span of real time from the resolved start to the resolved end (see DST).
Holidays are dates in the same time zone as the window; a holiday has no sending time at all
(with or without a window). Every slot is at or after `start_at`, inside an opening of the window,
never on a holiday or a day outside `window.days`. When an opening closes, planning continues at
the next opening.

DST. A wall time is resolved to the earliest instant whose local clock reading is that time or
later on that day. So a wall time that does not exist (02:30 on the spring-forward day in
Europe/Amsterdam, where 02:00 jumps to 03:00) resolves to the jump itself (03:00 CEST), and an
ambiguous one (02:30 on the fall-back day) resolves to its first occurrence (fold=0, CEST). That
applies to window ends too: a 00:00-06:00 window lasts 5 real hours on the spring-forward day and
7 on the fall-back day (the repeated 02:00-03:00 hour is inside it, so the clock reads 02:xx twice).

Sending domains and spacing. Recipients are assigned to the sending domains round robin in input
order: recipient i goes through `sending_domains[i % N]`. With `per_domain_interval` I, the
campaign is paced as one sequence of send times staggered by I/N: d0 at t0, d1 at t0 + I/N,
d2 at t0 + 2I/N, d0 at t0 + I, ... The campaign as a whole sends N messages per I either way;
staggering spreads them evenly instead of firing N at once, and keeps consecutive messages on one
sending domain exactly I apart while inside one window opening. (Offsets are rounded up to whole
seconds when I is whole seconds, which never shortens a gap.) The pace restarts at the opening
time when a window opens and at the start of the next hour when `max_per_hour` spills over; round
robin carries on where it was. A domain is never used less than I after its previous message, even
across openings. Without an interval there is no spacing at all: everyone gets the earliest
allowed instant (start_at or the next opening), and nothing is invented.

max_per_hour. Counted per UTC clock hour ([hh:00, hh+1:00) UTC), over all sending domains. UTC
buckets are unambiguous across DST (the repeated local hour on the fall-back day would otherwise
be one bucket holding two hours) and in zones with half-hour offsets. When an hour is full the
slot moves to the start of the next hour, or to the next window opening if that hour is closed.
Fixed buckets, not a rolling hour: a burst at 08:59 and another at 09:00 can both be full.

per_recipient_domain_per_minute. At most C slots per UTC minute per recipient domain (e.g.
gmail.com). Each recipient domain has its own cursor (current minute, count there); a recipient
whose domain's minute is full moves to the next minute with room, and only that domain's later
recipients queue behind it. Recipients of other domains are not delayed (no head-of-line
blocking): the shared pace does not wait for a held-back recipient. With a per-domain interval the
held-back message still uses its round-robin sending domain, so that one sending domain's next
message follows it at least I later. SMS recipients (domain '') are not capped.

Recipient time zones. With `recipient_timezone`, the window and the holidays are read in each
recipient's own zone: a New York recipient with an 08:00-17:00 window is sent between 08:00 and
17:00 New York time. An empty or unknown zone name falls back to the campaign's zone (never an
error). Throttles stay global: sending-domain spacing, `max_per_hour` (UTC hours) and the
recipient-domain cap are shared by all zones. Without an interval each recipient takes the
earliest instant allowed in its own zone, so zones do not delay each other. Two cursors only move
forward, and that is where input order matters:
- with an interval the pace is one sequence for the campaign: when a recipient's window is closed
  at the pace's next time, the pace jumps to that recipient's next opening (and is staggered there);
- a recipient domain's cursor is shared by all zones, so a gmail.com recipient is never placed
  before the previous gmail.com recipient's minute.
So feed recipients grouped by time zone, in the order their windows open in UTC (east to west,
i.e. by descending UTC offset): each group then fills its own window tightly. Any other order is
still correct (no rule is ever broken) but packs less tightly: a group whose window opened earlier
than the previous group's waits for the cursor, possibly until its next opening.

Streaming and memory. `plan` is a generator: it reads one recipient, yields its slot and keeps
nothing about it. State is O(sending domains + time zones + recipient domains with a live
per-minute cursor + UTC hours used between the pace and the latest slot): one small counter per
hour, so even a year-long campaign holds fewer than 9,000, and counters behind the pace are dropped
as it advances. Window openings are computed once per day and zone and cached, so a recipient
costs a few integer comparisons, not a zoneinfo conversion. Output is deterministic and in input
order: the same settings and recipients give the same slots.

Guard rails. Settings are validated when built (`PlanSettingsError(field, message)`, field paths as
in the API, e.g. "schedule.window.start", "throttle.max_per_hour"). If the window and holidays leave
no sending time within 366 days of an instant the planner has to place a message at, it raises
`PlanSettingsError("schedule.window", ...)` instead of searching forever.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "ALL_DAYS",
    "SEARCH_DAYS",
    "PlanSettings",
    "PlanSettingsError",
    "PlanSummary",
    "Recipient",
    "SendWindow",
    "Slot",
    "plan",
]

SEARCH_DAYS = 366
ALL_DAYS = frozenset(range(7))

_SECOND = 1_000_000  # microseconds
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)
# An "opening" that contains every instant the planner can meet; used when nothing is ever closed.
_FOREVER = (-(1 << 62), 1 << 62)
_HH_MM = re.compile(r"(\d{2}):(\d{2})")
# Counter dictionaries are pruned once they pass this size (and then twice their pruned size).
_PRUNE_AT = 1024


class PlanSettingsError(ValueError):
    """Invalid planner settings; `field` is the API path (e.g. "schedule.window.start")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- value types -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendWindow:
    """Wall-clock sending hours: `days` (0 = Monday ... 6 = Sunday), `start` inclusive, `end` exclusive.

    `end == time(0)` means midnight at the end of the day, so `SendWindow(ALL_DAYS, time(0), time(0))`
    is the whole week.
    """

    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        try:
            days = frozenset(self.days)
        except TypeError:
            raise PlanSettingsError("schedule.window.days", "must be a list of weekdays 0-6") from None
        if not days:
            raise PlanSettingsError("schedule.window.days", "choose at least one day")
        if any(isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6 for day in days):
            raise PlanSettingsError("schedule.window.days", "days are numbers 0 (Monday) to 6 (Sunday)")
        object.__setattr__(self, "days", days)
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise PlanSettingsError(f"schedule.window.{name}", "must be a wall-clock time without a zone")
        if self.end != time(0) and self.end <= self.start:
            raise PlanSettingsError(
                "schedule.window.end",
                "must be after the start (overnight windows are not supported; 24:00 means midnight)",
            )

    @property
    def is_always_open(self) -> bool:
        return self.days == ALL_DAYS and self.start == time(0) and self.end == time(0)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One message to plan. `key` is never inspected; `domain` is the lower-case email domain ('' for SMS);
    `timezone` is an IANA name, '' (or unknown) meaning the campaign's zone."""

    key: int
    domain: str
    timezone: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    """The plan for one recipient: when (aware, UTC) and through which sending domain."""

    key: int
    scheduled_at: datetime
    sending_domain: str


@dataclass(frozen=True)
class PlanSettings:
    """Everything the planner needs; validated on construction (raises PlanSettingsError)."""

    start_at: datetime
    timezone: str
    sending_domains: tuple[str, ...]
    window: SendWindow | None = None
    holidays: frozenset[date] = frozenset()
    per_domain_interval: timedelta | None = None
    max_per_hour: int | None = None
    per_recipient_domain_per_minute: int | None = None
    recipient_timezone: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.start_at, datetime) or self.start_at.utcoffset() is None:
            raise PlanSettingsError("schedule.start_at", "must be a date-time with a UTC offset")
        zone = _zone(self.timezone) if isinstance(self.timezone, str) else None
        if zone is None:
            raise PlanSettingsError("schedule.timezone", f"unknown time zone {self.timezone!r}")

        domains = tuple(self.sending_domains)
        if not domains:
            raise PlanSettingsError(
                "sending_domains", "at least one sending domain is needed (pass the organization's default sender)"
            )
        if any(not isinstance(domain, str) or not domain for domain in domains):
            raise PlanSettingsError("sending_domains", "sending domains must be non-empty strings")
        if len({domain.lower() for domain in domains}) != len(domains):
            # A repeated domain would get two turns per round and so twice its allowed rate.
            raise PlanSettingsError("sending_domains", "each sending domain may appear only once")
        object.__setattr__(self, "sending_domains", domains)

        if self.window is not None and not isinstance(self.window, SendWindow):
            raise PlanSettingsError("schedule.window", "must be a SendWindow or None")
        holidays = frozenset(self.holidays)
        if any(isinstance(day, datetime) or not isinstance(day, date) for day in holidays):
            raise PlanSettingsError("schedule.holidays", "holidays are dates")
        object.__setattr__(self, "holidays", holidays)

        if self.per_domain_interval is not None and (
            not isinstance(self.per_domain_interval, timedelta) or self.per_domain_interval <= timedelta(0)
        ):
            raise PlanSettingsError("throttle.per_domain_interval_minutes", "must be a positive duration")
        for name, path in (
            ("max_per_hour", "throttle.max_per_hour"),
            ("per_recipient_domain_per_minute", "throttle.per_recipient_domain_per_minute"),
        ):
            value = getattr(self, name)
            if value is not None and not _is_positive_int(value):
                raise PlanSettingsError(path, "must be a positive whole number or null")

        # Fail here, not halfway through a plan, when the calendar has no sending time at all.
        _Calendar(zone, self.window, holidays).next_open(_to_us(self.start_at))

    @classmethod
    def from_api(
        cls,
        *,
        schedule: Mapping[str, Any] | None,
        throttle: Mapping[str, Any] | None,
        sending_domains: Iterable[str],
        default_timezone: str,
        now: datetime,
    ) -> PlanSettings:
        """Build settings from the campaign's API `schedule` and `throttle` objects.

        `sending_domains` must hold at least one domain: the caller substitutes the organization's
        default sender for an empty list. A `start_at` that is null, absent or in the past means `now`.
        Domains are stripped, lower-cased and de-duplicated (first occurrence kept).
        """
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        schedule = _mapping(schedule, "schedule")
        throttle = _mapping(throttle, "throttle")

        timezone_name = schedule.get("timezone") or default_timezone
        if not isinstance(timezone_name, str) or _zone(timezone_name) is None:
            raise PlanSettingsError("schedule.timezone", f"unknown time zone {timezone_name!r}")

        start_at = _parse_start_at(schedule.get("start_at"))
        start_at = now if start_at is None or start_at < now else start_at

        recipient_timezone = schedule.get("recipient_timezone")
        if recipient_timezone is None:
            recipient_timezone = False
        elif not isinstance(recipient_timezone, bool):
            raise PlanSettingsError("schedule.recipient_timezone", "must be true or false")

        interval_minutes = _optional_positive_int(throttle, "per_domain_interval_minutes")
        return cls(
            start_at=start_at,
            timezone=timezone_name,
            sending_domains=_parse_sending_domains(sending_domains),
            window=_parse_window(schedule.get("window")),
            holidays=_parse_holidays(schedule.get("holidays")),
            per_domain_interval=timedelta(minutes=interval_minutes) if interval_minutes else None,
            max_per_hour=_optional_positive_int(throttle, "max_per_hour"),
            per_recipient_domain_per_minute=_optional_positive_int(throttle, "per_recipient_domain_per_minute"),
            recipient_timezone=recipient_timezone,
        )


# --- API parsing -------------------------------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PlanSettingsError(path, "must be an object")
    return value


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# Upper bounds of the throttle settings: beyond them a plan would run past any calendar (a week
# between two messages of one domain is already more than any real throttle asks for).
THROTTLE_MAXIMUMS = {
    "per_domain_interval_minutes": 7 * 24 * 60,
    "max_per_hour": 10_000_000,
    "per_recipient_domain_per_minute": 1_000_000,
}


def _optional_positive_int(throttle: Mapping[str, Any], key: str) -> int | None:
    value = throttle.get(key)
    if value is None:
        return None
    if not _is_positive_int(value):
        raise PlanSettingsError(f"throttle.{key}", "must be a positive whole number or null")
    maximum = THROTTLE_MAXIMUMS[key]
    if value > maximum:
        raise PlanSettingsError(f"throttle.{key}", f"must be at most {maximum:,}")
    return value


def _parse_start_at(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PlanSettingsError("schedule.start_at", f"{value!r} is not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise PlanSettingsError("schedule.start_at", "must be an ISO 8601 date-time")
    if value.utcoffset() is None:
        raise PlanSettingsError("schedule.start_at", "must include a UTC offset, e.g. 2025-03-03T08:00:00+01:00")
    return value


def _parse_clock(value: Any, path: str, *, end: bool) -> time:
    """ "HH:MM" (00:00-23:59); for an end, "24:00" (like "00:00") means midnight at the end of the day."""
    match = _HH_MM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PlanSettingsError(path, f'{value!r} is not a time; use "HH:MM", e.g. "08:00"')
    hours, minutes = int(match[1]), int(match[2])
    if end and (hours, minutes) == (24, 0):
        return time(0)
    if hours > 23 or minutes > 59:
        raise PlanSettingsError(path, f"{value!r} is not a time of day")
    return time(hours, minutes)


def _parse_window(value: Any) -> SendWindow | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise PlanSettingsError("schedule.window", "must be an object with days, start and end, or null")
    days = value.get("days")
    if days is None:
        days = ALL_DAYS
    elif not isinstance(days, list | tuple) or not all(isinstance(day, int) for day in days):
        raise PlanSettingsError("schedule.window.days", "must be a list of weekdays 0-6")
    start = _parse_clock(value.get("start"), "schedule.window.start", end=False)
    end = _parse_clock(value.get("end"), "schedule.window.end", end=True)
    return SendWindow(days=frozenset(days), start=start, end=end)


def _parse_holidays(value: Any) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list | tuple):
        raise PlanSettingsError("schedule.holidays", "must be a list of dates (YYYY-MM-DD)")
    holidays = set()
    for position, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            holidays.add(item)
            continue
        try:
            holidays.add(date.fromisoformat(item))
        except (TypeError, ValueError):
            raise PlanSettingsError(
                "schedule.holidays", f"item {position}: {item!r} is not a date (use YYYY-MM-DD)"
            ) from None
    return frozenset(holidays)


def _parse_sending_domains(value: Iterable[str]) -> tuple[str, ...]:
    if value is None or isinstance(value, str):
        raise PlanSettingsError("sending_domains", "must be a list of domains")
    domains: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise PlanSettingsError("sending_domains", f"{item!r} is not a domain")
        domains.setdefault(item.strip().lower(), None)
    return tuple(domains)


# --- time helpers ------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    """The zone for an IANA name, or None when the name is empty or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        # OSError: names that hit a directory or an unreadable file in the tz database.
        return None


def _to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (moment - _EPOCH) // _ONE_US


def _from_us(instant: int) -> datetime:
    return _EPOCH + timedelta(microseconds=instant)


def _local(instant: int, zone: ZoneInfo) -> datetime:
    """The naive local clock reading of an instant."""
    return _from_us(instant).astimezone(zone).replace(tzinfo=None)


def _wall_to_us(day: date, wall: time, zone: ZoneInfo) -> int:
    """The earliest instant on `day` whose local reading is `wall` or later.

    Ambiguous wall times (fall-back) resolve to their first occurrence; wall times that do not exist
    (spring-forward gap) resolve to the instant the clocks jump.
    """
    naive = datetime.combine(day, wall)
    first = _to_us(naive.replace(tzinfo=zone))  # fold=0: the first occurrence when ambiguous
    if _local(first, zone) == naive:
        return first
    # In a gap, fold=0 uses the offset from before the jump and lands after it; fold=1 uses the offset
    # from after the jump and lands before it. The jump lies between: find it by bisection.
    before, after = _to_us(naive.replace(tzinfo=zone, fold=1)), first
    while after - before > 1:
        middle = (before + after) // 2
        if _local(middle, zone) >= naive:
            after = middle
        else:
            before = middle
    return after


class _Calendar:
    """The openings of one window in one zone, with holidays, as [open, close) microsecond ranges."""

    __slots__ = ("_days", "_end", "_holidays", "_openings", "_start", "_zone", "close", "floor", "open", "previous")

    def __init__(self, zone: ZoneInfo | None, window: SendWindow | None, holidays: frozenset[date]) -> None:
        self._zone = zone
        self._days = window.days if window else ALL_DAYS
        self._start = window.start if window else time(0)
        self._end = window.end if window else time(0)
        self._holidays = holidays
        self._openings: dict[date, tuple[int, int]] = {}
        # The last opening found; callers test `open <= t < close` inline before calling next_open.
        self.open, self.close = _FOREVER if (window is None or window.is_always_open) and not holidays else (0, 0)
        # The opening found before the last one: placements alternate between the pace and a
        # recipient domain's cursor, which may sit in different openings.
        self.previous = (0, 0)
        # Used by the planner: the earliest instant still free for this calendar's recipients.
        self.floor = 0

    def next_open(self, instant: int) -> int:
        """The earliest sending instant at or after `instant`."""
        if self.open <= instant < self.close:
            return instant
        opening, closing = self.previous
        if opening <= instant < closing:
            self.previous, self.open, self.close = (self.open, self.close), opening, closing
            return instant
        assert self._zone is not None  # only calendars with closed times get here
        day = _local(instant, self._zone).date()
        for _ in range(SEARCH_DAYS + 1):
            if day.weekday() in self._days and day not in self._holidays:
                opening, closing = self._opening(day)
                if closing > instant and closing > opening:  # an opening can be empty on a DST day
                    self.previous, self.open, self.close = (self.open, self.close), opening, closing
                    return max(opening, instant)
            day += _ONE_DAY
        raise PlanSettingsError(
            "schedule.window",
            f"the send window and holidays leave no sending time within {SEARCH_DAYS} days "
            f"of {_from_us(instant).isoformat()}",
        )

    def _opening(self, day: date) -> tuple[int, int]:
        opening = self._openings.get(day)
        if opening is None:
            if len(self._openings) >= _PRUNE_AT:
                self._openings.clear()  # a cache, not state: cheap to rebuild
            assert self._zone is not None
            start = _wall_to_us(day, self._start, self._zone)
            if self._end == time(0):
                end = _wall_to_us(day + _ONE_DAY, time(0), self._zone)
            else:
                end = _wall_to_us(day, self._end, self._zone)
            opening = self._openings[day] = (start, end)
        return opening


# --- the planner -------------------------------------------------------------------------------


def plan(settings: PlanSettings, recipients: Iterable[Recipient]) -> Iterator[Slot]:
    """Yield one Slot per recipient, in input order, lazily (see the module docstring for the rules)."""
    domains = settings.sending_domains
    lanes = len(domains)
    campaign_zone = _zone(settings.timezone)
    campaign_calendar = _Calendar(campaign_zone, settings.window, settings.holidays)
    calendars: dict[str, _Calendar] = {"": campaign_calendar, settings.timezone: campaign_calendar}
    by_recipient_zone = settings.recipient_timezone

    max_per_hour = settings.max_per_hour
    per_minute = settings.per_recipient_domain_per_minute or 0
    # UTC hour -> slots in it. Only hours at or after the pace matter; older ones are pruned.
    hour_counts: dict[int, int] = {}
    # Recipient domain -> (UTC minute of its latest slot, slots in that minute): a per-domain cursor.
    domain_minutes: dict[str, tuple[int, int]] = {}
    prune_hours_at = prune_domains_at = _PRUNE_AT

    interval = settings.per_domain_interval // _ONE_US if settings.per_domain_interval else 0
    # Pace offsets are ceil(k * interval / lanes) in `unit`s. Rounding up keeps every domain's gap >= interval;
    # whole seconds when the interval is whole seconds, so times stay readable.
    unit = _SECOND if interval % _SECOND == 0 else 1
    interval_units = interval // unit
    lane_free = [0] * lanes  # the earliest instant each sending domain may send again

    # The pace: the n-th send opportunity since the anchor is at anchor + ceil(n * interval / lanes).
    # Without an interval every opportunity is the anchor itself. The anchor only moves forward, so it
    # is a lower bound for every later slot; counters behind it can be dropped.
    anchor = _to_us(settings.start_at)
    ticks = 0
    # Without an interval the anchor follows only the constraints everyone shares, so one recipient's
    # zone never delays another's. With an interval it follows each recipient's own window (see docstring).
    always_open = _Calendar(None, None, frozenset())
    shared_calendar = always_open if by_recipient_zone else campaign_calendar

    def earliest(instant: int, calendar: _Calendar, cursor: tuple[int, int] | None) -> int:
        """The earliest instant >= `instant` that is open, has room this hour and in the domain's minute."""
        while True:
            if not calendar.open <= instant < calendar.close:
                instant = calendar.next_open(instant)
            if max_per_hour is not None:
                hour = instant // _HOUR
                if hour_counts.get(hour, 0) >= max_per_hour:
                    instant = (hour + 1) * _HOUR
                    continue
            if cursor is not None:
                minute = instant // _MINUTE
                if minute < cursor[0]:
                    instant = cursor[0] * _MINUTE
                    continue
                if minute == cursor[0] and cursor[1] >= per_minute:
                    instant = (minute + 1) * _MINUTE
                    continue
            return instant

    def calendar_for(name: str) -> _Calendar:
        zone = _zone(name)
        calendar = campaign_calendar if zone is None else _Calendar(zone, settings.window, settings.holidays)
        calendars[name] = calendar
        return calendar

    last_instant, last_datetime = None, _EPOCH
    for index, recipient in enumerate(recipients):
        calendar = campaign_calendar
        if by_recipient_zone and recipient.timezone:
            calendar = calendars.get(recipient.timezone) or calendar_for(recipient.timezone)

        if interval:
            tick = anchor + -((-ticks * interval_units) // lanes) * unit
            pace_calendar = calendar
        else:
            tick = anchor
            pace_calendar = shared_calendar
        base = earliest(tick, pace_calendar, None)
        if base != tick:
            # The pace hit a closed window or a full hour: restart it there, staggered afresh.
            anchor, ticks = base, 0
            if len(hour_counts) > prune_hours_at:
                for hour in [hour for hour in hour_counts if hour < anchor // _HOUR]:
                    del hour_counts[hour]
                prune_hours_at = max(_PRUNE_AT, 2 * len(hour_counts))
            if len(domain_minutes) > prune_domains_at:
                for domain in [d for d, (minute, _) in domain_minutes.items() if minute < anchor // _MINUTE]:
                    del domain_minutes[domain]
                prune_domains_at = max(_PRUNE_AT, 2 * len(domain_minutes))
        if calendar is not pace_calendar:
            # Recipient zones without an interval: each zone keeps its own floor. Hours only fill up, so
            # the earliest free instant of a zone never moves back, and the search resumes where it was
            # instead of walking over every full hour since the shared anchor.
            base = earliest(calendar.floor if calendar.floor > base else base, calendar, None)
            calendar.floor = base

        lane = index % lanes
        instant = base
        if interval and lane_free[lane] > instant:
            instant = lane_free[lane]
        domain = recipient.domain
        cursor = domain_minutes.get(domain) if per_minute and domain else None
        if instant != base or cursor is not None:
            instant = earliest(instant, calendar, cursor)

        if max_per_hour is not None:
            hour = instant // _HOUR
            hour_counts[hour] = hour_counts.get(hour, 0) + 1
        if per_minute and domain:
            minute = instant // _MINUTE
            domain_minutes[domain] = (minute, cursor[1] + 1) if cursor and cursor[0] == minute else (minute, 1)
        if interval:
            lane_free[lane] = instant + interval
            ticks += 1

        if instant != last_instant:  # consecutive slots often share an instant; reuse the datetime
            last_instant, last_datetime = instant, _from_us(instant)
        yield Slot(recipient.key, last_datetime, domains[lane])


# --- dry-run summary ---------------------------------------------------------------------------


class PlanSummary:
    """Accumulates slots into the API's dry-run shape; days are counted in the campaign's time zone."""

    def __init__(self, timezone: str) -> None:
        zone = _zone(timezone)
        if zone is None:
            raise PlanSettingsError("schedule.timezone", f"unknown time zone {timezone!r}")
        self._zone = zone
        self.recipients = 0
        self.first_send_at: datetime | None = None
        self.last_send_at: datetime | None = None
        self._per_day: dict[date, int] = {}
        self._per_domain: dict[str, int] = {}
        # The local day of the last slot as [start, end) instants, so most slots need no zone conversion.
        self._day: date | None = None
        self._day_start = self._day_end = _EPOCH

    def add(self, slot: Slot) -> None:
        at = slot.scheduled_at
        self.recipients += 1
        if self.first_send_at is None or at < self.first_send_at:
            self.first_send_at = at
        if self.last_send_at is None or at > self.last_send_at:
            self.last_send_at = at
        if not self._day_start <= at < self._day_end:
            day = at.astimezone(self._zone).date()
            self._day = day
            self._day_start = _from_us(_wall_to_us(day, time(0), self._zone))
            self._day_end = _from_us(_wall_to_us(day + _ONE_DAY, time(0), self._zone))
        day = self._day
        assert day is not None
        self._per_day[day] = self._per_day.get(day, 0) + 1
        self._per_domain[slot.sending_domain] = self._per_domain.get(slot.sending_domain, 0) + 1

    @property
    def per_day(self) -> list[tuple[date, int]]:
        """(local date, count), by date."""
        return sorted(self._per_day.items())

    @property
    def per_domain(self) -> list[tuple[str, int]]:
        """(sending domain, count), in the order the domains were first used (round-robin order)."""
        return list(self._per_domain.items())

    def to_dict(self) -> dict[str, Any]:
        """`{recipients, first_send_at, last_send_at, per_day: [{date, count}], per_domain: [{domain, count}]}`."""
        return {
            "recipients": self.recipients,
            "first_send_at": self.first_send_at.astimezone(UTC).isoformat() if self.first_send_at else None,
            "last_send_at": self.last_send_at.astimezone(UTC).isoformat() if self.last_send_at else None,
            "per_day": [{"date": day.isoformat(), "count": count} for day, count in self.per_day],
            "per_domain": [{"domain": domain, "count": count} for domain, count in self.per_domain],
        }
