"""Links, agents, rates and the organization's today, before and after the rollup."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from analytics import rollup
from analytics.models import AgentDailyStat, LinkDailyStat
from analytics.selectors import agents, links, organization_today, rates
from analytics.tests.test_rollup_builders import campaign, event, message, organization
from callbacks.models import CallbackRequest, CallbackStatus
from callbacks.tests.factories import CallbackRequestFactory, agent_of
from tracking.models import EventType

pytestmark = pytest.mark.django_db
SHOP, BLOG = "https://shop.example.com/", "https://blog.example.com/post"


def test_links_count_human_clicks_per_url_most_clicked_first():
    org = organization()
    made, other = campaign(org), campaign(org)
    sent_at = timezone.now() - timedelta(hours=5)
    first, second = message(made, sent_at=sent_at), message(made, sent_at=sent_at)
    at = sent_at + timedelta(minutes=10)
    event(first, EventType.CLICKED, at, is_unique=True, url=SHOP)
    event(first, EventType.CLICKED, at + timedelta(minutes=1), url=SHOP)
    event(first, EventType.CLICKED, at + timedelta(minutes=2), url=BLOG)  # the message's first click on BLOG
    event(second, EventType.CLICKED, at, is_unique=True, url=SHOP)
    event(second, EventType.CLICKED, at, machine=True, url=BLOG)  # a link scanner
    event(message(other, sent_at=sent_at), EventType.CLICKED, at, is_unique=True, url=BLOG)
    expected = [
        {"url": SHOP, "clicks": 3, "unique_clicks": 2},
        {"url": BLOG, "clicks": 1, "unique_clicks": 1},
    ]
    assert links(organization_id=org.pk, campaign_id=made.pk) == expected  # live
    rollup.rollup_incremental()
    assert LinkDailyStat.objects.filter(organization=org, campaign=made).count() == 2
    assert links(organization_id=org.pk, campaign_id=made.pk) == expected  # from the rollup
    assert links(organization_id=org.pk, campaign_id=other.pk) == [{"url": BLOG, "clicks": 1, "unique_clicks": 1}]
    tomorrow = organization_today(org) + timedelta(days=1)
    assert links(organization_id=org.pk, campaign_id=made.pk, date_from=tomorrow) == []
    assert links(organization_id=organization().pk, campaign_id=made.pk) == []


def test_agents_handled_first_contact_resolution_and_breaches():
    org = organization("Europe/Amsterdam")
    ann = agent_of(org, user__full_name="Ann Agent")
    bob = agent_of(org)
    start = timezone.now() - timedelta(days=1, hours=6)
    CallbackRequestFactory(  # completed late: a breach
        organization=org,
        assigned_to=ann,
        status=CallbackStatus.COMPLETED,
        created_at=start,
        sla_due_at=start + timedelta(minutes=30),
        first_contact_at=start + timedelta(minutes=10),
        first_contact_by=ann,
        closed_at=start + timedelta(hours=1),
    )
    CallbackRequestFactory(  # completed in time
        organization=org,
        assigned_to=ann,
        status=CallbackStatus.COMPLETED,
        created_at=start,
        sla_due_at=start + timedelta(hours=8),
        first_contact_at=start + timedelta(minutes=20),
        first_contact_by=ann,
        closed_at=start + timedelta(hours=3),
    )
    CallbackRequestFactory(  # cancelled after its SLA: a breach, not handled
        organization=org,
        assigned_to=ann,
        status=CallbackStatus.CANCELLED,
        created_at=start,
        sla_due_at=start + timedelta(minutes=5),
        closed_at=start + timedelta(hours=2),
    )
    CallbackRequestFactory(  # Bob reached the contact; still open
        organization=org,
        assigned_to=bob,
        status=CallbackStatus.IN_PROGRESS,
        created_at=start,
        first_contact_at=start + timedelta(minutes=40),
        first_contact_by=bob,
    )
    CallbackRequestFactory(organization=organization(), assigned_to=None)  # someone else's, never counted
    # Last changed hours ago, so once rolled up nothing is left for the live tail.
    CallbackRequest.objects.filter(organization=org).update(updated_at=start + timedelta(hours=3))
    today = organization_today(org)
    expected = [
        {
            "agent_id": ann.pk,
            "agent_name": "Ann Agent",
            "handled": 2,
            "first_contacts": 2,
            "avg_first_contact_seconds": 900,
            "resolutions": 2,
            "avg_resolution_seconds": 7200,
            "sla_breaches": 2,
        },
        {
            "agent_id": bob.pk,
            "agent_name": bob.email,
            "handled": 0,
            "first_contacts": 1,
            "avg_first_contact_seconds": 2400,
            "resolutions": 0,
            "avg_resolution_seconds": None,
            "sla_breaches": 0,
        },
    ]
    window = {"date_from": today - timedelta(days=3), "date_to": today}
    assert agents(organization_id=org.pk, **window) == expected  # live
    rollup.rollup_incremental()
    assert AgentDailyStat.objects.filter(organization=org).exists()
    assert rollup.stale_days(org) == []
    assert agents(organization_id=org.pk, **window) == expected  # from the rollup
    assert agents(organization_id=org.pk, date_from=today + timedelta(days=1), date_to=today + timedelta(days=2)) == []


def test_rates_are_over_sent_minus_bounced_and_zero_without_a_base():
    counters = {"sent": 10, "bounced": 2, "opened": 4, "clicked": 2, "unsubscribed": 1}
    assert rates(counters) == {
        "open_rate": 0.5,
        "click_rate": 0.25,
        "click_to_open_rate": 0.5,
        "bounce_rate": 0.2,
        "unsubscribe_rate": 0.125,
    }
    assert rates({"sent": 3, "bounced": 0, "opened": 1, "clicked": 0})["open_rate"] == 0.3333
    assert set(rates({}).values()) == {0.0}
    assert rates({"sent": 2, "bounced": 2, "opened": 0})["bounce_rate"] == 1.0


def test_organization_today_is_the_date_in_its_time_zone():
    east, west = organization("Pacific/Kiritimati"), organization("Pacific/Pago_Pago")  # UTC+14, UTC-11
    now = timezone.now()
    assert organization_today(east) == now.astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    assert organization_today(west) == now.astimezone(ZoneInfo("Pacific/Pago_Pago")).date()
    assert (organization_today(east) - organization_today(west)).days in (1, 2)
