"""Unit tests for the send planner: a pure function, so no database and exact datetimes throughout.

Calendar facts used below: 2025-03-03 is a Monday. Europe/Amsterdam is UTC+1 until the jump at
2025-03-30 01:00 UTC and UTC+2 until 2025-10-26 01:00 UTC; New York is UTC-5 until 2025-03-09.
"""

from __future__ import annotations

import itertools
import tracemalloc
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.planner import (
    ALL_DAYS,
    PlanSettings,
    PlanSettingsError,
    PlanSummary,
    Recipient,
    SendWindow,
    Slot,
    plan,
)

AMSTERDAM = "Europe/Amsterdam"
NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"
WEEKDAYS = frozenset({0, 1, 2, 3, 4})
OFFICE_HOURS = SendWindow(days=WEEKDAYS, start=time(8), end=time(17))
EVERY_DAY_NIGHT = SendWindow(days=ALL_DAYS, start=time(0), end=time(6))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def amsterdam(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(AMSTERDAM))


def settings(**overrides) -> PlanSettings:
    values = {"start_at": amsterdam(2025, 3, 3, 8), "timezone": AMSTERDAM, "sending_domains": ("a.example",)}
    values.update(overrides)
    return PlanSettings(**values)


def recipients(count: int, domain: str = "example.com", timezone: str = "") -> list[Recipient]:
    return [Recipient(key=key, domain=domain, timezone=timezone) for key in range(count)]


def times(plan_settings: PlanSettings, people: list[Recipient]) -> list[datetime]:
    return [slot.scheduled_at for slot in plan(plan_settings, people)]


def local_clock(moments: list[datetime], zone: str = AMSTERDAM) -> list[str]:
    return [moment.astimezone(ZoneInfo(zone)).strftime("%H:%M %Z") for moment in moments]


# --- no throttle, start and window edges -------------------------------------------------------


def test_without_throttles_everyone_gets_start_at_round_robin():
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 3, 10, 17, 30), sending_domains=("a", "b", "c"), window=OFFICE_HOURS
    )

    slots = list(plan(plan_settings, recipients(5)))

    assert slots == [
        Slot(0, utc(2025, 3, 3, 9, 17, 30), "a"),
        Slot(1, utc(2025, 3, 3, 9, 17, 30), "b"),
        Slot(2, utc(2025, 3, 3, 9, 17, 30), "c"),
        Slot(3, utc(2025, 3, 3, 9, 17, 30), "a"),
        Slot(4, utc(2025, 3, 3, 9, 17, 30), "b"),
    ]
    assert all(slot.scheduled_at.tzinfo is UTC for slot in slots)


def test_start_before_the_window_waits_for_the_opening():
    plan_settings = settings(start_at=amsterdam(2025, 3, 3, 6, 12), window=OFFICE_HOURS)

    assert times(plan_settings, recipients(2)) == [utc(2025, 3, 3, 7), utc(2025, 3, 3, 7)]


def test_start_after_the_window_moves_to_the_next_sending_day():
    plan_settings = settings(start_at=amsterdam(2025, 3, 3, 18), window=OFFICE_HOURS)

    assert times(plan_settings, recipients(1)) == [utc(2025, 3, 4, 7)]


def test_window_end_is_exclusive():
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 3, 15), window=OFFICE_HOURS, per_domain_interval=timedelta(hours=1)
    )

    # 15:00 and 16:00 fit; the third is due at 17:00 exactly, which is closed, so Tuesday 08:00.
    assert times(plan_settings, recipients(3)) == [utc(2025, 3, 3, 14), utc(2025, 3, 3, 15), utc(2025, 3, 4, 7)]


def test_start_exactly_at_window_end_moves_to_next_day():
    plan_settings = settings(start_at=amsterdam(2025, 3, 3, 17), window=OFFICE_HOURS)

    assert times(plan_settings, recipients(1)) == [utc(2025, 3, 4, 7)]


def test_window_until_midnight_closes_at_midnight():
    late_evening = SendWindow(days=ALL_DAYS, start=time(22), end=time(0))
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 3, 23), window=late_evening, per_domain_interval=timedelta(hours=1)
    )

    # 23:00 Monday; 00:00 Tuesday is the (exclusive) end, so Tuesday 22:00.
    assert times(plan_settings, recipients(2)) == [utc(2025, 3, 3, 22), utc(2025, 3, 4, 21)]


# --- weekends and holidays ---------------------------------------------------------------------


def test_weekend_is_skipped():
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 7, 16, 50), window=OFFICE_HOURS, per_domain_interval=timedelta(minutes=20)
    )

    # Friday 16:50, then 17:10 is closed: Monday 08:00, Monday 08:20.
    assert times(plan_settings, recipients(3)) == [
        utc(2025, 3, 7, 15, 50),
        utc(2025, 3, 10, 7),
        utc(2025, 3, 10, 7, 20),
    ]


