"""A/B tests with a winner: hold the rest, decide (automatically or by hand), send the winner."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from campaigns import ab, services
from campaigns.models import CampaignVariant, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, sends_from
from config.errors import ConflictError
from contacts.models import Contact, ContactTag
from contacts.tests.factories import TagFactory

pytestmark = pytest.mark.django_db
M = MessageStatus
AB = {"test_fraction": 0.2, "metric": "open_rate", "wait_hours": 2, "on_no_winner": "first"}


def ab_campaign(contacts=200, ab_test=None, weights=(1, 1), organization=None):
    campaign = CampaignFactory(audience={"tags": ["vip"]}, **({"organization": organization} if organization else {}))
    organization = campaign.organization
    sends_from(organization)
    tag = TagFactory(organization=organization, name="vip")
    people = Contact.objects.bulk_create(
        [
            Contact(organization=organization, email=f"p{i}@example.org", email_domain="example.org", attributes={})
            for i in range(contacts)
        ]
    )
    ContactTag.objects.bulk_create([ContactTag(contact=p, tag=tag, created_at=timezone.now()) for p in people])
    for name, weight in zip(("A", "B"), weights, strict=True):
        template = EmailTemplateFactory(organization=organization, subject=f"Subject {name}")
        CampaignVariant.objects.create(campaign=campaign, name=name, template=template, weight=weight)
    campaign.template = None
    campaign.ab_test = ab_test if ab_test is not None else dict(AB)
    campaign.save()
    return campaign


def launch_and_prepare(campaign):
    services.campaign_launch(campaign=campaign)
    campaign.refresh_from_db()
    services.campaign_expand(campaign=campaign)
    ab.campaign_ab_hold(campaign=campaign)
    services.campaign_plan(campaign=campaign)
    campaign.refresh_from_db()
    return campaign


def send_test(campaign, *, opened=None, when=None):
    """Mark the test sent (when), and the given number of opens per variant name."""
    when = when or timezone.now() - timedelta(hours=3)
    test = Message.objects.filter(campaign=campaign, variant__isnull=False)
    test.update(status=M.SENT, sent_at=when)
    for name, count in (opened or {}).items():
        ids = list(test.filter(variant__name=name).values_list("id", flat=True)[:count])
        Message.objects.filter(id__in=ids).update(status=M.OPENED)


def test_the_rest_is_held_stratified_by_weight():
    campaign = launch_and_prepare(ab_campaign(contacts=1000, ab_test={**AB, "test_fraction": 0.1}, weights=(3, 1)))
    messages = Message.objects.filter(campaign=campaign)
    assert messages.count() == 1000
    held = messages.filter(status=M.HELD)
    assert held.count() == pytest.approx(900, abs=2)
    assert not held.filter(variant__isnull=False).exists()
    test = messages.exclude(status=M.HELD)
    assert set(test.values_list("status", flat=True)) == {M.QUEUED}
    by_variant = {v: test.filter(variant__name=v).count() for v in ("A", "B")}
    assert by_variant["A"] == pytest.approx(75, abs=2)
    assert by_variant["B"] == pytest.approx(25, abs=2)
    # A rerun of the preparation (a redelivered task) holds nothing more.
    assert ab.campaign_ab_hold(campaign=campaign) == 0


def test_held_messages_stay_untouched_until_the_decision():
    campaign = launch_and_prepare(ab_campaign())
    held_ids = set(Message.objects.filter(campaign=campaign, status=M.HELD).values_list("id", flat=True))
    send_test(campaign, when=timezone.now() - timedelta(minutes=30))
    assert ab.ab_decide_due() == 0  # the wait is not over
    assert set(Message.objects.filter(campaign=campaign, status=M.HELD).values_list("id", flat=True)) == held_ids
    assert ab.campaign_ab_state(campaign)["status"] == "waiting"


def test_a_winner_by_opens_gets_the_rest():
    campaign = launch_and_prepare(ab_campaign(contacts=1000))
    send_test(campaign, opened={"A": 20, "B": 70})
    assert ab.ab_decide_due() == 1
    campaign.refresh_from_db()
    result = campaign.ab_result
    assert (result["winner"], result["decided_by"], result["significant"]) == ("B", "auto", True)
    assert result["p_value"] < 0.05
    rest = Message.objects.filter(campaign=campaign, sent_at__isnull=True)
    assert set(rest.values_list("status", flat=True)) == {M.QUEUED}
    assert set(rest.values_list("variant__name", flat=True)) == {"B"}
    state = ab.campaign_ab_state(campaign)
    assert state["status"] == "decided"
    assert [row["variant"] for row in state["per_variant"]] == ["A", "B"]


@pytest.mark.parametrize(("on_no_winner", "expected"), [("first", {"A"}), ("split", {"A", "B"})])
def test_no_significant_winner_follows_on_no_winner(on_no_winner, expected):
    campaign = launch_and_prepare(ab_campaign(contacts=400, ab_test={**AB, "on_no_winner": on_no_winner}))
    send_test(campaign, opened={"A": 10, "B": 11})
    ab.ab_decide_due()
    campaign.refresh_from_db()
    assert campaign.ab_result["significant"] is False
    assert campaign.ab_result["winner"] == ("A" if on_no_winner == "first" else None)
    rest = Message.objects.filter(campaign=campaign, sent_at__isnull=True)
    assert set(rest.values_list("variant__name", flat=True)) == expected


def test_a_marketer_picks_the_winner_before_the_decision():
    campaign = launch_and_prepare(ab_campaign())
    variant = campaign.variants.get(name="B")
    ab.campaign_ab_decide(campaign=campaign, variant=variant)
    campaign.refresh_from_db()
    assert (campaign.ab_result["winner"], campaign.ab_result["decided_by"]) == ("B", "manual")
    assert not Message.objects.filter(campaign=campaign, status=M.HELD).exists()
    with pytest.raises(ConflictError):
        ab.campaign_ab_decide(campaign=campaign, variant=variant)


def test_a_paused_campaign_decides_on_resume():
    campaign = launch_and_prepare(ab_campaign(contacts=1000))
    send_test(campaign, opened={"A": 20, "B": 70})
    services.campaign_pause(campaign=campaign)
    assert ab.ab_decide_due() == 0
    assert Message.objects.filter(campaign=campaign, status=M.HELD).exists()
    services.campaign_resume(campaign=campaign)
    assert ab.ab_decide_due() == 1


def test_machine_opens_do_not_count():
    """Apple's privacy proxy opens every B message: tracking stores them as machine opens, which move
    no status, so A (fewer, human opens) still wins."""
    from tracking.records import EventRecord
    from tracking.services import event_ingest_batch

    campaign = launch_and_prepare(ab_campaign(contacts=1000))
    send_test(campaign, opened={"A": 30})
    now = timezone.now()
    event_ingest_batch(
        records=[
            EventRecord(
                type="opened", occurred_at=now, dedupe_key=f"open:{pk}", message_id=pk, user_agent="Mozilla/5.0"
            )
            for pk in Message.objects.filter(campaign=campaign, variant__name="B").values_list("pk", flat=True)
        ]
    )
    assert not Message.objects.filter(campaign=campaign, status=M.OPENED, variant__name="B").exists()
    ab.ab_decide_due()
    campaign.refresh_from_db()
    assert (campaign.ab_result["winner"], campaign.ab_result["significant"]) == ("A", True)


def test_api_pick_and_stats(member_client):
    client, _, organization = member_client(Role.MANAGER)
    campaign = ab_campaign(organization=organization)
    not_yet = client.post(f"/api/v1/campaigns/{campaign.pk}/ab-winner", {"variant": "A"}, format="json")
    assert not_yet.status_code == 409  # a draft has no test running
    campaign = launch_and_prepare(campaign)
    unknown = client.post(f"/api/v1/campaigns/{campaign.pk}/ab-winner", {"variant": "Z"}, format="json")
    assert unknown.status_code == 400
    assert "variant" in unknown.json()
    picked = client.post(f"/api/v1/campaigns/{campaign.pk}/ab-winner", {"variant": "B"}, format="json")
    assert picked.status_code == 200, picked.content
    stats = client.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()["ab_test"]
    assert (stats["status"], stats["winner"], stats["decided_by"]) == ("decided", "B", "manual")
    assert {"p_value", "z", "significant", "test_size", "per_variant", "metric"} <= set(stats)
    other_client, _, _ = member_client(Role.MANAGER)
    assert (
        other_client.post(f"/api/v1/campaigns/{campaign.pk}/ab-winner", {"variant": "B"}, format="json").status_code
        == 404
    )


@pytest.mark.parametrize(
    ("ab_test", "field"),
    [({"whatever": True}, "ab_test"), ({"test_fraction": 1.5, "wait_hours": 1}, "ab_test.test_fraction")],
)
def test_bad_ab_test_is_400_naming_the_field(member_client, ab_test, field):
    client, _, organization = member_client(Role.MANAGER)
    campaign = ab_campaign(organization=organization, contacts=1)
    response = client.patch(f"/api/v1/campaigns/{campaign.pk}/", {"ab_test": ab_test}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    campaign.refresh_from_db()
    assert campaign.ab_test == AB
