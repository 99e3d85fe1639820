"""A campaign's budget is cost accounting, not content: it changes in any status, through the API and
the admin, and the ROI follows; everything else stays fixed once the campaign left draft."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent, Role
from analytics.selectors import organization_today
from analytics.services import conversion_record
from analytics.tests.test_api import local, send
from campaigns import services
from campaigns.models import Campaign, CampaignStatus, CampaignVariant
from campaigns.tests.factories import CampaignFactory
from config.errors import ConflictError

pytestmark = pytest.mark.django_db


def campaign_url(campaign) -> str:
    return f"/api/v1/campaigns/{campaign.pk}/"


def analytics_url(campaign) -> str:
    return f"/api/v1/analytics/campaigns/{campaign.pk}"


@pytest.fixture
def completed(member_client):
    """A completed campaign that earned 300.00 from one conversion, with a budget of 100.00."""
    client, user, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(
        organization=org, name="Spring sale", status=CampaignStatus.COMPLETED, budget=Decimal("100.00")
    )
    CampaignVariant.objects.create(campaign=campaign, name="A", template=campaign.template)
    [message] = send(campaign, 1, local(org, organization_today(org) - timedelta(days=2)))
    conversion_record(
        organization_id=org.pk, contact=message.contact, message=message, value=Decimal("300"), currency="EUR"
    )
    return client, user, campaign


def test_the_budget_of_a_completed_campaign_changes_and_the_roi_follows(completed):
    client, _, campaign = completed
    assert client.get(analytics_url(campaign)).json()["roi"] == 2.0

    response = client.patch(campaign_url(campaign), {"budget": "400.00"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["budget"] == "400.00"
    assert response.json()["status"] == CampaignStatus.COMPLETED
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("400.00")
    body = client.get(analytics_url(campaign)).json()
    assert (body["budget"], body["revenue"], body["roi"]) == ("400.00", "300.00", -0.25)


def test_a_budget_change_is_audited(completed):
    client, _, campaign = completed
    assert client.patch(campaign_url(campaign), {"budget": "250.50"}, format="json").status_code == 200
    event = AuditEvent.objects.get(action="campaign.budget_changed", object_id=str(campaign.pk))
    assert event.changes == {"before": {"budget": "100.00"}, "after": {"budget": "250.50"}}
    assert client.patch(campaign_url(campaign), {"budget": None}, format="json").json()["budget"] is None
    assert client.get(analytics_url(campaign)).json()["roi"] is None
    assert AuditEvent.objects.filter(action="campaign.budget_changed").count() == 2


def test_anything_but_the_budget_of_a_completed_campaign_is_still_a_409(completed):
    client, _, campaign = completed
    for body in (
        {"name": "Renamed"},
        {"name": "Renamed", "budget": "5.00"},
        {"budget": "5.00", "variants": [{"name": "B", "template": str(campaign.template_id), "weight": 1}]},
        {"audience": {"segment": None}},
    ):
        response = client.patch(campaign_url(campaign), body, format="json")
        assert response.status_code == 409, (body, response.content)
    campaign.refresh_from_db()
    assert (campaign.name, campaign.budget) == ("Spring sale", Decimal("100.00"))
    assert list(campaign.variants.values_list("name", flat=True)) == ["A"]


def test_the_budget_with_unchanged_fields_beside_it_is_accepted(completed):
    client, _, campaign = completed
    response = client.patch(campaign_url(campaign), {"name": "Spring sale", "budget": "120"}, format="json")
    assert response.status_code == 200, response.content
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("120.00")


@pytest.mark.parametrize("bad", ["-1", "abc", "1.234", "1000000000000.00"])
def test_a_bad_budget_on_a_completed_campaign_is_a_400_naming_budget(completed, bad):
    client, _, campaign = completed
    response = client.patch(campaign_url(campaign), {"budget": bad}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["budget"]
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("100.00")


def test_another_organizations_campaign_is_a_404(completed, member_client):
    _, _, campaign = completed
    stranger, _, _ = member_client(Role.MANAGER)
    assert stranger.patch(campaign_url(campaign), {"budget": "1"}, format="json").status_code == 404
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("100.00")


def test_the_service_refuses_content_and_checks_the_budget(completed):
    _, user, campaign = completed
    campaign.name = "Renamed"
    with pytest.raises(ConflictError):
        services.campaign_save(campaign=campaign, by=user)
    campaign.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        services.campaign_budget_set(campaign=campaign, budget=Decimal("-0.01"), by=user)
    assert list(refused.value.message_dict) == ["budget"]
    services.campaign_budget_set(campaign=campaign, budget=Decimal("75.5"), by=user)
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("75.50")
