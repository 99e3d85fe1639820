"""A marketer opens Analytics from the admin index in a real browser, reads the totals and the chart,
narrows the period, and downloads the figures as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from analytics import selectors
from analytics.models import DailyStat
from analytics.selectors import EXPORT_HEADER
from campaigns.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_marketer_reads_the_dashboard_changes_the_period_and_downloads_csv(admin_page):
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    today = selectors.organization_today(organization)
    spring = CampaignFactory(organization=organization, name="Spring sale")
    welcome = CampaignFactory(organization=organization, name="Welcome <series>")
    for day, campaign, counters in [
        (today, spring, dict(sent=120, opened=40, clicked=12, bounced=20)),
        (today - timedelta(days=1), spring, dict(sent=80, opened=30, clicked=9)),
        (today - timedelta(days=12), welcome, dict(sent=50, opened=5, clicked=1, revenue=Decimal("42.00"))),
    ]:
        DailyStat.objects.create(organization=organization, date=day, campaign=campaign, channel="email", **counters)
    globex = CampaignFactory(name="Globex secret plan")
    DailyStat.objects.create(organization=globex.organization, date=today, campaign=globex, sent=777)
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True).user
    page = admin_page(marketer, PASSWORD)

    page.goto("/admin/")
    section = page.locator("#content-main .app-analytics")
    assert section.get_by_role("link", name="Analytics").is_visible()
    section.get_by_role("link", name="Daily stats").click()
    page.get_by_role("heading", name="Analytics").first.wait_for()

    # The last 30 days: every campaign's messages, none of Globex's.
    assert page.input_value("#id_from") == (today - timedelta(days=29)).isoformat()
    assert page.input_value("#id_to") == today.isoformat()
    sent = page.locator(".totals [data-counter=sent] .value")
    assert sent.inner_text() == "250"
    assert page.locator(".totals [data-counter=revenue] .value").inner_text() == "42.00"
    assert page.locator(".rates [data-rate=open_rate] .value").inner_text() == "32.61%"
    chart = page.locator(".daily-chart svg[role=img]")
    assert chart.is_visible()
    assert "sent, opened and clicked per day" in chart.locator("title").first.text_content()
    assert chart.locator(".legend text").all_text_contents() == ["Sent", "Opened", "Clicked"]
    box = chart.bounding_box()
    assert box["width"] > 300
    assert box["height"] > 100
    top = page.locator("table.top-campaigns tbody tr")
    assert top.locator("a").all_inner_texts() == ["Spring sale", "Welcome <series>"]
    assert "Globex" not in page.content()

    # The last week only: the Welcome campaign's day drops out.
    page.fill("#id_from", (today - timedelta(days=6)).isoformat())
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**from=*")
    assert sent.inner_text() == "200"
    assert page.locator(".totals [data-counter=revenue] .value").inner_text() == "0.00"
    assert top.locator("a").all_inner_texts() == ["Spring sale"]
    assert page.locator(".daily-chart svg .x-axis text").count() == 7

    # A slip: the first day after the last is refused on its field, and the page still stands.
    page.fill("#id_from", (today + timedelta(days=3)).isoformat())
    page.get_by_role("button", name="Show").click()
    page.locator("#from-errors").wait_for()
    assert "on or before the last" in page.locator("#from-errors").inner_text()
    page.fill("#id_from", (today - timedelta(days=6)).isoformat())
    page.get_by_role("button", name="Show").click()
    sent.wait_for()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"analytics-{today - timedelta(days=6)}-{today}.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == EXPORT_HEADER
    assert [(row[0], row[2], row[4]) for row in rows[1:]] == [
        ((today - timedelta(days=1)).isoformat(), "Spring sale", "80"),
        (today.isoformat(), "Spring sale", "120"),
    ]

    # Spring sale's row leads to its campaign page.
    page.get_by_role("link", name="Spring sale").click()
    page.wait_for_url(f"**/admin/campaigns/campaign/{spring.pk}/change/")
