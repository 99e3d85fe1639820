"""Queries per analytics page and endpoint: the stale days are found once per request, and the count
does not grow with the number of campaigns, days, variants or links."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from analytics import rollup
from analytics.selectors import organization_today
from analytics.tests.test_api import DASHBOARD, campaign_url, event, local, send
from campaigns.models import CampaignStatus, CampaignVariant
from campaigns.tests.factories import CampaignFactory
from tracking.models import EventType

pytestmark = pytest.mark.django_db

# The most queries each may run, whatever the organization holds (authentication and the admin's own
# permission checks included). Finding the stale days takes 7, each report or link read 1 plus its live
# tail (up to 4 in a transaction).
MAX_QUERIES = {"api dashboard": 22, "api campaign": 28, "admin dashboard": 50, "admin campaign page": 47}


def measure(clients: dict, urls: dict) -> dict[str, tuple[int, int]]:
    """{name: (queries, reads of the rollup watermarks)} of one GET of each page."""
    counts = {}
    for name, url in urls.items():
        with CaptureQueriesContext(connection) as captured:
            response = clients[name.split()[0]].get(url)
            assert response.status_code == 200, (name, response.content[:300])
        sql = [query["sql"] for query in captured.captured_queries]
        counts[name] = (len(sql), sum('FROM "analytics_rollupstate"' in query for query in sql))
    return counts


def activity(campaign, day, *, variant=None, url="https://shop.example.com/a"):
    messages = send(campaign, 2, day, variant=variant)
    event(messages[0], EventType.OPENED, day + timedelta(minutes=5), unique=True)
    event(messages[0], EventType.CLICKED, day + timedelta(minutes=6), unique=True, url=url)


def test_pages_read_the_stale_days_once_and_their_queries_do_not_grow(member_client, client):
    api, _, org = member_client(Role.MANAGER)
    staff = MembershipFactory(organization=org, role=Role.MANAGER, user__is_staff=True).user
    client.force_login(staff)
    today = organization_today(org)
    first = CampaignFactory(
        organization=org, status=CampaignStatus.RUNNING, launched_at=local(org, today - timedelta(days=20))
    )
    a = CampaignVariant.objects.create(campaign=first, name="A", template=first.template)
    activity(first, local(org, today - timedelta(days=2)), variant=a)
    rollup.rollup_incremental()
    activity(first, local(org, today - timedelta(days=1)), variant=a)  # not rolled up yet: the live tail
    clients = {"api": api, "admin": client}
    urls = {
        "api dashboard": DASHBOARD,
        "api campaign": campaign_url(first),
        "admin dashboard": f"/admin/analytics/dailystat/?organization={org.pk}",
        "admin campaign page": f"/admin/campaigns/campaign/{first.pk}/change/",
    }
    measure(clients, urls)  # fills the per-process caches (content types) a first page fills
    small = measure(clients, urls)

    for n in range(12):
        day = local(org, today - timedelta(days=n + 2))
        campaign = CampaignFactory(organization=org, status=CampaignStatus.RUNNING)
        variant = CampaignVariant.objects.create(campaign=first, name=f"B{n}", template=first.template)
        activity(campaign, day)
        activity(first, day, variant=variant, url=f"https://shop.example.com/{n}")
    rollup.rollup_incremental()
    for n in range(3):
        activity(first, local(org, today - timedelta(days=n)), variant=a, url=f"https://shop.example.com/late{n}")
    large = measure(clients, urls)

    assert large == small
    for name, (queries, watermark_reads) in large.items():
        assert watermark_reads == 1, name
        assert queries <= MAX_QUERIES[name], (name, queries)
