"""The complaint-rate guard pauses an organization's sending above its threshold, visibly."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, UserFactory
from campaigns import guard
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.tasks import guard_task, guard_task_previous_name
from campaigns.tests.factories import CampaignFactory
from conftest import bearer_client
from tracking import services
from tracking.models import EventType
from tracking.records import EventRecord, hit_key

pytestmark = pytest.mark.django_db


def campaign_with_complaints(*, sent: int, complaints: int, organization=None, domain="mail.example.com"):
    """A running campaign that sent `sent` messages in the last hours, `complaints` of them complained about."""
    campaign = CampaignFactory(
        status=CampaignStatus.RUNNING, **({"organization": organization} if organization else {})
    )
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            organization_id=campaign.organization_id,
            campaign=campaign,
            contact_id=1_000_000 + n,  # contacts are not needed to count messages
            to_address=f"r{n}@example.com",
            status=MessageStatus.DELIVERED,
            sent_at=now - timedelta(hours=3),
            sending_domain=domain,
            provider_message_id=f"{campaign.pk}-{n}",
        )
        for n in range(sent)
    )
    ids = list(Message.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)[:complaints])
    services.event_ingest_batch(
        records=[
            EventRecord(type=EventType.COMPLAINED, occurred_at=now, dedupe_key=hit_key(), message_id=pk, esp="postmark")
            for pk in ids
        ]
    )
    return campaign


def test_a_complaint_rate_above_the_threshold_pauses_with_a_visible_reason(client):
    campaign = campaign_with_complaints(sent=400, complaints=2)  # 0.5 %
    scheduled = CampaignFactory(
        organization=campaign.organization, status=CampaignStatus.SCHEDULED, starts_at=timezone.now()
    )
    other = campaign_with_complaints(sent=400, complaints=0)

    paused = guard.guard_enforce()

    assert set(paused) == {campaign.organization_id}
    for paused_campaign in (campaign, scheduled):
        paused_campaign.refresh_from_db()
        assert paused_campaign.status == CampaignStatus.PAUSED
        assert "0.500% spam complaints on mail.example.com" in paused_campaign.status_reason
        assert "2 of 400 sent" in paused_campaign.status_reason
    other.refresh_from_db()
    assert other.status == CampaignStatus.RUNNING
    assert guard.organization_pause_reason(campaign.organization_id) == campaign.status_reason

    manager = MembershipFactory(organization=campaign.organization, role=Role.MANAGER)
    api = bearer_client(manager.user, campaign.organization).get(f"/api/v1/campaigns/{campaign.pk}/").json()
    assert (api["status"], api["status_reason"]) == ("paused", campaign.status_reason)
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    assert "0.500% spam complaints" in page.content.decode()


@pytest.mark.parametrize(
    ("sent", "complaints", "threshold", "paused"),
    [
        (400, 1, "0.300", False),  # 0.25 %
        (400, 2, "0.300", True),
        (100, 2, "0.300", False),  # 2 %, but too few messages to judge
        (400, 2, "0.000", False),  # the guard is off
        (400, 2, "1.000", False),  # a higher threshold chosen by the organization
    ],
)
def test_the_threshold_and_minimum_volume(sent, complaints, threshold, paused):
    campaign = campaign_with_complaints(sent=sent, complaints=complaints)
    settings = services.tracking_settings_get(organization_id=campaign.organization_id)
    settings.complaint_rate_threshold = threshold
    settings.save()

    guard_task.delay()

    campaign.refresh_from_db()
    assert (campaign.status == CampaignStatus.PAUSED) is paused


def test_the_rate_is_per_sending_domain():
    campaign = campaign_with_complaints(sent=300, complaints=0, domain="news.example.com")
    campaign_with_complaints(sent=300, complaints=2, organization=campaign.organization, domain="deals.example.com")

    reason = guard.compute_pause_reason(organization_id=campaign.organization_id)

    assert reason is not None
    assert "on deals.example.com" in reason
    assert "2 of 300 sent" in reason


def test_the_verdict_is_cached_briefly_for_dispatch():
    campaign = campaign_with_complaints(sent=400, complaints=0)
    assert guard.organization_pause_reason(campaign.organization_id) is None
    campaign_with_complaints(sent=0, complaints=0, organization=campaign.organization)
    Message.objects.filter(campaign=campaign).update(status=MessageStatus.SENT)
    services.event_ingest_batch(
        records=[
            EventRecord(type=EventType.COMPLAINED, occurred_at=timezone.now(), dedupe_key=hit_key(), message_id=pk)
            for pk in Message.objects.filter(campaign=campaign).values_list("id", flat=True)[:3]
        ]
    )
    assert guard.organization_pause_reason(campaign.organization_id) is None  # cached
    cache.clear()
    assert guard.organization_pause_reason(campaign.organization_id) is not None
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.RUNNING  # only the guard task pauses


def test_the_task_answers_to_its_earlier_name_and_beat_runs_the_new_one():
    from celery import current_app

    from config.celery import app

    campaign = campaign_with_complaints(sent=400, complaints=2)
    assert app.conf.beat_schedule["tracking.guard"]["task"] == guard_task.name == "campaigns.guard"
    assert guard_task_previous_name.name == "tracking.guard"

    current_app.tasks["tracking.guard"].delay()  # as a task queued before the move arrives

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