def test_start_on_a_saturday_waits_for_monday():
    plan_settings = settings(start_at=amsterdam(2025, 3, 8, 10), window=OFFICE_HOURS)

    assert times(plan_settings, recipients(1)) == [utc(2025, 3, 10, 7)]


def test_holidays_are_skipped():
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 7, 16, 50),
        window=OFFICE_HOURS,
        holidays=frozenset({date(2025, 3, 10)}),
        per_domain_interval=timedelta(minutes=20),
    )

    # Friday 16:50, then past the weekend and Monday's holiday: Tuesday 08:00.
    assert times(plan_settings, recipients(2)) == [utc(2025, 3, 7, 15, 50), utc(2025, 3, 11, 7)]


def test_holiday_without_a_window_blocks_the_whole_local_day():
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 8, 22, 30),
        holidays=frozenset({date(2025, 3, 9)}),
        per_domain_interval=timedelta(hours=1),
    )

    # Saturday 22:30 and 23:30; Sunday is a holiday, so Monday 00:00 local (Sunday 23:00 UTC), then 01:00.
    assert times(plan_settings, recipients(4)) == [
        utc(2025, 3, 8, 21, 30),
        utc(2025, 3, 8, 22, 30),
        utc(2025, 3, 9, 23),
        utc(2025, 3, 10, 0),
    ]


def test_no_sending_time_within_a_year_is_an_error_not_a_hang():
    every_monday = frozenset(date(2025, 3, 3) + timedelta(weeks=week) for week in range(53))

    with pytest.raises(PlanSettingsError) as caught:
        settings(window=SendWindow(days=frozenset({0}), start=time(8), end=time(17)), holidays=every_monday)

    assert caught.value.field == "schedule.window"
    assert "no sending time" in caught.value.message


def test_sending_time_just_inside_the_search_horizon_is_found():
    all_but_the_last_monday = frozenset(date(2025, 3, 3) + timedelta(weeks=week) for week in range(52))
    plan_settings = settings(
        window=SendWindow(days=frozenset({0}), start=time(8), end=time(17)), holidays=all_but_the_last_monday
    )

    assert times(plan_settings, recipients(1)) == [utc(2026, 3, 2, 7)]


# --- DST in Europe/Amsterdam -------------------------------------------------------------------


def test_spring_forward_day_window_spanning_the_jump():
    plan_settings = settings(
        start_at=utc(2025, 3, 29, 12), window=EVERY_DAY_NIGHT, per_domain_interval=timedelta(hours=1)
    )

    slots = times(plan_settings, recipients(6))

    # 00:00-06:00 on 30 March is 5 real hours: 02:00 does not exist. The 6th goes the next night.
    assert slots == [
        utc(2025, 3, 29, 23),
        utc(2025, 3, 30, 0),
        utc(2025, 3, 30, 1),
        utc(2025, 3, 30, 2),
        utc(2025, 3, 30, 3),
        utc(2025, 3, 30, 22),
    ]
    assert local_clock(slots) == ["00:00 CET", "01:00 CET", "03:00 CEST", "04:00 CEST", "05:00 CEST", "00:00 CEST"]


def test_spring_forward_window_start_in_the_gap_opens_at_the_jump():
    window = SendWindow(days=ALL_DAYS, start=time(2, 30), end=time(6))

    def first_slot(start_at: datetime) -> datetime:
        return times(settings(start_at=start_at, window=window), recipients(1))[0]

    assert first_slot(utc(2025, 3, 28, 12)) == utc(2025, 3, 29, 1, 30)  # 02:30 CET the day before
    assert first_slot(utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1)  # 02:30 does not exist: 03:00 CEST
    assert first_slot(utc(2025, 3, 30, 12)) == utc(2025, 3, 31, 0, 30)  # 02:30 CEST the day after


def test_fall_back_day_window_spanning_the_repeated_hour():
    plan_settings = settings(
        start_at=utc(2025, 10, 25, 12), window=EVERY_DAY_NIGHT, per_domain_interval=timedelta(hours=1)
    )

    slots = times(plan_settings, recipients(8))

    # 00:00-06:00 on 26 October is 7 real hours; intervals are elapsed time, so 02:00 comes twice.
    assert slots == [
        utc(2025, 10, 25, 22),
        utc(2025, 10, 25, 23),
        utc(2025, 10, 26, 0),
        utc(2025, 10, 26, 1),
        utc(2025, 10, 26, 2),
        utc(2025, 10, 26, 3),
        utc(2025, 10, 26, 4),
        utc(2025, 10, 26, 23),
    ]
    assert local_clock(slots[:7]) == [
        "00:00 CEST",
        "01:00 CEST",
        "02:00 CEST",
        "02:00 CET",
        "03:00 CET",
        "04:00 CET",
        "05:00 CET",
    ]


def test_fall_back_ambiguous_window_start_uses_the_first_occurrence():
    window = SendWindow(days=ALL_DAYS, start=time(2, 30), end=time(6))

    assert times(settings(start_at=utc(2025, 10, 25, 12), window=window), recipients(1)) == [utc(2025, 10, 26, 0, 30)]


