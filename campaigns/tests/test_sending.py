"""Dispatch and send: claims, leases, rendering with tracking, retries, pause, completion."""

from collections import Counter
from datetime import timedelta
from email.utils import parseaddr

import pytest
from django.core import mail
from django.db.models import Count
from django.utils import timezone

from campaigns import sending
from campaigns.models import Campaign, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, SendingDomainFactory, sends_from
from contacts.tests.factories import ContactFactory
from templates_app.services import template_snapshot
from tracking import tokens

pytestmark = pytest.mark.django_db
M = MessageStatus


def running_campaign(org=None, **template_fields):
    campaign = CampaignFactory(status="running", **({"organization": org} if org else {}))
    if template_fields:
        campaign.template = EmailTemplateFactory(organization=campaign.organization, **template_fields)
    campaign.template_version = template_snapshot(template=campaign.template)
    campaign.planned_at = timezone.now()
    campaign.save()
    return campaign


def queue(campaign, contacts, *, at=None, status=M.QUEUED, domain="mail.example.com"):
    return [
        Message.objects.create(
            organization=campaign.organization,
            campaign=campaign,
            contact=contact,
            to_address=contact.email,
            status=status,
            scheduled_at=at or timezone.now() - timedelta(seconds=1),
            sending_domain=domain,
        )
        for contact in contacts
    ]


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return sending.dispatch_due(**kwargs)

    return run


