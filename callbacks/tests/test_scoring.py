"""The priority rules of callbacks.scoring, one part at a time and together."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from callbacks import scoring

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)


def score(**overrides):
    inputs = {
        "value": None,
        "value_scale": 1000,
        "last_engagement_at": None,
        "waiting": timedelta(0),
        "urgency": "anytime",
        "now": NOW,
    }
    return scoring.compute_score(**{**inputs, **overrides})


def test_nothing_known_scores_zero_and_is_low():
    result = score()
    assert (result.score, result.priority) == (0, "low")


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (None, 0),
        (0, 0),
        (-500, 0),
        (250, 7.5),
        (500, 15),
        (1000, 30),
        (50_000, 30),
        ("500", 15),
        (" 750.0 ", 22.5),
        (Decimal("100"), 3),
        ("a lot", 0),
        (True, 0),
        (float("nan"), 0),
        ({"amount": 5}, 0),
    ],
)
def test_value_points_scale_with_the_attribute_and_cap_at_30(value, points):
    assert scoring.value_points(value, 1000) == pytest.approx(points)


def test_value_scale_is_per_organization():
    assert scoring.value_points(100, 100) == 30
    assert scoring.value_points(100, 10_000) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("age", "points"),
    [
        (timedelta(minutes=5), 20),
        (timedelta(hours=24), 20),
        (timedelta(hours=25), 12),
        (timedelta(days=7), 12),
        (timedelta(days=8), 5),
        (timedelta(days=30), 5),
        (timedelta(days=31), 0),
    ],
)
def test_recent_engagement_earns_more(age, points):
    assert scoring.engagement_points(NOW - age, NOW) == points


def test_no_engagement_earns_nothing():
    assert scoring.engagement_points(None, NOW) == 0


@pytest.mark.parametrize(
    ("waiting", "points"),
    [
        (timedelta(0), 0),
        (timedelta(minutes=59), 0),
        (timedelta(hours=1), 2),
        (timedelta(hours=3, minutes=30), 6),
        (timedelta(hours=10), 20),
        (timedelta(days=3), 20),
        (timedelta(hours=-2), 0),
    ],
)
def test_waiting_earns_two_points_an_hour_up_to_20(waiting, points):
    assert scoring.waiting_points(waiting) == points


@pytest.mark.parametrize(
    ("urgency", "points"), [("asap", 30), ("today", 20), ("this_week", 10), ("anytime", 0), ("unknown", 0)]
)
def test_stated_urgency(urgency, points):
    assert scoring.urgency_points(urgency) == points


@pytest.mark.parametrize(
    ("value", "category"),
    [
        (0, "low"),
        (19, "low"),
        (20, "normal"),
        (44, "normal"),
        (45, "high"),
        (69, "high"),
        (70, "urgent"),
        (100, "urgent"),
    ],
)
def test_category_thresholds(value, category):
    assert scoring.category_for(value) == category


def test_documented_examples():
    assert (score(urgency="asap").score, score(urgency="asap").priority) == (30, "normal")
    clicked = score(urgency="asap", last_engagement_at=NOW - timedelta(hours=20))
    assert (clicked.score, clicked.priority) == (50, "high")
    valuable = score(urgency="asap", last_engagement_at=NOW - timedelta(hours=20), value=1000)
    assert (valuable.score, valuable.priority) == (80, "urgent")


def test_everything_at_once_is_clamped_to_100():
    result = score(value=10**9, last_engagement_at=NOW, waiting=timedelta(days=2), urgency="asap")
    assert result.score == 100
    assert result.priority == "urgent"
    assert (result.value, result.engagement, result.waiting, result.urgency) == (30, 20, 20, 30)


def test_score_is_rounded_to_a_whole_number():
    result = score(value=255, urgency="today")  # 7.65 + 20
    assert result.score == 28
    assert isinstance(result.score, int)