def test_fall_back_ambiguous_window_end_uses_the_first_occurrence():
    window = SendWindow(days=ALL_DAYS, start=time(0), end=time(2, 30))
    plan_settings = settings(start_at=utc(2025, 10, 25, 12), window=window, per_domain_interval=timedelta(hours=1))

    # The window closes at the first 02:30 (00:30 UTC); 01:00 UTC reads 02:00 CET but is after the close.
    assert times(plan_settings, recipients(4)) == [
        utc(2025, 10, 25, 22),
        utc(2025, 10, 25, 23),
        utc(2025, 10, 26, 0),
        utc(2025, 10, 26, 23),
    ]


def test_max_per_hour_counts_utc_hours_so_the_repeated_local_hour_is_two_buckets():
    plan_settings = settings(start_at=amsterdam(2025, 10, 26, 1, 30), max_per_hour=1)

    slots = times(plan_settings, recipients(4))

    assert slots == [utc(2025, 10, 25, 23, 30), utc(2025, 10, 26, 0), utc(2025, 10, 26, 1), utc(2025, 10, 26, 2)]
    assert local_clock(slots) == ["01:30 CEST", "02:00 CEST", "02:00 CET", "03:00 CET"]


# --- sending domains: spacing and round robin --------------------------------------------------


def test_round_robin_is_staggered_by_interval_over_domain_count():
    plan_settings = settings(
        sending_domains=("a", "b", "c"), window=OFFICE_HOURS, per_domain_interval=timedelta(minutes=20)
    )

    slots = list(plan(plan_settings, recipients(7)))

    assert [(slot.scheduled_at, slot.sending_domain) for slot in slots] == [
        (utc(2025, 3, 3, 7, 0), "a"),
        (utc(2025, 3, 3, 7, 6, 40), "b"),
        (utc(2025, 3, 3, 7, 13, 20), "c"),
        (utc(2025, 3, 3, 7, 20), "a"),
        (utc(2025, 3, 3, 7, 26, 40), "b"),
        (utc(2025, 3, 3, 7, 33, 20), "c"),
        (utc(2025, 3, 3, 7, 40), "a"),
    ]


def test_exact_spacing_per_sending_domain_over_a_whole_window():
    plan_settings = settings(
        sending_domains=("a", "b", "c"), window=OFFICE_HOURS, per_domain_interval=timedelta(minutes=20)
    )

    slots = list(plan(plan_settings, recipients(82)))

    # 9 hours at one message per 6:40 is 81 messages: the last at 16:53:20, the 82nd on Tuesday 08:00 via "a".
    monday = [slot for slot in slots if slot.scheduled_at.date() == date(2025, 3, 3)]
    assert len(monday) == 81
    assert monday[-1] == Slot(80, utc(2025, 3, 3, 15, 53, 20), "c")
    assert slots[81] == Slot(81, utc(2025, 3, 4, 7), "a")
    for domain in ("a", "b", "c"):
        sent = [slot.scheduled_at for slot in monday if slot.sending_domain == domain]
        assert len(sent) == 27
        assert {later - earlier for earlier, later in itertools.pairwise(sent)} == {timedelta(minutes=20)}


def test_uneven_stagger_rounds_up_to_whole_seconds_and_keeps_each_domain_exact():
    domains = tuple(f"d{n}" for n in range(7))
    plan_settings = settings(sending_domains=domains, per_domain_interval=timedelta(minutes=20))

    slots = list(plan(plan_settings, recipients(14)))

    offsets = [int((slot.scheduled_at - utc(2025, 3, 3, 7)).total_seconds()) for slot in slots]
    # ceil(k * 1200 / 7) seconds: 171.43 -> 172, 342.86 -> 343, ...
    assert offsets == [0, 172, 343, 515, 686, 858, 1029, 1200, 1372, 1543, 1715, 1886, 2058, 2229]
    for first, second in zip(slots[:7], slots[7:], strict=True):
        assert first.sending_domain == second.sending_domain
        assert second.scheduled_at - first.scheduled_at == timedelta(minutes=20)


def test_round_robin_continues_across_window_openings_and_the_pace_restarts_at_the_opening():
    window = SendWindow(days=WEEKDAYS, start=time(8), end=time(9))
    plan_settings = settings(sending_domains=("a", "b"), window=window, per_domain_interval=timedelta(minutes=25))

    slots = list(plan(plan_settings, recipients(7)))

    assert [(slot.scheduled_at, slot.sending_domain) for slot in slots] == [
        (utc(2025, 3, 3, 7, 0), "a"),
        (utc(2025, 3, 3, 7, 12, 30), "b"),
        (utc(2025, 3, 3, 7, 25), "a"),
        (utc(2025, 3, 3, 7, 37, 30), "b"),
        (utc(2025, 3, 3, 7, 50), "a"),
        # 09:02:30 is closed: Tuesday's opening, with the next domain in turn.
        (utc(2025, 3, 4, 7, 0), "b"),
        (utc(2025, 3, 4, 7, 12, 30), "a"),
    ]


