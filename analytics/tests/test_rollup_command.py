"""The rebuild command and the beat tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics.models import DailyStat, RollupState
from analytics.tasks import prune_task, rollup_task
from analytics.tests.test_rollup_builders import campaign, event, message, organization
from config.celery import app as celery_app
from tracking.models import EventType

pytestmark = pytest.mark.django_db


def _rows(org):
    return sorted(
        DailyStat.objects.filter(organization=org).values_list("date", "campaign_id", "sent", "delivered", "opened")
    )


@pytest.fixture
def two_organizations():
    orgs = []
    for tz in ("Europe/Amsterdam", "America/New_York"):
        org = organization(tz)
        made = campaign(org)
        for days in (1, 3):
            sent = message(made, sent_at=timezone.now() - timedelta(days=days))
            event(sent, EventType.DELIVERED, sent.sent_at + timedelta(minutes=1))
            event(sent, EventType.OPENED, sent.sent_at + timedelta(minutes=5), is_unique=True)
        orgs.append(org)
    rollup_task.delay()
    return orgs


def test_rebuild_command_rewrites_one_organization_by_slug(two_organizations):
    mine, theirs = two_organizations
    expected_mine, expected_theirs = _rows(mine), _rows(theirs)
    assert len(expected_mine) == 2
    assert expected_mine[0][2:] == (1, 1, 1)
    DailyStat.objects.all().delete()
    today = timezone.now().date()
    out = call_command(
        "analytics_rebuild",
        "--from",
        str(today - timedelta(days=7)),
        "--to",
        str(today + timedelta(days=1)),
        "--organization",
        mine.slug,
    )
    assert out is None
    assert _rows(mine) == expected_mine
    assert _rows(theirs) == []  # only the organization asked for
    call_command("analytics_rebuild", "--from", str(today - timedelta(days=7)), "--to", str(today))
    assert _rows(theirs) == expected_theirs
    call_command(
        "analytics_rebuild",
        "--from",
        str(today - timedelta(days=7)),
        "--to",
        str(today),
        "--organization",
        str(theirs.pk),
    )
    assert _rows(theirs) == expected_theirs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-02-30", "--to", "2026-03-01"], "--from"),
        (["--from", "2026-03-01", "--to", "tomorrow"], "--to"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "after --to"),
        (["--from", "2026-03-01", "--to", "2026-03-02", "--organization", "no-such-org"], "--organization"),
        (["--from", "2000-01-01", "--to", "2026-03-02"], "in parts"),
    ],
)
def test_rebuild_command_names_the_bad_argument(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("analytics_rebuild", *args)


def test_rollup_task_moves_the_watermarks_and_is_routed_to_the_analytics_queue(two_organizations):
    assert DailyStat.objects.filter(organization__in=two_organizations).count() == 4
    assert RollupState.objects.get(source="events").last_id > 0
    assert RollupState.objects.get(source="messages").last_at is not None
    for name in ("analytics.rollup", "analytics.prune"):
        assert name in celery_app.tasks
        assert celery_app.amqp.router.route({}, name)["queue"].name == "analytics"
        assert celery_app.tasks[name].acks_late
    schedule = {entry["task"]: entry["schedule"] for entry in celery_app.conf.beat_schedule.values()}
    assert schedule["analytics.rollup"] == 60.0
    assert schedule["analytics.prune"] == 24 * 3600
    assert prune_task.delay().get() == {"deleted": 0}
