"""Pruning raw events past the retention: only rolled-up ones, and their days' rollups stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import rollup
from analytics.models import DailyStat
from analytics.selectors import report
from analytics.tests.test_rollup_builders import campaign, event, message, organization
from tracking.models import EventType, MessageEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(settings):
    """A message sent 395 days ago with two events that day, and a recent one with an open."""
    settings.EVENT_RETENTION_DAYS = 400
    org = organization("UTC")
    made = campaign(org)
    now = timezone.now()
    old = message(made, sent_at=now - timedelta(days=395))
    recent = message(made, sent_at=now - timedelta(days=1))
    old_events = [
        event(old, EventType.DELIVERED, old.sent_at + timedelta(minutes=1)),
        event(old, EventType.OPENED, old.sent_at + timedelta(minutes=2), is_unique=True),
    ]
    recent_event = event(recent, EventType.OPENED, recent.sent_at + timedelta(minutes=2), is_unique=True)
    rollup.rollup_incremental(now=now)
    return org, old, old_events, recent_event, now


def test_prune_deletes_rolled_up_old_events_and_keeps_their_rollups(history):
    org, old, old_events, recent_event, now = history
    later = now + timedelta(days=10)  # the old day is now 405 days back
    before = list(DailyStat.objects.filter(organization=org).order_by("date").values())
    figures = report(organization_id=org.pk, by=("date",))

    assert rollup.prune_events(now=later, batch_size=1) == 2

    assert not MessageEvent.objects.filter(pk__in=[e.pk for e in old_events]).exists()
    assert MessageEvent.objects.filter(pk=recent_event.pk).exists()
    assert list(DailyStat.objects.filter(organization=org).order_by("date").values()) == before
    assert report(organization_id=org.pk, by=("date",)) == figures
    old_day = [row for row in figures if row["date"] == old.sent_at.date()]
    assert [(row["sent"], row["delivered"], row["opened"]) for row in old_day] == [(1, 1, 1)]


def test_prune_keeps_old_events_not_yet_rolled_up_and_frozen_days_are_never_recomputed(history):
    org, old, _old_events, _recent, now = history
    later = now + timedelta(days=10)
    rollup.prune_events(now=later)
    # An event for the pruned day arrives after the rollup: above the watermark, it is kept.
    straggler = event(old, EventType.CLICKED, old.sent_at + timedelta(minutes=3), received_at=later)
    assert rollup.prune_events(now=later) == 0
    assert MessageEvent.objects.filter(pk=straggler.pk).exists()

    old_row = DailyStat.objects.get(organization=org, date=old.sent_at.date())
    rollup.rollup_incremental(now=later)
    rebuilt = rollup.rebuild(date_from=old.sent_at.date(), date_to=later.date(), now=later)
    assert rebuilt["skipped_days"] >= 1
    # The frozen day kept its row (the pruned delivery and open are still counted, the click is not).
    kept = DailyStat.objects.get(organization=org, date=old.sent_at.date())
    assert (kept.pk, kept.delivered, kept.opened, kept.clicked) == (old_row.pk, 1, 1, 0)
    # Rolled up now (below the watermark), so the next prune takes it.
    assert rollup.prune_events(now=later) == 1


def test_nothing_is_pruned_before_the_first_rollup(settings):
    settings.EVENT_RETENTION_DAYS = 30
    org = organization()
    sent = message(campaign(org), sent_at=timezone.now() - timedelta(days=60))
    event(sent, EventType.DELIVERED, sent.sent_at)
    assert rollup.prune_events() == 0
    assert MessageEvent.objects.count() == 1
    rollup.rollup_incremental()
    assert rollup.prune_events() == 1