def test_interval_is_real_elapsed_time_across_the_spring_forward_jump():
    plan_settings = settings(start_at=amsterdam(2025, 3, 30, 1, 30), per_domain_interval=timedelta(minutes=45))

    slots = times(plan_settings, recipients(3))

    assert slots == [utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 1, 15), utc(2025, 3, 30, 2)]
    assert local_clock(slots) == ["01:30 CET", "03:15 CEST", "04:00 CEST"]


# --- max per hour ------------------------------------------------------------------------------


def test_max_per_hour_spills_into_the_next_hour():
    plan_settings = settings(start_at=amsterdam(2025, 3, 3, 8, 20), window=OFFICE_HOURS, max_per_hour=3)

    assert times(plan_settings, recipients(7)) == [utc(2025, 3, 3, 7, 20)] * 3 + [utc(2025, 3, 3, 8)] * 3 + [
        utc(2025, 3, 3, 9)
    ]


def test_max_per_hour_spills_into_the_next_window():
    plan_settings = settings(start_at=amsterdam(2025, 3, 3, 16, 10), window=OFFICE_HOURS, max_per_hour=2)

    # Two at 16:10; 17:00 is closed, so two on Tuesday 08:00 and one at 09:00.
    assert times(plan_settings, recipients(5)) == [
        utc(2025, 3, 3, 15, 10),
        utc(2025, 3, 3, 15, 10),
        utc(2025, 3, 4, 7),
        utc(2025, 3, 4, 7),
        utc(2025, 3, 4, 8),
    ]


def test_max_per_hour_with_an_interval_restarts_the_stagger_at_the_next_hour():
    plan_settings = settings(
        sending_domains=("a", "b", "c"),
        window=OFFICE_HOURS,
        per_domain_interval=timedelta(minutes=20),
        max_per_hour=4,
    )

    slots = list(plan(plan_settings, recipients(9)))

    assert [(slot.scheduled_at, slot.sending_domain) for slot in slots] == [
        (utc(2025, 3, 3, 7, 0), "a"),
        (utc(2025, 3, 3, 7, 6, 40), "b"),
        (utc(2025, 3, 3, 7, 13, 20), "c"),
        (utc(2025, 3, 3, 7, 20), "a"),
        (utc(2025, 3, 3, 8, 0), "b"),
        (utc(2025, 3, 3, 8, 6, 40), "c"),
        (utc(2025, 3, 3, 8, 13, 20), "a"),
        (utc(2025, 3, 3, 8, 20), "b"),
        (utc(2025, 3, 3, 9, 0), "c"),
    ]


# --- per recipient domain cap ------------------------------------------------------------------


def test_per_recipient_domain_cap_holds_back_only_that_domain():
    plan_settings = settings(window=OFFICE_HOURS, per_recipient_domain_per_minute=2)
    domains = ["gmail.com", "gmail.com", "gmail.com", "other.nl", "gmail.com", "gmail.com", "other.nl", "gmail.com"]
    people = [Recipient(key, domain) for key, domain in enumerate(domains)]

    assert times(plan_settings, people) == [
        utc(2025, 3, 3, 7, 0),
        utc(2025, 3, 3, 7, 0),
        utc(2025, 3, 3, 7, 1),
        utc(2025, 3, 3, 7, 0),  # not delayed by the gmail.com queue
        utc(2025, 3, 3, 7, 1),
        utc(2025, 3, 3, 7, 2),
        utc(2025, 3, 3, 7, 0),
        utc(2025, 3, 3, 7, 2),
    ]


def test_per_recipient_domain_cap_respects_the_window():
    plan_settings = settings(
        start_at=amsterdam(2025, 3, 3, 16, 58), window=OFFICE_HOURS, per_recipient_domain_per_minute=1
    )
    people = [Recipient(0, "gmail.com"), Recipient(1, "gmail.com"), Recipient(2, "gmail.com"), Recipient(3, "x.nl")]

    assert times(plan_settings, people) == [
        utc(2025, 3, 3, 15, 58),
        utc(2025, 3, 3, 15, 59),
        utc(2025, 3, 4, 7),
        utc(2025, 3, 3, 15, 58),
    ]


def test_sms_recipients_have_no_domain_cap():
    plan_settings = settings(per_recipient_domain_per_minute=1)

    assert times(plan_settings, recipients(3, domain="")) == [utc(2025, 3, 3, 7)] * 3


def test_domain_cap_with_an_interval_delays_only_the_held_back_recipients_sending_domain():
    plan_settings = settings(
        sending_domains=("a", "b", "c"), per_domain_interval=timedelta(minutes=1), per_recipient_domain_per_minute=1
    )
    domains = ["gmail.com", "gmail.com", "o1.nl", "o2.nl", "o3.nl", "o4.nl"]

    slots = list(plan(plan_settings, [Recipient(key, domain) for key, domain in enumerate(domains)]))

    assert [(slot.scheduled_at, slot.sending_domain) for slot in slots] == [
        (utc(2025, 3, 3, 7, 0, 0), "a"),
        (utc(2025, 3, 3, 7, 1, 0), "b"),  # gmail.com's minute is full
        (utc(2025, 3, 3, 7, 0, 40), "c"),  # the pace did not wait for it
        (utc(2025, 3, 3, 7, 1, 0), "a"),
        (utc(2025, 3, 3, 7, 2, 0), "b"),  # "b" sent at 07:01, so not before 07:02
        (utc(2025, 3, 3, 7, 1, 40), "c"),
    ]


