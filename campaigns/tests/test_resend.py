"""Resend: a failed or unknown message goes out again, whatever state its campaign has reached,
and the campaign's state and stats say so. A cancelled campaign refuses."""

import pytest
from django.core import mail

from accounts.models import Role
from campaigns import sending, services
from campaigns.models import Campaign, Message, MessageStatus
from campaigns.tests.test_sending import queue, running_campaign
from config.errors import ConflictError
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db
M = MessageStatus


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return sending.dispatch_due()

    return run


def completed_with_a_failure(dispatch, org=None, status=M.FAILED):
    """A campaign that sent one message, failed another, and completed."""
    campaign = running_campaign(org)
    sent, failed = queue(campaign, [ContactFactory(organization=campaign.organization) for _ in range(2)])
    Message.objects.filter(pk=failed.pk).update(status=status, attempts=4, last_error="550 mailbox full")
    dispatch()
    dispatch()
    campaign.refresh_from_db()
    assert campaign.status == "completed"
    assert [email.to for email in mail.outbox] == [[sent.to_address]]
    mail.outbox.clear()
    return campaign, failed


@pytest.mark.parametrize("status", [M.FAILED, M.UNKNOWN])
def test_a_resend_on_a_completed_campaign_reopens_it_until_the_message_is_sent(dispatch, status):
    campaign, failed = completed_with_a_failure(dispatch, status=status)

    services.message_resend(message=failed)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.completed_at) == ("running", None)
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (M.QUEUED, 0)

    dispatch()  # sends it
    dispatch()  # nothing pending: complete again
    assert [email.to for email in mail.outbox] == [[failed.to_address]]
    failed.refresh_from_db()
    assert (failed.status, failed.last_error) == (M.SENT, "")
    campaign.refresh_from_db()
    assert campaign.status == "completed"
    assert campaign.completed_at is not None
    assert campaign.status_reason == ""


def test_resend_api_on_a_completed_campaign_goes_out_and_the_stats_say_so(member_client, dispatch):
    client, _, org = member_client(Role.MANAGER)
    campaign, failed = completed_with_a_failure(dispatch, org)
    before = client.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()["kpis"]
    assert (before["sent"], before["failed"]) == (1, 1)

    response = client.post(f"/api/v1/messages/{failed.pk}/resend")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued"
    assert client.get(f"/api/v1/campaigns/{campaign.pk}").json()["status"] == "running"
    assert client.post(f"/api/v1/messages/{failed.pk}/resend/").status_code == 409  # queued already

    dispatch()
    dispatch()
    assert [email.to for email in mail.outbox] == [[failed.to_address]]
    assert client.get(f"/api/v1/campaigns/{campaign.pk}/").json()["status"] == "completed"
    after = client.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()["kpis"]
    assert (after["sent"], after["failed"]) == (2, 0)


def test_a_resend_on_a_cancelled_campaign_is_a_409_with_the_reason(member_client):
    client, _, org = member_client(Role.MANAGER)
    campaign = running_campaign(org)
    [failed] = queue(campaign, [ContactFactory(organization=org)], status=M.FAILED)
    services.campaign_cancel(campaign=campaign)

    response = client.post(f"/api/v1/messages/{failed.pk}/resend")
    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]
    failed.refresh_from_db()
    assert failed.status == M.FAILED
    assert Campaign.objects.get(pk=campaign.pk).status == "cancelled"


def test_a_resend_on_a_paused_campaign_waits_for_resume(dispatch):
    campaign = running_campaign()
    [failed] = queue(campaign, [ContactFactory(organization=campaign.organization)], status=M.FAILED)
    services.campaign_pause(campaign=campaign)

    services.message_resend(message=failed)
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    dispatch()
    assert not mail.outbox
    assert Message.objects.get(pk=failed.pk).status == M.QUEUED

    services.campaign_resume(campaign=campaign)
    dispatch()
    assert [email.to for email in mail.outbox] == [[failed.to_address]]


def test_resume_and_launch_cannot_reopen_a_completed_campaign(dispatch):
    campaign, _ = completed_with_a_failure(dispatch)
    with pytest.raises(ConflictError):
        services.campaign_resume(campaign=campaign)
    with pytest.raises(ConflictError):
        services.campaign_launch(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == "completed"
