"""A marketer opens a sent campaign in a real browser, reads its figures, the daily chart and the link
report, and changes its budget after the campaign completed: the ROI on the page follows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from analytics import selectors
from analytics.services import conversion_record
from analytics.tests.test_api import event, local, send
from campaigns.models import Campaign, CampaignStatus
from campaigns.tests.factories import CampaignFactory
from tracking.models import EventType

pytestmark = pytest.mark.django_db(transaction=True)

SALE = "https://shop.example.com/sale"
SHOES = "https://shop.example.com/shoes"


def test_a_marketer_reads_a_sent_campaigns_chart_and_links_and_sets_its_budget(admin_page):
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    day = local(organization, selectors.organization_today(organization) - timedelta(days=3))
    campaign = CampaignFactory(
        organization=organization,
        name="Spring sale",
        status=CampaignStatus.COMPLETED,
        budget=Decimal("100.00"),
        launched_at=day - timedelta(hours=1),
    )
    messages = send(campaign, 5, day)
    for index, url in enumerate([SALE, SALE, SHOES]):
        event(messages[index], EventType.OPENED, day + timedelta(minutes=index), unique=True)
        event(messages[index], EventType.CLICKED, day + timedelta(minutes=index + 1), unique=True, url=url)
    conversion_record(
        organization_id=organization.pk,
        contact=messages[0].contact,
        message=messages[0],
        value=Decimal("150.00"),
        currency="EUR",
    )
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True).user
    page = admin_page(marketer, PASSWORD)

    page.goto("/admin/")
    page.locator("tr.model-campaign a").first.click()
    page.get_by_role("link", name="Spring sale").click()
    panel = page.locator("#campaign-analytics")
    panel.wait_for()
    assert panel.locator('[data-counter="sent"] .value').inner_text().strip() == "5"
    assert panel.locator('[data-counter="clicked"] .value').inner_text().strip() == "3"
    assert panel.locator('[data-rate="open_rate"] .value').inner_text().strip() == "60.00%"

    chart = panel.locator(".chart svg")
    assert chart.count() == 1
    assert chart.locator("title").first.text_content() == "Spring sale: sent, opened and clicked per day"
    assert chart.bounding_box()["width"] > 100

    rows = panel.locator("table.links tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").all_inner_texts() == [SALE, "2", "2"]
    assert rows.nth(1).locator("td").all_inner_texts() == [SHOES, "1", "1"]
    assert panel.locator("table.roi").inner_text().count("50.00%") == 1  # (150 - 100) / 100

    page.fill("#campaign-budget", "300")
    page.get_by_role("button", name="Save budget").click()
    page.locator(".messagelist .success").wait_for()
    assert "Spring sale: budget 300.00." in page.locator(".messagelist").inner_text()
    assert "-50.00%" in page.locator("#campaign-analytics table.roi").inner_text()  # (150 - 300) / 300
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("300.00")