def test_domain_cap_and_max_per_hour_count_together():
    plan_settings = settings(start_at=amsterdam(2025, 3, 3, 8, 58), per_recipient_domain_per_minute=1, max_per_hour=3)
    domains = ["gmail.com", "gmail.com", "gmail.com", "x.nl", "y.nl"]

    assert times(plan_settings, [Recipient(key, domain) for key, domain in enumerate(domains)]) == [
        utc(2025, 3, 3, 7, 58),
        utc(2025, 3, 3, 7, 59),
        utc(2025, 3, 3, 8, 0),  # next minute with room is in the next hour
        utc(2025, 3, 3, 7, 58),  # the 3rd slot of the 07:00 UTC hour
        utc(2025, 3, 3, 8, 0),  # that hour is full
    ]


# --- recipient time zones ----------------------------------------------------------------------


def test_recipient_timezone_uses_each_recipients_own_window():
    plan_settings = settings(start_at=utc(2025, 3, 3, 6), window=OFFICE_HOURS, recipient_timezone=True)
    zones = [AMSTERDAM, NEW_YORK, TOKYO, AMSTERDAM, NEW_YORK]

    slots = times(plan_settings, [Recipient(key, "x.nl", zone) for key, zone in enumerate(zones)])

    assert slots == [
        utc(2025, 3, 3, 7),  # 08:00 in Amsterdam
        utc(2025, 3, 3, 13),  # 08:00 in New York
        utc(2025, 3, 3, 6),  # 15:00 in Tokyo: already open at the start
        utc(2025, 3, 3, 7),  # zones do not delay each other
        utc(2025, 3, 3, 13),
    ]


def test_recipient_timezone_holidays_are_local_dates():
    plan_settings = settings(
        start_at=utc(2025, 3, 3, 6),
        window=OFFICE_HOURS,
        holidays=frozenset({date(2025, 3, 3)}),
        recipient_timezone=True,
    )

    slots = times(plan_settings, [Recipient(0, "x.nl", NEW_YORK), Recipient(1, "x.nl", TOKYO)])

    assert slots == [utc(2025, 3, 4, 13), utc(2025, 3, 3, 23)]  # Tuesday 08:00 in each zone


def test_recipient_timezone_shares_the_utc_hour_budget():
    plan_settings = settings(start_at=utc(2025, 3, 3, 6), window=OFFICE_HOURS, recipient_timezone=True, max_per_hour=1)
    zones = [AMSTERDAM, NEW_YORK, AMSTERDAM, NEW_YORK]

    assert times(plan_settings, [Recipient(key, "x.nl", zone) for key, zone in enumerate(zones)]) == [
        utc(2025, 3, 3, 7),
        utc(2025, 3, 3, 13),
        utc(2025, 3, 3, 8),
        utc(2025, 3, 3, 14),
    ]


def test_recipient_timezone_with_an_interval_paces_each_group_in_its_own_window():
    plan_settings = settings(
        start_at=utc(2025, 3, 3, 6),
        sending_domains=("a", "b"),
        window=OFFICE_HOURS,
        per_domain_interval=timedelta(hours=1),
        recipient_timezone=True,
    )
    zones = [AMSTERDAM, AMSTERDAM, NEW_YORK, NEW_YORK, NEW_YORK, AMSTERDAM]

    slots = list(plan(plan_settings, [Recipient(key, "x.nl", zone) for key, zone in enumerate(zones)]))

    assert [(slot.scheduled_at, slot.sending_domain) for slot in slots] == [
        (utc(2025, 3, 3, 7, 0), "a"),
        (utc(2025, 3, 3, 7, 30), "b"),
        (utc(2025, 3, 3, 13, 0), "a"),  # New York opens: the pace restarts there
        (utc(2025, 3, 3, 13, 30), "b"),
        (utc(2025, 3, 3, 14, 0), "a"),
        (utc(2025, 3, 3, 14, 30), "b"),  # Amsterdam is open until 16:00 UTC
    ]


