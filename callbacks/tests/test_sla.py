"""Business-hours deadlines (callbacks.sla): weekends, holidays, other time zones, DST."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from callbacks.sla import MAX_DAYS, BusinessCalendar, DeadlineOutOfReach, add_business_hours

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")


def calendar(tz="Europe/Amsterdam", days=(0, 1, 2, 3, 4), opens=time(9), closes=time(17), holidays=()):
    return BusinessCalendar.build(timezone=tz, working_days=days, opens_at=opens, closes_at=closes, holidays=holidays)


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        # Tuesday inside business hours
        (local(AMS, 2025, 3, 4, 10, 0), 2, local(AMS, 2025, 3, 4, 12, 0)),
        # before opening: counting starts at 09:00
        (local(AMS, 2025, 3, 4, 7, 0), 1, local(AMS, 2025, 3, 4, 10, 0)),
        # after closing: counting starts the next morning
        (local(AMS, 2025, 3, 4, 19, 30), 2, local(AMS, 2025, 3, 5, 11, 0)),
        # 24 business hours are three full working days
        (local(AMS, 2025, 3, 3, 9, 0), 24, local(AMS, 2025, 3, 5, 17, 0)),
        # half an hour
        (local(AMS, 2025, 3, 4, 16, 45), 0.5, local(AMS, 2025, 3, 5, 9, 15)),
    ],
)
def test_business_hours_on_working_days(start, hours, due):
    assert add_business_hours(start, hours, calendar()) == due


def test_friday_afternoon_request_is_due_on_monday_across_the_weekend():
    friday = local(AMS, 2025, 3, 7, 16, 0)
    assert add_business_hours(friday, 4, calendar()) == local(AMS, 2025, 3, 10, 12, 0)


def test_weekend_request_starts_counting_on_monday_morning():
    saturday = local(AMS, 2025, 3, 8, 10, 0)
    assert add_business_hours(saturday, 2, calendar()) == local(AMS, 2025, 3, 10, 11, 0)
    friday_evening = local(AMS, 2025, 3, 7, 18, 0)
    assert add_business_hours(friday_evening, 8, calendar()) == local(AMS, 2025, 3, 10, 17, 0)


def test_zero_hours_outside_business_hours_is_the_next_opening():
    assert add_business_hours(local(AMS, 2025, 3, 8, 10, 0), 0, calendar()) == local(AMS, 2025, 3, 10, 9, 0)
    assert add_business_hours(local(AMS, 2025, 3, 4, 11, 0), 0, calendar()) == local(AMS, 2025, 3, 4, 11, 0)


def test_holidays_are_skipped():
    friday = local(AMS, 2025, 3, 7, 16, 0)
    with_holiday = calendar(holidays=["2025-03-10", date(2025, 3, 11)])
    assert add_business_hours(friday, 4, with_holiday) == local(AMS, 2025, 3, 12, 12, 0)


def test_the_result_is_utc():
    due = add_business_hours(local(AMS, 2025, 3, 4, 10, 0), 2, calendar())
    assert due.tzinfo == UTC
    assert due == datetime(2025, 3, 4, 11, 0, tzinfo=UTC)


def test_other_timezone_counts_its_own_business_hours():
    # 15:00 UTC is 16:00 in Amsterdam (one hour left) but 10:00 in New York.
    start = datetime(2025, 3, 5, 15, 0, tzinfo=UTC)
    assert add_business_hours(start, 2, calendar()) == local(AMS, 2025, 3, 6, 10, 0)
    assert add_business_hours(start, 2, calendar("America/New_York")) == local(NYC, 2025, 3, 5, 12, 0)
    assert add_business_hours(start, 2, calendar("Asia/Tokyo")) == local(ZoneInfo("Asia/Tokyo"), 2025, 3, 6, 11, 0)


def test_new_york_weekend_with_the_dst_change_in_between():
    # US clocks went forward on Sunday 9 March 2025: Friday is UTC-5, Monday UTC-4.
    friday = local(NYC, 2025, 3, 7, 16, 0)
    due = add_business_hours(friday, 2, calendar("America/New_York"))
    assert due == local(NYC, 2025, 3, 10, 10, 0)
    assert due == datetime(2025, 3, 10, 14, 0, tzinfo=UTC)


def test_amsterdam_weekend_with_the_dst_change_in_between():
    friday = local(AMS, 2025, 3, 28, 16, 0)  # CET, UTC+1
    due = add_business_hours(friday, 2, calendar())
    assert due == datetime(2025, 3, 31, 8, 0, tzinfo=UTC)  # 10:00 CEST


def test_a_window_containing_the_spring_forward_hour_holds_one_hour_less():
    night = calendar(days=range(7), opens=time(0), closes=time(6))
    start = local(AMS, 2025, 3, 30, 0, 0)  # 02:00 -> 03:00 that night
    assert add_business_hours(start, 5, night) == local(AMS, 2025, 3, 30, 6, 0)
    # A sixth hour does not fit that night: it is the first hour of the next window.
    assert add_business_hours(start, 6, night) == local(AMS, 2025, 3, 31, 1, 0)


def test_a_window_containing_the_fall_back_hour_holds_one_hour_more():
    night = calendar(days=range(7), opens=time(0), closes=time(6))
    start = local(AMS, 2025, 10, 26, 0, 0)  # 03:00 -> 02:00 that night
    assert add_business_hours(start, 7, night) == local(AMS, 2025, 10, 26, 6, 0)
    assert add_business_hours(start, 7, night) - start == timedelta(hours=7)


@pytest.mark.parametrize(
    "kwargs",
    [{"days": ()}, {"days": (7,)}, {"opens": time(17), "closes": time(9)}, {"opens": time(9), "closes": time(9)}],
)
def test_impossible_calendars_are_refused(kwargs):
    with pytest.raises(ValueError, match=r"working_days|opens_at"):
        calendar(**kwargs)


def test_naive_start_and_negative_hours_are_refused():
    with pytest.raises(ValueError, match="aware"):
        add_business_hours(datetime(2025, 3, 4, 10), 1, calendar())
    with pytest.raises(ValueError, match="negative"):
        add_business_hours(local(AMS, 2025, 3, 4, 10), -1, calendar())


def test_a_year_of_holidays_is_reported_not_looped_forever():
    every_day = [date(2025, 1, 1) + timedelta(days=n) for n in range(800)]
    with pytest.raises(ValueError, match="no business hours"):
        add_business_hours(local(AMS, 2025, 1, 1, 10), 1, calendar(holidays=every_day))


def test_a_deadline_beyond_the_horizon_is_refused_after_a_bounded_walk():
    one_hour_a_week = calendar(days=(2,), opens=time(9), closes=time(10))
    start = local(AMS, 2025, 1, 1, 10)
    # A year of hours at one hour a week would be 168 years away.
    with pytest.raises(DeadlineOutOfReach, match=f"more than {MAX_DAYS} days"):
        add_business_hours(start, 24 * 366, one_hour_a_week)
    # Just inside the horizon is still found.
    weeks = MAX_DAYS // 7 - 1
    assert add_business_hours(start, weeks, one_hour_a_week) == local(AMS, 2025, 1, 1, 10) + timedelta(weeks=weeks)
