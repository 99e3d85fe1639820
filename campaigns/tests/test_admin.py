import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from campaigns.models import Campaign, Message
from campaigns.tests.factories import CampaignFactory
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(role=Role.MANAGER)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    client.force_login(membership.user)
    return client, membership.organization


def test_campaign_admin_dry_run_launch_pause_cancel(marketer, django_capture_on_commit_callbacks):
    client, org = marketer
    vip = TagFactory(organization=org, name="vip")
    for _ in range(3):
        ContactFactory(organization=org, tags=[vip])
    campaign = CampaignFactory(organization=org, name="Autumn")
    other = CampaignFactory(name="Not mine")

    listing = client.get("/admin/campaigns/campaign/")
    assert b"Autumn" in listing.content
    assert b"Not mine" not in listing.content

    dry = client.post(
        "/admin/campaigns/campaign/", {"action": "dry_run", "_selected_action": [str(campaign.pk)]}, follow=True
    )
    assert b"Autumn: 3 recipients" in dry.content
    assert not Message.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/campaigns/campaign/", {"action": "launch", "_selected_action": [str(campaign.pk)]})
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    assert Message.objects.filter(campaign=campaign).count() == 3
    detail = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert b"queued: 3" in detail.content

    client.post("/admin/campaigns/campaign/", {"action": "pause", "_selected_action": [str(campaign.pk)]})
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    twice = client.post(
        "/admin/campaigns/campaign/", {"action": "pause", "_selected_action": [str(campaign.pk)]}, follow=True
    )
    assert b"cannot become paused" in twice.content
    client.post("/admin/campaigns/campaign/", {"action": "cancel", "_selected_action": [str(campaign.pk)]})
    assert Campaign.objects.get(pk=campaign.pk).status == "cancelled"
    # Another organization's campaign is out of reach.
    client.post("/admin/campaigns/campaign/", {"action": "launch", "_selected_action": [str(other.pk)]})
    assert Campaign.objects.get(pk=other.pk).status == "draft"


def test_campaign_admin_shows_the_services_refusal_on_the_form(marketer):
    from campaigns.tests.factories import EmailTemplateFactory, SendingDomainFactory

    client, org = marketer
    template = EmailTemplateFactory(organization=org)
    domain = SendingDomainFactory(organization=org, domain="mail.example.com")
    vip = TagFactory(organization=org, name="vip")
    form = {
        "organization": str(org.pk),
        "name": "Admin made",
        "channel": "email",
        "template": str(template.pk),
        "audience_tags": [str(vip.pk)],
        "start_date": "0001-01-01",  # the service refuses a start in the past
        "domains": [str(domain.pk)],
        "variants-TOTAL_FORMS": "0",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
    }
    refused = client.post("/admin/campaigns/campaign/add/", form)
    assert refused.status_code == 200  # the form again, not a server error
    assert "start_date" in refused.context["adminform"].form.errors
    assert not Campaign.objects.filter(name="Admin made").exists()

    form["start_date"] = ""
    assert client.post("/admin/campaigns/campaign/add/", form).status_code == 302
    assert Campaign.objects.get(name="Admin made").sending_domains == ["mail.example.com"]