def test_recipient_timezone_with_a_domain_cap_packs_best_east_to_west():
    plan_settings = settings(
        start_at=utc(2025, 3, 3, 6), window=OFFICE_HOURS, recipient_timezone=True, per_recipient_domain_per_minute=1
    )

    def plan_zones(zones: list[str]) -> list[datetime]:
        return times(plan_settings, [Recipient(key, "gmail.com", zone) for key, zone in enumerate(zones)])

    # East to west: each group gets its own window.
    assert plan_zones([AMSTERDAM, AMSTERDAM, NEW_YORK, NEW_YORK]) == [
        utc(2025, 3, 3, 7, 0),
        utc(2025, 3, 3, 7, 1),
        utc(2025, 3, 3, 13, 0),
        utc(2025, 3, 3, 13, 1),
    ]
    # West first: gmail.com's cursor is shared, so Amsterdam follows it (still inside its window).
    assert plan_zones([NEW_YORK, NEW_YORK, AMSTERDAM]) == [
        utc(2025, 3, 3, 13, 0),
        utc(2025, 3, 3, 13, 1),
        utc(2025, 3, 3, 13, 2),
    ]


def test_unknown_or_empty_recipient_timezone_falls_back_to_the_campaign_timezone():
    plan_settings = settings(
        start_at=utc(2025, 3, 3, 6), timezone=NEW_YORK, window=OFFICE_HOURS, recipient_timezone=True
    )
    people = [
        Recipient(0, "x.nl", "Mars/Olympus_Mons"),
        Recipient(1, "x.nl", ""),
        Recipient(2, "x.nl", None),  # a NULL column from the database
        Recipient(3, "x.nl", "../../etc/passwd"),
        Recipient(4, "x.nl", AMSTERDAM),
    ]

    assert times(plan_settings, people) == [utc(2025, 3, 3, 13)] * 4 + [utc(2025, 3, 3, 7)]


def test_recipient_timezone_is_ignored_unless_enabled():
    plan_settings = settings(start_at=utc(2025, 3, 3, 6), window=OFFICE_HOURS)

    assert times(plan_settings, [Recipient(0, "x.nl", NEW_YORK)]) == [utc(2025, 3, 3, 7)]


# --- from_api ----------------------------------------------------------------------------------

NOW = utc(2025, 3, 1, 12)


def from_api(schedule=None, throttle=None, sending_domains=("a.example",), default_timezone=AMSTERDAM):
    return PlanSettings.from_api(
        schedule=schedule,
        throttle=throttle,
        sending_domains=list(sending_domains),
        default_timezone=default_timezone,
        now=NOW,
    )


def test_from_api_reads_the_schedule_and_throttle_objects():
    parsed = from_api(
        schedule={
            "start_at": "2025-03-03T08:00:00+01:00",
            "timezone": AMSTERDAM,
            "window": {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "17:00"},
            "holidays": ["2025-04-21", "2025-12-25"],
            "recipient_timezone": True,
        },
        throttle={"per_domain_interval_minutes": 20, "max_per_hour": 100, "per_recipient_domain_per_minute": 5},
        sending_domains=["Mail1.Example.com", " mail2.example.com ", "mail1.example.com"],
        default_timezone="UTC",
    )

    assert parsed == PlanSettings(
        start_at=utc(2025, 3, 3, 7),
        timezone=AMSTERDAM,
        sending_domains=("mail1.example.com", "mail2.example.com"),
        window=OFFICE_HOURS,
        holidays=frozenset({date(2025, 4, 21), date(2025, 12, 25)}),
        per_domain_interval=timedelta(minutes=20),
        max_per_hour=100,
        per_recipient_domain_per_minute=5,
        recipient_timezone=True,
    )


def test_from_api_defaults_mean_now_any_time_no_limits():
    parsed = from_api(schedule=None, throttle=None, default_timezone=NEW_YORK)

    assert parsed == PlanSettings(start_at=NOW, timezone=NEW_YORK, sending_domains=("a.example",))


@pytest.mark.parametrize(
    "schedule",
    [
        {},
        {"start_at": None, "timezone": None, "window": None, "holidays": None, "recipient_timezone": None},
        {"timezone": "", "window": {}},
    ],
)
def test_from_api_null_absent_and_empty_values_are_defaults(schedule):
    assert from_api(schedule=schedule, throttle={"max_per_hour": None}) == PlanSettings(
        start_at=NOW, timezone=AMSTERDAM, sending_domains=("a.example",)
    )


def test_from_api_start_in_the_past_means_now():
    assert from_api(schedule={"start_at": "2024-01-01T00:00:00Z"}).start_at == NOW


def test_from_api_window_end_24_00_is_midnight_and_days_default_to_every_day():
    parsed = from_api(schedule={"window": {"start": "20:00", "end": "24:00"}})

    assert parsed.window == SendWindow(days=ALL_DAYS, start=time(20), end=time(0))


