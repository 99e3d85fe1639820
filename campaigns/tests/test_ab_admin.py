"""An A/B test on the campaign's admin page: its figures as the API's stats give them, and a marketer's
pick of the winner through the same service as the API, its refusals shown as messages."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from campaigns import ab, services
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.tests.test_ab import AB, ab_campaign, launch_and_prepare, send_test

pytestmark = pytest.mark.django_db
M = MessageStatus


def page_url(campaign) -> str:
    return f"/admin/campaigns/campaign/{campaign.pk}/change/"


def pick_url(campaign) -> str:
    return f"/admin/campaigns/campaign/{campaign.pk}/ab-winner/"


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(
        role=Role.MANAGER, user__is_staff=True, organization=OrganizationFactory(name="Acme")
    )
    client.force_login(membership.user)
    return client, membership.organization


def user_of(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def panel(response) -> dict:
    return response.context["ab"]


def test_the_page_shows_the_test_as_the_stats_give_it(marketer):
    client, organization = marketer
    campaign = launch_and_prepare(ab_campaign(contacts=1000, organization=organization))
    send_test(campaign, opened={"A": 20, "B": 70}, when=timezone.now() - timedelta(minutes=30))
    state = ab.campaign_ab_state(campaign)
    assert state["status"] == "waiting"

    response = client.get(page_url(campaign))

    assert response.status_code == 200
    shown = panel(response)
    assert shown["status"] == "waiting"
    assert shown["metric"] == "open rate"
    assert shown["test_size"] == state["test_size"] == 200
    assert shown["held"] == state["held"] == 800
    assert shown["decision_due_at"] == timezone.localtime(
        Message.objects.filter(campaign=campaign, status=M.SENT).order_by("-sent_at").first().sent_at
        + timedelta(hours=AB["wait_hours"])
    )
    assert shown["p_value"] == f"{state['p_value']:.4g}"
    assert state["p_value"] < 0.05
    assert shown["significant"] == "yes"
    assert shown["leader"] == "B"
    assert shown["may_pick"] is True
    html = response.content.decode()
    assert 'id="ab-test"' in html
    assert "WAITING" in html.upper()
    for row in state["per_variant"]:
        assert f'data-variant="{row["variant"]}"' in html
    by_variant = {row["variant"]: row for row in shown["per_variant"]}
    assert (by_variant["A"]["sent"], by_variant["A"]["opened"], by_variant["A"]["rate"]) == (100, 20, "20.0%")
    assert (by_variant["B"]["sent"], by_variant["B"]["opened"], by_variant["B"]["rate"]) == (100, 70, "70.0%")
    assert html.count(">Pick winner</button>") == 2
    assert f'action="{pick_url(campaign)}"' in html
    assert "csrfmiddlewaretoken" in html.split('id="ab-test"')[1]


def test_a_campaign_without_a_test_has_no_panel(marketer):
    client, organization = marketer
    campaign = ab_campaign(contacts=1, organization=organization, ab_test={})
    response = client.get(page_url(campaign))
    assert response.status_code == 200
    assert "ab" not in response.context
    assert 'id="ab-test"' not in response.content.decode()


def test_pick_winner_asks_first_then_sends_the_held_messages_with_it(marketer):
    client, organization = marketer
    campaign = launch_and_prepare(ab_campaign(organization=organization))
    held_ids = set(Message.objects.filter(campaign=campaign, status=M.HELD).values_list("pk", flat=True))
    held = len(held_ids)
    assert held > 0
    test_size = Message.objects.filter(campaign=campaign).count() - held

    asked = client.post(pick_url(campaign), {"variant": "B"})
    assert asked.status_code == 200
    assert "Yes, pick B" in asked.content.decode()
    assert f"The {held} held messages" in asked.content.decode()
    campaign.refresh_from_db()
    assert campaign.ab_result == {}  # nothing decided before the confirmation
    assert Message.objects.filter(campaign=campaign, status=M.HELD).count() == held

    done = client.post(pick_url(campaign), {"variant": "B", "confirm": "on"}, follow=True)

    assert done.redirect_chain[-1][0] == page_url(campaign)
    assert any("variant B picked as the winner" in text for text in page_messages(done))
    campaign.refresh_from_db()
    assert (campaign.ab_result["winner"], campaign.ab_result["decided_by"]) == ("B", "manual")
    assert not Message.objects.filter(campaign=campaign, status=M.HELD).exists()
    released = Message.objects.filter(pk__in=held_ids)
    assert set(released.values_list("variant__name", "status")) == {("B", M.QUEUED)}
    audit = AuditEvent.objects.get(action="campaign.ab_decided", object_id=str(campaign.pk))
    assert audit.actor_id == user_of(client).pk
    shown = panel(done)
    assert (shown["status"], shown["winner"], shown["decided_by"], shown["held"]) == ("decided", "B", "manual", 0)
    assert shown["decided_at"] is not None
    assert shown["test_size"] == test_size  # the test's size, not the whole audience now that all have B
    assert shown["may_pick"] is False
    assert ">Pick winner</button>" not in done.content.decode()


def test_refusals_are_messages_on_the_page(marketer):
    client, organization = marketer
    draft = ab_campaign(organization=organization)

    not_launched = client.post(pick_url(draft), {"variant": "A", "confirm": "on"}, follow=True)
    assert not_launched.status_code == 200
    assert any("draft campaign's test cannot be decided" in text for text in page_messages(not_launched))

    campaign = launch_and_prepare(draft)
    unknown = client.post(pick_url(campaign), {"variant": "Z", "confirm": "on"}, follow=True)
    assert unknown.status_code == 200
    assert any(text.startswith(f"{campaign.name}: variant:") for text in page_messages(unknown))

    ab.campaign_ab_decide(campaign=campaign, variant=campaign.variants.get(name="A"))
    twice = client.post(pick_url(campaign), {"variant": "B", "confirm": "on"}, follow=True)
    assert twice.status_code == 200
    assert any("decided already" in text for text in page_messages(twice))
    campaign.refresh_from_db()
    assert campaign.ab_result["winner"] == "A"


def test_a_pick_before_the_audience_is_expanded_is_refused(marketer, django_capture_on_commit_callbacks):
    """Launched, the expansion not yet run: a pick then would leave the rest held for ever."""
    client, organization = marketer
    campaign = ab_campaign(organization=organization)
    with django_capture_on_commit_callbacks(execute=False):
        services.campaign_launch(campaign=campaign)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.expanded_at) == (CampaignStatus.RUNNING, None)

    refused = client.post(pick_url(campaign), {"variant": "B", "confirm": "on"}, follow=True)

    assert any("not started" in text for text in page_messages(refused))
    campaign.refresh_from_db()
    assert campaign.ab_result == {}
    services.campaign_expand(campaign=campaign)
    assert ab.campaign_ab_hold(campaign=campaign) > 0


def test_junk_posts_are_messages_or_405_never_500(marketer):
    client, organization = marketer
    campaign = launch_and_prepare(ab_campaign(organization=organization))
    assert client.get(pick_url(campaign)).status_code == 405
    junk = [
        {},
        {"variant": ""},
        {"variant": "x" * 5000, "confirm": "on"},
        {"variant": "<script>alert(1)</script>", "confirm": "on"},
        {"variant": "A\x00", "confirm": "on"},
    ]
    for body in junk:
        response = client.post(pick_url(campaign), body, follow=True)
        assert response.status_code == 200, body
        assert any("variant:" in text for text in page_messages(response)), body
    assert client.post("/admin/campaigns/campaign/not-an-id/ab-winner/", {"variant": "A"}).status_code == 404
    campaign.refresh_from_db()
    assert campaign.ab_result == {}
    assert Message.objects.filter(campaign=campaign, status=M.HELD).exists()


def test_another_organizations_campaign_is_404(marketer):
    client, _ = marketer
    theirs = launch_and_prepare(ab_campaign())
    assert client.get(page_url(theirs)).status_code == 404
    assert client.post(pick_url(theirs), {"variant": "B", "confirm": "on"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.ab_result == {}


def test_a_viewer_sees_the_test_but_cannot_pick(client):
    membership = MembershipFactory(role=Role.VIEWER, user__is_staff=True)
    client.force_login(membership.user)
    campaign = launch_and_prepare(ab_campaign(organization=membership.organization))
    response = client.get(page_url(campaign))
    assert response.status_code == 200
    assert panel(response)["may_pick"] is False
    assert ">Pick winner</button>" not in response.content.decode()
    assert client.post(pick_url(campaign), {"variant": "B", "confirm": "on"}).status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).ab_result == {}