def test_dispatch_sends_personalized_tracked_mail_once(dispatch):
    campaign = running_campaign(
        html_body='<html><body><p>Hi {{ contact.first_name }}</p><a href="https://shop.example.com/sale">Sale</a>'
        '<a href="mailto:help@example.com">Help</a><a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
        subject="Deals for {{ contact.first_name }}",
    )
    SendingDomainFactory(organization=campaign.organization, domain="mail.example.com")
    Campaign.objects.filter(pk=campaign.pk).update(sending_domains=["mail.example.com"])
    ana = ContactFactory(organization=campaign.organization, email="ana@example.com", first_name="Ana")
    [message] = queue(campaign, [ana])

    result = dispatch()
    assert result.claimed == 1
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ana@example.com"]
    assert email.subject == "Deals for Ana"
    html = email.alternatives[0][0]
    assert "Hi Ana" in html
    assert "https://shop.example.com/sale" not in html  # rewritten to a click-tracking link
    assert "/t/c/" in html
    assert "mailto:help@example.com" in html
    assert "/t/o/" in html  # the open pixel
    unsubscribe = tokens.unsubscribe_url(message.pk)
    assert email.extra_headers["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The campaign's sending domain replaces the sender's (DEFAULT_FROM_EMAIL's noreply@localhost here).
    assert parseaddr(email.from_email)[1] == "noreply@mail.example.com"

    message.refresh_from_db()
    assert message.status == M.SENT
    assert message.attempts == 1
    assert message.provider_message_id == email.extra_headers["Message-ID"].strip("<>")
    ana.refresh_from_db()
    assert ana.last_contacted_at is not None

    # Nothing is due any more; the campaign is complete.
    assert dispatch().claimed == 0
    assert len(mail.outbox) == 1
    assert Campaign.objects.get(pk=campaign.pk).status == "completed"


def test_only_due_messages_of_running_campaigns_are_claimed(dispatch):
    campaign = running_campaign()
    paused = running_campaign()
    paused.status = "paused"
    paused.save()
    now_contacts = [ContactFactory(organization=campaign.organization) for _ in range(2)]
    later = ContactFactory(organization=campaign.organization)
    queue(campaign, now_contacts)
    queue(campaign, [later], at=timezone.now() + timedelta(hours=1))
    queue(paused, [ContactFactory(organization=paused.organization)])
    assert dispatch().claimed == 2
    assert sorted(e.to[0] for e in mail.outbox) == sorted(c.email for c in now_contacts)
    assert Message.objects.filter(campaign=paused, status=M.QUEUED).count() == 1


def test_a_late_or_repeated_send_task_sends_nothing():
    campaign = running_campaign()
    [message] = queue(campaign, [ContactFactory(organization=campaign.organization)], status=M.CLAIMED)
    lease = timezone.now() + timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(lease_until=lease)
    stale = lease - timedelta(minutes=1)
    assert sending.send_batch(message_ids=[message.pk], lease=stale).skipped == 1
    assert not mail.outbox
    assert sending.send_batch(message_ids=[message.pk], lease=lease).sent == 1
    assert sending.send_batch(message_ids=[message.pk], lease=lease).skipped == 1
    assert len(mail.outbox) == 1


def test_pause_releases_claimed_messages_untouched():
    campaign = running_campaign()
    [message] = queue(campaign, [ContactFactory(organization=campaign.organization)], status=M.CLAIMED)
    lease = timezone.now() + timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(lease_until=lease)
    Campaign.objects.filter(pk=campaign.pk).update(status="paused")
    assert sending.send_batch(message_ids=[message.pk], lease=lease).released == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == (M.QUEUED, 0)
    assert not mail.outbox


def claimed_chunk(groups: int):
    """A running campaign with `groups` groups of messages claimed under one lease."""
    campaign = running_campaign()
    contacts = [ContactFactory(organization=campaign.organization) for _ in range(sending.GROUP * groups)]
    messages = queue(campaign, contacts, status=M.CLAIMED)
    lease = timezone.now() + timedelta(minutes=5)
    Message.objects.filter(campaign=campaign).update(lease_until=lease)
    return campaign, messages, lease


def test_a_pause_during_a_chunk_stops_it_at_the_next_group(monkeypatch):
    campaign, messages, lease = claimed_chunk(3)
    mark = sending._mark_sending

    def pause_after_the_first_group(*args, **kwargs):
        marked = mark(*args, **kwargs)
        Campaign.objects.filter(pk=campaign.pk).update(status="paused")  # an operator, meanwhile
        return marked

    monkeypatch.setattr(sending, "_mark_sending", pause_after_the_first_group)
    result = sending.send_batch(message_ids=[m.pk for m in messages], lease=lease)

    assert (result.sent, result.released) == (sending.GROUP, sending.GROUP * 2)
    assert len(mail.outbox) == sending.GROUP
    statuses = Counter(Message.objects.filter(campaign=campaign).values_list("status", "attempts"))
    assert statuses == {(M.SENT, 1): sending.GROUP, (M.QUEUED, 0): sending.GROUP * 2}
    assert not Message.objects.filter(campaign=campaign, status=M.QUEUED, lease_until__isnull=False).exists()


def test_a_failed_marking_still_records_what_went_out(monkeypatch):
    from django.db import OperationalError

    campaign, messages, lease = claimed_chunk(2)
    mark, calls = sending._mark_sending, []

    def deadlocked_the_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("deadlock detected")
        return mark(*args, **kwargs)

    monkeypatch.setattr(sending, "_mark_sending", deadlocked_the_second_time)
    with pytest.raises(OperationalError):
        sending.send_batch(message_ids=[m.pk for m in messages], lease=lease)

    statuses = Counter(Message.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {M.SENT: sending.GROUP, M.CLAIMED: sending.GROUP}  # the rest is reclaimed by dispatch
    assert len(mail.outbox) == sending.GROUP


def test_an_undefined_variable_fails_that_message_only(dispatch):
    campaign = running_campaign(subject="Hi {{ contact.attributes.nickname }}")
    good = ContactFactory(organization=campaign.organization, attributes={"nickname": "Ace"})
    bad = ContactFactory(organization=campaign.organization, attributes={})
    queue(campaign, [good, bad])
    dispatch()
    assert [e.subject for e in mail.outbox] == ["Hi Ace"]
    failed = Message.objects.get(contact=bad)
    assert failed.status == M.FAILED
    assert "nickname" in failed.last_error


def test_expired_leases_are_settled(dispatch):
    campaign = running_campaign()
    claimed, in_flight = queue(campaign, [ContactFactory(organization=campaign.organization) for _ in range(2)])
    past = timezone.now() - timedelta(seconds=1)
    Message.objects.filter(pk=claimed.pk).update(status=M.CLAIMED, lease_until=past)
    Message.objects.filter(pk=in_flight.pk).update(status=M.SENDING, lease_until=past)
    result = dispatch()
    assert (result.reclaimed, result.unknown) == (1, 1)
    in_flight.refresh_from_db()
    assert in_flight.status == M.UNKNOWN
    # The reclaimed one was claimed again and sent; the unknown one was not resent.
    assert [e.to[0] for e in mail.outbox] == [claimed.to_address]


@pytest.mark.parametrize(
    ("backend", "pipelining"),
    [
        ("django.core.mail.backends.smtp.EmailBackend", False),
        ("campaigns.mail.SMTPEmailBackend", False),
        ("campaigns.mail.SMTPEmailBackend", True),
    ],
)
def test_temporary_failures_retry_after_1_2_4_minutes_then_fail(settings, smtp_sink, backend, pipelining):
    settings.EMAIL_BACKEND = backend
    smtp_sink.pipelining = pipelining
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_sink.port
    campaign = running_campaign()
    refused = ContactFactory(organization=campaign.organization, email="busy@example.com")
    hard = ContactFactory(organization=campaign.organization, email="gone@example.com")
    fine = ContactFactory(organization=campaign.organization, email="fine@example.com")
    smtp_sink.refuse = {"busy@example.com": "451 4.3.0 Try again later", "gone@example.com": "550 5.1.1 No such user"}
    messages = queue(campaign, [refused, hard, fine])
    ids = [m.pk for m in messages]

    for attempt, delay in enumerate([1, 2, 4], start=1):
        lease = timezone.now() + timedelta(minutes=5)
        Message.objects.filter(pk__in=ids, status=M.QUEUED).update(status=M.CLAIMED, lease_until=lease)
        before = timezone.now()
        sending.send_batch(message_ids=ids, lease=lease)
        busy = Message.objects.get(contact=refused)
        assert (busy.status, busy.attempts) == (M.QUEUED, attempt)
        assert before + timedelta(minutes=delay) <= busy.scheduled_at <= timezone.now() + timedelta(minutes=delay)
        assert "451" in busy.last_error
    lease = timezone.now() + timedelta(minutes=5)
    Message.objects.filter(pk__in=ids, status=M.QUEUED).update(status=M.CLAIMED, lease_until=lease)
    sending.send_batch(message_ids=ids, lease=lease)
    busy = Message.objects.get(contact=refused)
    assert (busy.status, busy.attempts) == (M.FAILED, 4)
    gone = Message.objects.get(contact=hard)
    assert (gone.status, gone.attempts) == (M.FAILED, 1)
    assert Message.objects.get(contact=fine).status == M.SENT
    assert smtp_sink.addresses() == ["fine@example.com"]


def test_resend_only_failed_or_unknown(member_client):
    from accounts.models import Role

    client, _, org = member_client(Role.MANAGER)
    campaign = running_campaign(org)
    failed, sent = queue(campaign, [ContactFactory(organization=org) for _ in range(2)])
    Message.objects.filter(pk=failed.pk).update(status=M.FAILED, attempts=4)
    Message.objects.filter(pk=sent.pk).update(status=M.SENT)
    response = client.post(f"/api/v1/messages/{failed.pk}/resend")
    assert response.status_code == 200, response.content
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (M.QUEUED, 0)
    assert client.post(f"/api/v1/messages/{sent.pk}/resend").status_code == 409
    other = running_campaign()
    [foreign] = queue(other, [ContactFactory(organization=other.organization)], status=M.FAILED)
    assert client.post(f"/api/v1/messages/{foreign.pk}/resend").status_code == 404


def test_variants_split_the_audience_by_weight_and_send_their_own_template(django_capture_on_commit_callbacks):
    from campaigns import services
    from campaigns.models import CampaignVariant
    from contacts.tests.factories import TagFactory

    campaign = CampaignFactory(template=None, audience={"tags": ["vip"]})
    org = campaign.organization
    sends_from(org, "news@mail.example.com")
    vip = TagFactory(organization=org, name="vip")
    for _ in range(40):
        ContactFactory(organization=org, tags=[vip])
    a = EmailTemplateFactory(organization=org, subject="Subject A")
    b = EmailTemplateFactory(organization=org, subject="Subject B")
    CampaignVariant.objects.create(campaign=campaign, name="A", template=a, weight=3)
    CampaignVariant.objects.create(campaign=campaign, name="B", template=b, weight=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign=campaign)
    by_variant = dict(Message.objects.filter(campaign=campaign).values_list("variant__name").annotate(n=Count("id")))
    assert by_variant == {"A": 30, "B": 10}
    with django_capture_on_commit_callbacks(execute=True):
        sending.dispatch_due()
    subjects = Counter(email.subject for email in mail.outbox)
    assert subjects == {"Subject A": 30, "Subject B": 10}


# A lone surrogate: Jinja turns the escape in the template source into the character itself,
# which no email can carry. It fails the same way every time.
SURROGATE = "{{ '\\ud800' }}"


def test_a_message_whose_text_cannot_be_encoded_fails_at_once(dispatch):
    campaign = running_campaign(
        html_body=f'<html><body><p>Hi {SURROGATE}</p><a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></body></html>'
    )
    [message] = queue(campaign, [ContactFactory(organization=campaign.organization)])
    result = dispatch()
    assert result.claimed == 1
    message.refresh_from_db()
    assert message.status == M.FAILED  # not queued for a retry in a minute
    assert message.attempts == 1
    assert "cannot be sent" in message.last_error
    assert not mail.outbox


def test_a_link_that_cannot_be_signed_fails_its_message_not_the_chunk(dispatch):
    # Only the first contact's link gets the bad character; signing its click URL raises.
    campaign = running_campaign(
        html_body="<html><body><a href=\"https://shop.example.com/{% if contact.first_name == 'Bad' %}"
        + SURROGATE
        + '{% endif %}">Shop</a><a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'
    )
    bad = ContactFactory(organization=campaign.organization, first_name="Bad")
    good = ContactFactory(organization=campaign.organization, first_name="Ana")
    queue(campaign, [bad, good])
    dispatch()
    failed = Message.objects.get(contact=bad)
    assert (failed.status, failed.attempts) == (M.FAILED, 0)
    assert "cannot be sent" in failed.last_error
    assert Message.objects.get(contact=good).status == M.SENT
    assert [email.to for email in mail.outbox] == [[good.email]]


def test_a_line_break_in_a_header_fails_the_message_at_once(dispatch):
    # A sender name that slipped past validation would add headers of its own: refused before any
    # backend sees it, and failed for good (it fails the same way on every attempt).
    from templates_app.models import TemplateVersion

    campaign = running_campaign()
    TemplateVersion.objects.filter(pk=campaign.template_version_id).update(
        from_name="Acme\r\nBcc: victim@example.com", from_email="news@mail.example.com"
    )
    [message] = queue(campaign, [ContactFactory(organization=campaign.organization)])
    assert dispatch().claimed == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == (M.FAILED, 0)
    assert "newlines" in message.last_error
    assert not mail.outbox


@pytest.fixture
def smtp_backend(settings, smtp_sink):
    """Our SMTP backend (pipelined across a group's messages) into a local SMTP server."""
    settings.EMAIL_BACKEND = "campaigns.mail.SMTPEmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_sink.port
    return smtp_sink


def outcomes_of(messages):
    rows = Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("id")
    return [(row.status, row.attempts) for row in rows]


def test_a_pipelined_group_with_failing_messages_records_the_others_as_sent(smtp_backend):
    from campaigns.tests.test_mail import refuse_data_of

    _, messages, lease = claimed_chunk(1)
    refused, rejected = messages[2], messages[6]
    smtp_backend.refuse = {refused.to_address: "550 5.1.1 No such user"}
    refuse_data_of(smtp_backend, str(rejected.pk), "451 4.3.0 Try later")
    result = sending.send_batch(message_ids=[m.pk for m in messages], lease=lease)

    assert (result.sent, result.retried, result.failed) == (8, 1, 1)
    others = [m for m in messages if m not in (refused, rejected)]
    assert outcomes_of(others) == [(M.SENT, 1)] * 8
    assert not Message.objects.filter(pk__in=[m.pk for m in others], provider_message_id="").exists()
    assert outcomes_of([refused, rejected]) == [(M.FAILED, 1), (M.QUEUED, 1)]
    assert "451" in Message.objects.get(pk=rejected.pk).last_error
    assert smtp_backend.addresses() == [m.to_address for m in others]
    assert smtp_backend.sessions == 1  # a refusal does not cost the connection


def test_a_server_closing_mid_group_retries_what_was_not_sent_and_the_next_group_reconnects(smtp_backend):
    from campaigns.tests.test_mail import close_at

    _, messages, lease = claimed_chunk(2)
    close_at(smtp_backend, "MAIL", 4, reply="421 4.7.0 Too many messages, closing")
    before = timezone.now()
    result = sending.send_batch(message_ids=[m.pk for m in messages], lease=lease)

    assert (result.sent, result.retried, result.failed) == (13, 7, 0)
    sent = messages[:3] + messages[sending.GROUP :]
    assert outcomes_of(sent) == [(M.SENT, 1)] * 13
    unsent = Message.objects.filter(pk__in=[m.pk for m in messages[3 : sending.GROUP]]).order_by("id")
    assert [(m.status, m.attempts) for m in unsent] == [(M.QUEUED, 1)] * 7  # retried, never reported sent
    assert all(m.scheduled_at >= before + timedelta(minutes=1) for m in unsent)
    assert "421" in unsent[0].last_error
    assert all("before this message was sent" in m.last_error for m in unsent[1:])
    assert smtp_backend.addresses() == [m.to_address for m in sent]
    assert smtp_backend.sessions == 2  # the second group went out on a new connection
