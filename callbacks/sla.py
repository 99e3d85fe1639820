"""Business-hours arithmetic for SLA deadlines. Pure, no database.

``add_business_hours(start, hours, calendar)`` walks the organization's calendar
day by day in its own time zone: on a working day that is not a holiday the
business window is ``[opens_at, closes_at)`` local time; anything outside it
(evenings, weekends, holidays) does not count. Each day's window is turned into
UTC instants before any arithmetic, so a window that contains a daylight-saving
change counts the hours that really pass (a 09:00-17:00 window always holds 8
hours, but a 00:00-06:00 window holds 5 on the spring-forward night and 7 on
the fall-back night).

A request that arrives outside business hours starts counting at the next
opening. Adding zero hours returns the start itself inside business hours, else
the next opening.

The walk is bounded: a deadline more than ``MAX_DAYS`` calendar days after the
start (or a calendar with no business hours for a whole year) raises
``DeadlineOutOfReach``, whatever the hours and the calendar.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A calendar with no working day in a whole year can never meet a deadline.
_MAX_IDLE_DAYS = 366
# Settings keep SLAs within a year of business hours; holidays can stretch that, but not
# beyond this many calendar days.
MAX_DAYS = 5 * 366


class DeadlineOutOfReach(ValueError):
    """The calendar does not hold that many business hours within MAX_DAYS."""


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: ZoneInfo
    working_days: frozenset[int]  # 0 = Monday ... 6 = Sunday
    opens_at: time
    closes_at: time
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.working_days or not self.working_days <= set(range(7)):
            raise ValueError("working_days must be a non-empty subset of 0..6")
        if self.opens_at >= self.closes_at:
            raise ValueError("opens_at must be before closes_at")

    @classmethod
    def build(
        cls,
        *,
        timezone: str,
        working_days: Iterable[int],
        opens_at: time,
        closes_at: time,
        holidays: Iterable[date | str] = (),
    ) -> BusinessCalendar:
        return cls(
            timezone=ZoneInfo(timezone),
            working_days=frozenset(int(d) for d in working_days),
            opens_at=opens_at,
            closes_at=closes_at,
            holidays=frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays),
        )

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.working_days and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The day's business window as UTC instants."""
        opens = datetime.combine(day, self.opens_at, tzinfo=self.timezone).astimezone(UTC)
        closes = datetime.combine(day, self.closes_at, tzinfo=self.timezone).astimezone(UTC)
        return opens, closes


def add_business_hours(start: datetime, hours: float | timedelta, calendar: BusinessCalendar) -> datetime:
    """The instant (UTC) when `hours` of business time have passed after `start`."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    remaining = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
    if remaining < timedelta(0):
        raise ValueError("hours must not be negative")
    cursor = start.astimezone(UTC)
    day = cursor.astimezone(calendar.timezone).date()
    last_day = day + timedelta(days=MAX_DAYS)
    idle_days = 0
    while day <= last_day:
        if calendar.is_working_day(day):
            opens, closes = calendar.window(day)
            begin = max(cursor, opens)
            if begin < closes:
                idle_days = 0
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
                cursor = closes
        idle_days += 1
        if idle_days > _MAX_IDLE_DAYS:
            raise DeadlineOutOfReach("the calendar has no business hours in a whole year")
        day += timedelta(days=1)
    raise DeadlineOutOfReach(f"the deadline is more than {MAX_DAYS} days away")
