"""Seeded random settings and recipients, checked against the planner's rules from the outside.

The exact-time tests in test_planner.py pin behaviour case by case; these check that no combination
of window, holidays, DST, zones and throttles ever produces a slot that breaks a rule. Seeds are
fixed, so every run checks the same cases.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from campaigns.planner import PlanSettings, Recipient, SendWindow, Slot, plan

ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Tokyo", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]
RECIPIENT_ZONES = ["", "Europe/Amsterdam", "America/New_York", "Asia/Tokyo", "Not/A_Zone"]
RECIPIENT_DOMAINS = ["gmail.com", "gmail.com", "outlook.com", "example.nl", ""]
# Start near both Amsterdam DST changes and New York's, and on ordinary days.
START_DAYS = [date(2025, 3, 7), date(2025, 3, 28), date(2025, 10, 24), date(2025, 11, 1), date(2025, 6, 12)]


def random_settings(rng: random.Random) -> PlanSettings:
    zone = rng.choice(ZONES)
    start_day = rng.choice(START_DAYS)
    start_at = datetime.combine(start_day, time(rng.randrange(24), rng.randrange(60)), tzinfo=UTC)
    window = None
    if rng.random() < 0.8:
        start_hour = rng.randrange(0, 20)
        end = time(0) if rng.random() < 0.2 else time(rng.randrange(start_hour + 1, 24), rng.choice([0, 30]))
        days = frozenset(rng.sample(range(7), rng.randint(1, 7)))
        window = SendWindow(days=days, start=time(start_hour, rng.choice([0, 15, 30])), end=end)
    holidays = frozenset(start_day + timedelta(days=rng.randrange(30)) for _ in range(rng.randrange(4)))
    return PlanSettings(
        start_at=start_at,
        timezone=zone,
        sending_domains=tuple(f"mail{n}.example.com" for n in range(rng.randint(1, 4))),
        window=window,
        holidays=holidays,
        per_domain_interval=rng.choice([None, None, timedelta(minutes=rng.choice([1, 7, 20, 60]))]),
        max_per_hour=rng.choice([None, rng.randint(1, 40)]),
        per_recipient_domain_per_minute=rng.choice([None, rng.randint(1, 3)]),
        recipient_timezone=rng.random() < 0.5,
    )


def random_recipients(rng: random.Random) -> list[Recipient]:
    zones = RECIPIENT_ZONES if rng.random() < 0.5 else sorted(RECIPIENT_ZONES)  # sometimes grouped
    people = [Recipient(key, rng.choice(RECIPIENT_DOMAINS), rng.choice(zones)) for key in range(rng.randint(1, 250))]
    if rng.random() < 0.5:
        people.sort(key=lambda person: person.timezone)
    return people


def is_dst_change_day(day: date, zone: ZoneInfo) -> bool:
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day, time(23, 59), tzinfo=zone)
    return start.utcoffset() != end.utcoffset()


def check_rules(settings: PlanSettings, people: list[Recipient], slots: list[Slot]) -> None:
    assert [slot.key for slot in slots] == [person.key for person in people]
    domains = settings.sending_domains
    assert [slot.sending_domain for slot in slots] == [domains[i % len(domains)] for i in range(len(slots))]

    for person, slot in zip(people, slots, strict=True):
        at = slot.scheduled_at
        assert at.tzinfo is UTC
        assert at >= settings.start_at
        zone_name = person.timezone if settings.recipient_timezone else ""
        try:
            zone = ZoneInfo(zone_name) if zone_name else ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            zone = ZoneInfo(settings.timezone)
        local = at.astimezone(zone)
        assert local.date() not in settings.holidays, (person, slot)
        if settings.window is not None:
            assert local.weekday() in settings.window.days, (person, slot)
            if not is_dst_change_day(local.date(), zone):  # DST days have exact tests of their own
                assert local.time() >= settings.window.start, (person, slot)
                assert settings.window.end == time(0) or local.time() < settings.window.end, (person, slot)

    if settings.per_domain_interval is not None:
        for domain in domains:
            sent = sorted(slot.scheduled_at for slot in slots if slot.sending_domain == domain)
            assert all(b - a >= settings.per_domain_interval for a, b in pairwise(sent))
    if settings.max_per_hour is not None:
        per_hour = Counter(slot.scheduled_at.replace(minute=0, second=0, microsecond=0) for slot in slots)
        assert max(per_hour.values()) <= settings.max_per_hour
    if settings.per_recipient_domain_per_minute is not None:
        per_minute = Counter(
            (person.domain, slot.scheduled_at.replace(second=0, microsecond=0))
            for person, slot in zip(people, slots, strict=True)
            if person.domain
        )
        assert not per_minute or max(per_minute.values()) <= settings.per_recipient_domain_per_minute
    no_limits = (settings.per_domain_interval, settings.max_per_hour, settings.per_recipient_domain_per_minute)
    if settings.window is None and not settings.holidays and no_limits == (None, None, None):
        assert {slot.scheduled_at for slot in slots} == {settings.start_at}


@pytest.mark.parametrize("seed", range(80))
def test_random_plans_keep_every_rule(seed):
    rng = random.Random(seed)
    settings = random_settings(rng)
    people = random_recipients(rng)

    slots = list(plan(settings, people))

    check_rules(settings, people, slots)
    assert list(plan(settings, iter(people))) == slots  # deterministic
