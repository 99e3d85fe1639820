"""The campaign page's analytics panel: KPIs, rates, revenue, budget, ROI, the daily chart and the
link report, from the selectors, rendered by its template."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from decimal import Decimal

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from analytics import selectors
from analytics.models import COUNTERS, DailyStat, LinkDailyStat
from analytics.panels import campaign_panel
from campaigns.models import CampaignVariant
from campaigns.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def spring():
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    today = selectors.organization_today(organization)
    campaign = CampaignFactory(
        organization=organization,
        name="Spring <sale>",
        budget=Decimal("200.00"),
        launched_at=timezone.now() - timedelta(days=3),
    )
    other = CampaignFactory(organization=organization, name="Other")
    rows = [
        (today, dict(sent=100, opened=40, clicked=10, bounced=10, opens=60, clicks=14, unsubscribed=1)),
        (today - timedelta(days=1), dict(sent=50, opened=20, clicked=5, conversions=3, revenue=Decimal("300.00"))),
        (today - timedelta(days=10), dict(sent=10, opened=1, conversions=1, revenue=Decimal("50.00"))),
    ]
    for day, counters in rows:
        DailyStat.objects.create(organization=organization, date=day, campaign=campaign, channel="email", **counters)
    DailyStat.objects.create(organization=organization, date=today, campaign=other, sent=999, opened=999)
    for day, url, clicks, unique in [
        (today, "https://shop.example.com/spring?a=1&b=<2>", 9, 6),
        (today - timedelta(days=1), "https://shop.example.com/spring?a=1&b=<2>", 3, 2),
        (today, "https://example.com/about", 4, 4),
    ]:
        LinkDailyStat.objects.create(
            organization=organization, date=day, campaign=campaign, url=url, clicks=clicks, unique_clicks=unique
        )
    return {"campaign": campaign, "today": today}


def test_the_panel_has_the_campaigns_figures_since_it_began(spring):
    campaign, today = spring["campaign"], spring["today"]
    panel = campaign_panel(campaign)
    [expected] = selectors.report(organization_id=campaign.organization_id, campaign_id=campaign.pk)
    assert {name: panel["counters"][name] for name in COUNTERS} == {name: expected[name] for name in COUNTERS}
    assert panel["counters"]["sent"] == 160
    assert panel["rates"] == selectors.rates(expected)
    assert panel["rates"]["open_rate"] == round(61 / 150, 4)
    assert panel["revenue"] == Decimal("350.00")
    assert panel["budget"] == Decimal("200.00")
    assert panel["roi"] == 0.75
    assert panel["roi_shown"] == "75.00%"
    assert panel["links"] == [
        {"url": "https://shop.example.com/spring?a=1&b=<2>", "clicks": 12, "unique_clicks": 8},
        {"url": "https://example.com/about", "clicks": 4, "unique_clicks": 4},
    ]
    # The chart runs from the first day with figures (before the launch) to today, every day.
    assert panel["chart_from"] == today - timedelta(days=10)
    assert panel["chart_to"] == today
    assert [day["date"] for day in panel["days"]] == [today - timedelta(days=10 - i) for i in range(11)]
    assert [day["sent"] for day in panel["days"]] == [10, *[0] * 8, 50, 100]


def test_a_period_narrows_the_figures_but_not_the_revenue_and_roi(spring):
    campaign, today = spring["campaign"], spring["today"]
    panel = campaign_panel(campaign, date_from=today - timedelta(days=1), date_to=today)
    assert panel["counters"]["sent"] == 150
    assert panel["counters"]["revenue"] == Decimal("300.00")
    assert panel["revenue"] == Decimal("350.00")  # the whole campaign's, as the budget is
    assert panel["roi"] == 0.75
    assert [day["date"] for day in panel["days"]] == [today - timedelta(days=1), today]
    assert panel["links"][0]["clicks"] == 12
    only_today = campaign_panel(campaign, date_from=today, date_to=today)
    assert only_today["links"][0] == {
        "url": "https://shop.example.com/spring?a=1&b=<2>",
        "clicks": 9,
        "unique_clicks": 6,
    }


def test_without_a_budget_there_is_no_roi(spring):
    campaign = spring["campaign"]
    campaign.budget = None
    campaign.save(update_fields=["budget"])
    panel = campaign_panel(campaign)
    assert panel["roi"] is None
    assert "needs a budget" in render_to_string("analytics/campaign_panel.html", panel)
    assert selectors.roi(Decimal("50"), Decimal("0")) is None
    assert selectors.roi(Decimal("50"), Decimal("100")) == -0.5


def test_the_template_renders_the_panel_escaped(spring):
    campaign = spring["campaign"]
    CampaignVariant.objects.create(campaign=campaign, name="B <bold>", template=campaign.template)
    html = render_to_string("analytics/campaign_panel.html", campaign_panel(campaign))
    assert 'data-counter="sent" data-value="160"' in html
    assert 'data-rate="open_rate" data-value="0.4067"' in html
    assert "40.67%" in html
    for figure in ("350.00", "200.00", "75.00%"):
        assert figure in html
    assert "https://shop.example.com/spring?a=1&amp;b=&lt;2&gt;" in html
    for raw in ("<2>", "<sale>", "<bold>"):
        assert raw not in html
    assert "B &lt;bold&gt;" in html
    start = html.index("<svg")
    root = ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])  # noqa: S314 - our own output
    assert root.find(f"{SVG}title").text == "Spring <sale>: sent, opened and clicked per day"
    assert root.find(f"{SVG}desc").text.endswith("Totals: Sent 160, Opened 61, Clicked 15.")


def test_a_campaign_with_nothing_yet_renders_an_empty_panel():
    campaign = CampaignFactory(budget=Decimal("10.00"))
    panel = campaign_panel(campaign)
    assert panel["counters"]["sent"] == 0
    assert panel["roi"] == -1.0
    assert panel["links"] == []
    html = render_to_string("analytics/campaign_panel.html", panel)
    assert "No data for this period" in html
    assert "No clicks on links in this period." in html