@pytest.mark.parametrize(
    ("schedule", "throttle", "field"),
    [
        ({"window": {"days": [0], "start": "8am", "end": "17:00"}}, None, "schedule.window.start"),
        ({"window": {"days": [0], "start": "8:00", "end": "17:00"}}, None, "schedule.window.start"),
        ({"window": {"days": [0], "start": "24:00", "end": "17:00"}}, None, "schedule.window.start"),
        ({"window": {"days": [0], "start": "08:00", "end": "25:00"}}, None, "schedule.window.end"),
        ({"window": {"days": [0], "start": "08:00", "end": "17:60"}}, None, "schedule.window.end"),
        ({"window": {"days": [0], "start": "08:00"}}, None, "schedule.window.end"),
        ({"window": {"days": [0], "start": "17:00", "end": "08:00"}}, None, "schedule.window.end"),
        ({"window": {"days": [0], "start": "08:00", "end": "08:00"}}, None, "schedule.window.end"),
        ({"window": {"days": [7], "start": "08:00", "end": "17:00"}}, None, "schedule.window.days"),
        ({"window": {"days": [-1], "start": "08:00", "end": "17:00"}}, None, "schedule.window.days"),
        ({"window": {"days": [], "start": "08:00", "end": "17:00"}}, None, "schedule.window.days"),
        ({"window": {"days": "0-4", "start": "08:00", "end": "17:00"}}, None, "schedule.window.days"),
        ({"window": {"days": [True], "start": "08:00", "end": "17:00"}}, None, "schedule.window.days"),
        ({"window": "office hours"}, None, "schedule.window"),
        ({"timezone": "Mars/Olympus_Mons"}, None, "schedule.timezone"),
        ({"timezone": 1}, None, "schedule.timezone"),
        ({"holidays": ["2025-13-01"]}, None, "schedule.holidays"),
        ({"holidays": "2025-12-25"}, None, "schedule.holidays"),
        ({"holidays": [20251225]}, None, "schedule.holidays"),
        ({"start_at": "2025-03-03T08:00:00"}, None, "schedule.start_at"),
        ({"start_at": "next monday"}, None, "schedule.start_at"),
        ({"start_at": 1741000000}, None, "schedule.start_at"),
        ({"recipient_timezone": "yes"}, None, "schedule.recipient_timezone"),
        (None, {"max_per_hour": -1}, "throttle.max_per_hour"),
        (None, {"max_per_hour": 0}, "throttle.max_per_hour"),
        (None, {"max_per_hour": True}, "throttle.max_per_hour"),
        (None, {"per_domain_interval_minutes": 0}, "throttle.per_domain_interval_minutes"),
        (None, {"per_domain_interval_minutes": 2.5}, "throttle.per_domain_interval_minutes"),
        (None, {"per_recipient_domain_per_minute": "10"}, "throttle.per_recipient_domain_per_minute"),
        (None, {"per_domain_interval_minutes": 10**12}, "throttle.per_domain_interval_minutes"),
        (None, {"per_domain_interval_minutes": 7 * 24 * 60 + 1}, "throttle.per_domain_interval_minutes"),
        (None, {"max_per_hour": 10**15}, "throttle.max_per_hour"),
        (None, {"per_recipient_domain_per_minute": 10**12}, "throttle.per_recipient_domain_per_minute"),
        ("every day", None, "schedule"),
        (None, [20], "throttle"),
    ],
)
def test_from_api_rejects_bad_values_naming_the_field(schedule, throttle, field):
    with pytest.raises(PlanSettingsError) as caught:
        from_api(schedule=schedule, throttle=throttle)

    assert caught.value.field == field
    assert caught.value.message


def test_the_largest_throttles_still_plan():
    settings = from_api(
        throttle={"per_domain_interval_minutes": 7 * 24 * 60, "max_per_hour": 10_000_000},
    )
    assert settings.per_domain_interval == timedelta(days=7)


def test_from_api_error_message_is_readable():
    with pytest.raises(PlanSettingsError) as caught:
        from_api(schedule={"window": {"days": [0], "start": "8am", "end": "17:00"}})

    assert caught.value.message == '\'8am\' is not a time; use "HH:MM", e.g. "08:00"'
    assert str(caught.value) == 'schedule.window.start: \'8am\' is not a time; use "HH:MM", e.g. "08:00"'


@pytest.mark.parametrize("sending_domains", [[], [""], ["  "]])
def test_from_api_needs_a_sending_domain_the_caller_passes_the_default(sending_domains):
    with pytest.raises(PlanSettingsError) as caught:
        from_api(sending_domains=sending_domains)

    assert caught.value.field == "sending_domains"


def test_from_api_no_sending_time_is_reported_on_the_window():
    mondays = [(date(2025, 3, 3) + timedelta(weeks=week)).isoformat() for week in range(53)]

    with pytest.raises(PlanSettingsError) as caught:
        from_api(
            schedule={
                "start_at": "2025-03-03T06:00:00Z",
                "window": {"days": [0], "start": "08:00", "end": "17:00"},
                "holidays": mondays,
            }
        )

    assert caught.value.field == "schedule.window"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start_at": datetime(2025, 3, 3, 8)}, "schedule.start_at"),  # naive
        ({"timezone": "Nowhere/Special"}, "schedule.timezone"),
        ({"sending_domains": ()}, "sending_domains"),
        ({"sending_domains": ("a.example", "A.example")}, "sending_domains"),
        ({"per_domain_interval": timedelta(0)}, "throttle.per_domain_interval_minutes"),
        ({"max_per_hour": 0}, "throttle.max_per_hour"),
        ({"per_recipient_domain_per_minute": -2}, "throttle.per_recipient_domain_per_minute"),
        ({"holidays": frozenset({datetime(2025, 3, 3, tzinfo=UTC)})}, "schedule.holidays"),
    ],
)
def test_settings_are_validated_when_built_directly(overrides, field):
    with pytest.raises(PlanSettingsError) as caught:
        settings(**overrides)

    assert caught.value.field == field


