"""Priority of a callback request: a score from 0 to 100 and a category. Pure, no database.

The score adds four parts and is clamped to 0..100 (rounded to a whole number):

============  ======  =====================================================================
part          points  rule
============  ======  =====================================================================
value         0-30    the contact's value attribute (``CallbackSettings.value_attribute``,
                      e.g. ``attributes.lifetime_value``) divided by the organization's
                      ``value_scale``, capped at 1, times 30. Missing, negative or
                      non-numeric values give 0. A value at or above the scale gives 30.
engagement    0-20    the most recent engagement event (by default a ``clicked`` or
                      ``replied`` contact event): within 24 hours 20, within 7 days 12,
                      within 30 days 5, older or none 0.
waiting       0-20    2 points per full hour the request has been waiting since it came
                      in, at most 20 (reached after 10 hours). The sweep task re-scores
                      waiting requests, so long-waiting ones climb the queue.
urgency       0-30    what the contact said: ``asap`` 30, ``today`` 20, ``this_week`` 10,
                      ``anytime`` 0.
============  ======  =====================================================================

Category from the score: 70 and above ``urgent``, 45 and above ``high``, 20 and above
``normal``, below 20 ``low``. The category picks the SLA (see ``callbacks.sla``).

Examples: "asap" from an unknown contact scores 30 (normal); "asap" from a contact who
clicked yesterday scores 50 (high); add a lifetime value at the scale and it is 80 (urgent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

URGENT, HIGH, NORMAL, LOW = "urgent", "high", "normal", "low"

VALUE_POINTS = 30
ENGAGEMENT_STEPS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(hours=24), 20),
    (timedelta(days=7), 12),
    (timedelta(days=30), 5),
)
WAITING_POINTS_PER_HOUR = 2
WAITING_POINTS_MAX = 20
URGENCY_POINTS = {"asap": 30, "today": 20, "this_week": 10, "anytime": 0}
CATEGORY_THRESHOLDS: tuple[tuple[int, str], ...] = ((70, URGENT), (45, HIGH), (20, NORMAL))


@dataclass(frozen=True)
class Score:
    score: int
    priority: str
    value: float
    engagement: int
    waiting: int
    urgency: int


def value_points(value: object, scale: float) -> float:
    """0..VALUE_POINTS from a raw attribute value (number or numeric text)."""
    number = _as_number(value)
    if number is None or number <= 0 or scale <= 0:
        return 0.0
    return VALUE_POINTS * min(number / scale, 1.0)


def engagement_points(last_engagement_at: datetime | None, now: datetime) -> int:
    if last_engagement_at is None:
        return 0
    age = now - last_engagement_at
    for within, points in ENGAGEMENT_STEPS:
        if age <= within:
            return points
    return 0


def waiting_points(waiting: timedelta) -> int:
    hours = max(int(waiting.total_seconds() // 3600), 0)
    return min(hours * WAITING_POINTS_PER_HOUR, WAITING_POINTS_MAX)


def urgency_points(urgency: str) -> int:
    return URGENCY_POINTS.get(urgency, 0)


def category_for(score: int) -> str:
    for threshold, category in CATEGORY_THRESHOLDS:
        if score >= threshold:
            return category
    return LOW


def compute_score(
    *,
    value: object,
    value_scale: float,
    last_engagement_at: datetime | None,
    waiting: timedelta,
    urgency: str,
    now: datetime,
) -> Score:
    """The priority score and category of one request from plain inputs."""
    parts = (
        value_points(value, value_scale),
        engagement_points(last_engagement_at, now),
        waiting_points(waiting),
        urgency_points(urgency),
    )
    score = max(0, min(100, round(sum(parts))))
    return Score(
        score=score,
        priority=category_for(score),
        value=parts[0],
        engagement=parts[1],
        waiting=parts[2],
        urgency=parts[3],
    )


def _as_number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(Decimal(value.strip()))
        except (InvalidOperation, ValueError):
            return None
    else:
        return None
    return number if math.isfinite(number) else None
