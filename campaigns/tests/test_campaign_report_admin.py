"""A launched campaign's admin page shows its analytics as the selectors give them (KPIs, rates, revenue,
budget and ROI, the daily chart, the link report) and takes a new budget in any status; a draft shows
a note and a budget field; another organization's campaign is a 404."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from analytics import selectors
from analytics.models import COUNTERS
from analytics.services import conversion_record
from analytics.tests.test_admin_dashboard import Figures
from analytics.tests.test_api import event, local, send
from campaigns.models import Campaign, CampaignStatus
from campaigns.tests.factories import CampaignFactory
from tracking.models import EventType

pytestmark = pytest.mark.django_db

SALE = "https://shop.example.com/sale?a=1&b=2"
SHOES = "https://shop.example.com/shoes"


def page_url(campaign) -> str:
    return f"/admin/campaigns/campaign/{campaign.pk}/change/"


def budget_url(campaign) -> str:
    return f"/admin/campaigns/campaign/{campaign.pk}/budget/"


def staff(organization, role=Role.MANAGER):
    return MembershipFactory(organization=organization, role=role, user__is_staff=True).user


@pytest.fixture
def sent():
    """A completed campaign: 6 sent two days ago, opens (one by a scanner), clicks on two links, a bounce,
    a conversion of 150.00 against a budget of 100.00."""
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    day = local(organization, selectors.organization_today(organization) - timedelta(days=2))
    campaign = CampaignFactory(
        organization=organization,
        name="Spring sale",
        status=CampaignStatus.COMPLETED,
        budget=Decimal("100.00"),
        launched_at=day - timedelta(hours=1),
    )
    messages = send(campaign, 6, day)
    event(messages[0], EventType.OPENED, day + timedelta(minutes=5), unique=True)
    event(messages[0], EventType.CLICKED, day + timedelta(minutes=6), unique=True, url=SALE)
    event(messages[0], EventType.CLICKED, day + timedelta(minutes=9), url=SALE)
    event(messages[1], EventType.OPENED, day + timedelta(minutes=7), unique=True)
    event(messages[1], EventType.CLICKED, day + timedelta(minutes=8), unique=True, url=SHOES)
    event(messages[2], EventType.OPENED, day + timedelta(minutes=1), machine=True)
    event(messages[3], EventType.BOUNCED, day + timedelta(minutes=2))
    conversion_record(
        organization_id=organization.pk,
        contact=messages[0].contact,
        message=messages[0],
        value=Decimal("150.00"),
        currency="EUR",
    )
    return campaign


def test_a_launched_campaigns_page_shows_the_selectors_figures_and_links(client, sent):
    client.force_login(staff(sent.organization))
    response = client.get(page_url(sent))
    assert response.status_code == 200
    html = response.content.decode()
    page = Figures(html)

    [expected] = selectors.report(organization_id=sent.organization_id, campaign_id=sent.pk)
    assert expected["sent"] == 6
    assert expected["opened"] == 2
    assert expected["clicked"] == 2
    assert {name: page.counters[name] for name in COUNTERS} == {name: str(expected[name]) for name in COUNTERS}
    assert page.rates == {name: str(value) for name, value in selectors.rates(expected).items()}
    assert 'data-value="150.00"' in html  # revenue
    assert 'data-value="100.00"' in html  # budget
    assert 'data-value="0.5"' in html
    assert "50.00%" in html
    links = selectors.links(organization_id=sent.organization_id, campaign_id=sent.pk)
    assert [(row["url"], row["clicks"], row["unique_clicks"]) for row in links] == [(SALE, 2, 1), (SHOES, 1, 1)]
    assert "https://shop.example.com/sale?a=1&amp;b=2" in html
    assert SHOES in html
    assert '-title">Spring sale: sent, opened and clicked per day</title>' in html
    assert 'action="/admin/campaigns/campaign/' in html
    assert 'name="budget"' in html


def test_a_draft_shows_a_note_and_takes_its_budget_on_the_form(client):
    organization = OrganizationFactory()
    draft = CampaignFactory(organization=organization, name="Draft")
    client.force_login(staff(organization))
    html = client.get(page_url(draft)).content.decode()
    assert "appear here once the campaign is launched" in html
    assert 'class="chart"' not in html
    assert "data-counter" not in html
    assert 'name="budget"' in html
    assert 'id="id_budget"' in html


def test_the_budget_of_a_completed_campaign_is_changed_on_its_page(client, sent):
    user = staff(sent.organization)
    client.force_login(user)
    response = client.post(budget_url(sent), {"budget": "300"}, follow=True)
    assert response.redirect_chain[-1][0] == page_url(sent)
    assert "Spring sale: budget 300.00." in [str(message) for message in response.context["messages"]]
    assert Campaign.objects.get(pk=sent.pk).budget == Decimal("300.00")
    html = response.content.decode()
    assert 'data-value="-0.5"' in html
    assert "-50.00%" in html
    event = AuditEvent.objects.get(action="campaign.budget_changed")
    assert (event.actor_id, event.changes["after"]) == (user.pk, {"budget": "300.00"})

    response = client.post(budget_url(sent), {"budget": ""}, follow=True)
    assert Campaign.objects.get(pk=sent.pk).budget is None
    assert "needs a budget" in response.content.decode()


@pytest.mark.parametrize("bad", ["-1", "abc", "1.234"])
def test_a_bad_budget_is_a_message_naming_it(client, sent, bad):
    client.force_login(staff(sent.organization))
    response = client.post(budget_url(sent), {"budget": bad}, follow=True)
    [message] = [str(message) for message in response.context["messages"]]
    assert message.startswith("Spring sale: budget: ")
    assert Campaign.objects.get(pk=sent.pk).budget == Decimal("100.00")


def test_a_viewer_reads_the_figures_but_cannot_change_the_budget(client, sent):
    client.force_login(staff(sent.organization, Role.VIEWER))
    html = client.get(page_url(sent)).content.decode()
    assert 'data-counter="sent" data-value="6"' in html
    assert 'name="budget"' not in html
    assert client.post(budget_url(sent), {"budget": "1"}).status_code == 403
    assert Campaign.objects.get(pk=sent.pk).budget == Decimal("100.00")


def test_another_organizations_campaign_is_a_404(client, sent):
    client.force_login(staff(OrganizationFactory()))
    assert client.get(page_url(sent)).status_code == 404
    assert client.post(budget_url(sent), {"budget": "1"}).status_code == 404
    assert Campaign.objects.get(pk=sent.pk).budget == Decimal("100.00")


def test_the_budget_page_takes_only_posts(client, sent):
    client.force_login(staff(sent.organization))
    assert client.get(budget_url(sent)).status_code == 405
    assert sent.launched_at < timezone.now()