def test_send_window_validates_itself():
    with pytest.raises(PlanSettingsError) as caught:
        SendWindow(days=frozenset({1}), start=time(9), end=time(8))

    assert caught.value.field == "schedule.window.end"


# --- summary -----------------------------------------------------------------------------------


def test_plan_summary_matches_the_dry_run_shape():
    window = SendWindow(days=WEEKDAYS, start=time(8), end=time(9))
    plan_settings = settings(sending_domains=("a", "b", "c"), window=window, per_domain_interval=timedelta(minutes=20))
    summary = PlanSummary(timezone=AMSTERDAM)

    for slot in plan(plan_settings, recipients(11)):
        summary.add(slot)

    assert summary.to_dict() == {
        "recipients": 11,
        "first_send_at": "2025-03-03T07:00:00+00:00",
        "last_send_at": "2025-03-04T07:06:40+00:00",
        "per_day": [{"date": "2025-03-03", "count": 9}, {"date": "2025-03-04", "count": 2}],
        "per_domain": [{"domain": "a", "count": 4}, {"domain": "b", "count": 4}, {"domain": "c", "count": 3}],
    }


def test_plan_summary_counts_days_in_the_campaign_timezone_and_accepts_any_order():
    summary = PlanSummary(timezone=AMSTERDAM)

    summary.add(Slot(1, utc(2025, 3, 3, 22, 59), "a"))  # 23:59 on the 3rd in Amsterdam
    summary.add(Slot(2, utc(2025, 3, 3, 23, 0), "a"))  # 00:00 on the 4th
    summary.add(Slot(3, utc(2025, 3, 3, 12, 0), "b"))  # earlier than the first one added

    assert summary.to_dict() == {
        "recipients": 3,
        "first_send_at": "2025-03-03T12:00:00+00:00",
        "last_send_at": "2025-03-03T23:00:00+00:00",
        "per_day": [{"date": "2025-03-03", "count": 2}, {"date": "2025-03-04", "count": 1}],
        "per_domain": [{"domain": "a", "count": 2}, {"domain": "b", "count": 1}],
    }


def test_empty_plan_summary():
    assert PlanSummary(timezone=AMSTERDAM).to_dict() == {
        "recipients": 0,
        "first_send_at": None,
        "last_send_at": None,
        "per_day": [],
        "per_domain": [],
    }


# --- streaming and determinism -----------------------------------------------------------------


def test_plan_is_lazy_and_works_on_an_endless_stream():
    read: list[int] = []

    def endless():
        for key in itertools.count():
            read.append(key)
            yield Recipient(key, "example.com")

    plan_settings = settings(sending_domains=("a", "b"), per_domain_interval=timedelta(minutes=10), max_per_hour=5)
    slots = plan(plan_settings, endless())
    assert read == []  # nothing is read before the first slot is asked for

    first = list(itertools.islice(slots, 3))

    assert read == [0, 1, 2]
    assert first == [
        Slot(0, utc(2025, 3, 3, 7, 0), "a"),
        Slot(1, utc(2025, 3, 3, 7, 5), "b"),
        Slot(2, utc(2025, 3, 3, 7, 10), "a"),
    ]


def test_memory_does_not_grow_with_the_number_of_recipients():
    plan_settings = settings(
        sending_domains=("a", "b", "c"),
        window=OFFICE_HOURS,
        max_per_hour=5_000,
        per_recipient_domain_per_minute=50,
        recipient_timezone=True,
    )
    domains = ("gmail.com", "outlook.com", "x.nl", "")
    zones = ("", NEW_YORK, TOKYO)

    def peak_bytes(count: int) -> int:
        people = (Recipient(key, domains[key % 4], zones[key * 3 // count]) for key in range(count))
        tracemalloc.start()
        try:
            for _slot in plan(plan_settings, people):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak_bytes(2_000)  # loads the zones and warms caches, which would otherwise count as growth
    small, large = peak_bytes(2_000), peak_bytes(20_000)

    assert large < small + 8_000, (small, large)


def test_same_input_gives_the_same_plan():
    plan_settings = settings(
        sending_domains=("a", "b", "c"),
        window=OFFICE_HOURS,
        per_domain_interval=timedelta(minutes=5),
        max_per_hour=20,
        per_recipient_domain_per_minute=1,
        recipient_timezone=True,
    )
    people = [Recipient(key, ("gmail.com", "x.nl")[key % 2], (NEW_YORK, "")[key % 3 == 0]) for key in range(200)]

    assert list(plan(plan_settings, people)) == list(plan(plan_settings, iter(people)))
