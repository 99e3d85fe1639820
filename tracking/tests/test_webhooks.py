"""Provider webhooks through Anymail's views: Postmark (basic auth), Mailgun (signed), Amazon SES
(SNS envelope), SparkPost (batched). Payloads are the providers' own shapes (see payloads.py)."""

import json

import pytest

from campaigns.models import MessageStatus
from campaigns.tests.factories import CampaignFactory
from contacts.models import ContactStatus, Suppression, SuppressionReason
from tracking.models import EventType, MessageEvent
from tracking.tests import payloads
from tracking.tests.conftest import basic_auth, provider
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db
M = MessageStatus


def post(client, path, body, *, auth=None, **headers):
    if auth is not False:
        headers["HTTP_AUTHORIZATION"] = auth or basic_auth()
    with provider(path):
        return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def postmark(client, body, **kwargs):
    return post(client, "/anymail/postmark/tracking/", body, **kwargs)


def mailgun(client, body, **kwargs):
    return post(client, "/anymail/mailgun/tracking/", body, **kwargs)


def ses(client, ses_event, **kwargs):
    body, headers = payloads.sns_notification(ses_event)
    return post(client, "/anymail/amazon_ses/tracking/", body, **headers, **kwargs)


def status_of(message) -> int:
    message.refresh_from_db()
    return message.status


def suppressed(message) -> set:
    return set(
        Suppression.objects.filter(organization_id=message.organization_id, value=message.to_address).values_list(
            "reason", flat=True
        )
    )


def contact_status(message) -> str:
    message.contact.refresh_from_db()
    return message.contact.status


# --- Postmark ---------------------------------------------------------------------------------------


def test_postmark_delivery_open_and_click_move_the_status_forward_only(client, flush):
    message = SentMessageFactory()
    pid, email = message.provider_message_id, message.to_address

    assert postmark(client, payloads.postmark_delivery(pid, email)).status_code == 200
    flush()
    assert status_of(message) == M.DELIVERED
    postmark(client, payloads.postmark_open(pid, email))
    flush()
    assert status_of(message) == M.OPENED
    postmark(client, payloads.postmark_click(pid, email, "https://shop.example.com/sale"))
    flush()
    assert status_of(message) == M.CLICKED
    postmark(client, payloads.postmark_delivery(pid, email))  # late, and changes nothing
    postmark(client, payloads.postmark_open(pid, email))
    flush()
    assert status_of(message) == M.CLICKED

    events = list(MessageEvent.objects.filter(message=message).order_by("id"))
    assert [e.type for e in events] == ["delivered", "opened", "clicked", "delivered", "opened"]
    assert [e.is_unique for e in events] == [False, True, True, False, False]
    assert all(e.esp == "postmark" and e.payload["MessageID"] == pid for e in events)
    assert events[2].url == "https://shop.example.com/sale"
    assert events[1].organization_id == message.organization_id
    assert events[1].contact_id == message.contact_id


def test_postmark_hard_bounce_suppresses_the_address_and_marks_the_contact(client, flush):
    message = SentMessageFactory()
    response = postmark(client, payloads.postmark_bounce(message.provider_message_id, message.to_address))
    flush()

    assert response.status_code == 200
    assert status_of(message) == M.BOUNCED
    assert suppressed(message) == {SuppressionReason.HARD_BOUNCE}
    assert contact_status(message) == ContactStatus.BOUNCED
    event = MessageEvent.objects.get(message=message)
    assert event.type == EventType.BOUNCED
    assert "5.1.1" in event.detail


def test_postmark_complaint_suppresses_and_marks_the_contact_complained(client, flush):
    message = SentMessageFactory(status=M.OPENED)
    postmark(client, payloads.postmark_complaint(message.provider_message_id, message.to_address))
    flush()

    assert status_of(message) == M.COMPLAINED
    assert suppressed(message) == {SuppressionReason.COMPLAINT}
    assert contact_status(message) == ContactStatus.COMPLAINED


def test_soft_bounces_are_counted_and_suppress_at_the_limit(client, flush):
    first = SentMessageFactory()
    contact = first.contact
    messages = [first] + [
        SentMessageFactory(campaign=CampaignFactory(organization=first.organization), contact=contact) for _ in range(2)
    ]
    for number, message in enumerate(messages[:2]):
        postmark(
            client,
            payloads.postmark_bounce(message.provider_message_id, contact.email, kind="SoftBounce", bounce_id=number),
        )
    flush()
    assert not suppressed(first)
    assert contact_status(first) == ContactStatus.SUBSCRIBED
    assert {status_of(m) for m in messages} == {M.SENT}  # a soft bounce is not the end of the message

    postmark(
        client, payloads.postmark_bounce(messages[2].provider_message_id, contact.email, kind="SoftBounce", bounce_id=9)
    )
    flush()
    assert suppressed(first) == {SuppressionReason.SOFT_BOUNCE}
    assert contact_status(first) == ContactStatus.BOUNCED
    assert MessageEvent.objects.filter(type=EventType.SOFT_BOUNCED).count() == 3


def test_the_same_postmark_event_posted_twice_is_stored_once(client, flush):
    message = SentMessageFactory()
    bounce = payloads.postmark_bounce(message.provider_message_id, message.to_address)
    opened = payloads.postmark_open(message.provider_message_id, message.to_address)  # no event id: payload hash

    for body in (bounce, bounce, opened, opened):
        assert postmark(client, body).status_code == 200
    flush()

    assert MessageEvent.objects.filter(message=message, type=EventType.BOUNCED).count() == 1
    assert MessageEvent.objects.filter(message=message, type=EventType.OPENED).count() == 1


@pytest.mark.parametrize("auth", [basic_auth(password="wrong"), basic_auth(user="someone"), False])
def test_a_wrong_postmark_password_is_refused_and_stores_nothing(client, flush, auth):
    message = SentMessageFactory()
    response = postmark(client, payloads.postmark_bounce(message.provider_message_id, message.to_address), auth=auth)
    flush()

    assert response.status_code in (401, 403)
    assert not MessageEvent.objects.exists()
    assert status_of(message) == M.SENT
    assert not suppressed(message)


def test_events_for_unknown_messages_are_kept(client, flush):
    response = postmark(client, payloads.postmark_bounce("00000000-dead-beef-0000-000000000000", "who@example.com"))
    flush()

    assert response.status_code == 200
    event = MessageEvent.objects.get()
    assert event.message_id is None
    assert event.organization_id is None
    assert event.provider_message_id == "00000000-dead-beef-0000-000000000000"
    assert event.recipient == "who@example.com"
    assert not Suppression.objects.exists()


# --- Mailgun ----------------------------------------------------------------------------------------


def test_mailgun_signed_events_change_statuses_and_suppressions(client, flush):
    # Anymail's Mailgun backend stores ids with <>; webhooks carry them bare.
    delivered = SentMessageFactory(provider_message_id="<20260801.1@mg.example.com>")
    bounced = SentMessageFactory(provider_message_id="<20260801.2@mg.example.com>")
    complained = SentMessageFactory(provider_message_id="<20260801.3@mg.example.com>")
    deferred = SentMessageFactory(provider_message_id="<20260801.4@mg.example.com>")

    def bare(message):
        return message.provider_message_id.strip("<>"), message.to_address

    bodies = [
        payloads.mailgun_delivered(*bare(delivered)),
        payloads.mailgun_opened(*bare(delivered)),
        payloads.mailgun_clicked(*bare(delivered), "https://shop.example.com/sale"),
        payloads.mailgun_failed(*bare(bounced)),
        payloads.mailgun_complained(*bare(complained)),
        payloads.mailgun_failed(*bare(deferred), severity="temporary"),
    ]
    for data in bodies:
        assert mailgun(client, payloads.mailgun_signed(data)).status_code == 200
    flush()

    assert status_of(delivered) == M.CLICKED
    assert status_of(bounced) == M.BOUNCED
    assert suppressed(bounced) == {SuppressionReason.HARD_BOUNCE}
    assert status_of(complained) == M.COMPLAINED
    assert contact_status(complained) == ContactStatus.COMPLAINED
    assert status_of(deferred) == M.SENT
    assert MessageEvent.objects.get(message=deferred).type == EventType.DEFERRED
    assert MessageEvent.objects.count() == len(bodies)


def test_a_mailgun_event_posted_twice_or_re_signed_is_stored_once(client, flush):
    message = SentMessageFactory(provider_message_id="<20260801.9@mg.example.com>")
    data = payloads.mailgun_failed(message.provider_message_id.strip("<>"), message.to_address)
    body = payloads.mailgun_signed(data)

    assert mailgun(client, body).status_code == 200
    assert mailgun(client, body).status_code == 200
    assert mailgun(client, payloads.mailgun_signed(data)).status_code == 200  # a retry, signed again
    flush()

    assert MessageEvent.objects.count() == 1


def test_a_wrong_mailgun_signature_is_refused_and_stores_nothing(client, flush):
    message = SentMessageFactory(provider_message_id="<20260801.5@mg.example.com>")
    data = payloads.mailgun_failed(message.provider_message_id.strip("<>"), message.to_address)

    forged = payloads.mailgun_signed(data, key="key-not-the-right-one")
    tampered = payloads.mailgun_signed(data)
    tampered["signature"]["timestamp"] = str(int(tampered["signature"]["timestamp"]) + 1)
    responses = [mailgun(client, forged), mailgun(client, tampered)]
    flush()

    assert {r.status_code for r in responses} == {403}
    assert not MessageEvent.objects.exists()
    assert status_of(message) == M.SENT
    assert not suppressed(message)


# --- Amazon SES -------------------------------------------------------------------------------------


def test_ses_notifications_change_statuses_and_suppressions(client, flush):
    ids = [f"0102018f{n:08x}-6ad4c2f1-5ac1-4c62-9b2f-000000000{n:03d}-000000" for n in range(4)]
    clicked, bounced, complained, soft = (SentMessageFactory(provider_message_id=pid) for pid in ids)
    for event in (
        payloads.ses_event("Delivery", ids[0], clicked.to_address),
        payloads.ses_event("Open", ids[0], clicked.to_address),
        payloads.ses_event("Click", ids[0], clicked.to_address),
        payloads.ses_event("Bounce", ids[1], bounced.to_address),
        payloads.ses_event("Complaint", ids[2], complained.to_address),
        payloads.ses_event("SoftBounce", ids[3], soft.to_address),
    ):
        assert ses(client, event).status_code == 200
    flush()

    assert status_of(clicked) == M.CLICKED
    assert MessageEvent.objects.get(message=clicked, type=EventType.CLICKED).url == "https://shop.example.com/sale"
    assert status_of(bounced) == M.BOUNCED
    assert suppressed(bounced) == {SuppressionReason.HARD_BOUNCE}
    assert contact_status(bounced) == ContactStatus.BOUNCED
    assert status_of(complained) == M.COMPLAINED
    assert suppressed(complained) == {SuppressionReason.COMPLAINT}
    assert status_of(soft) == M.SENT
    assert MessageEvent.objects.get(message=soft).type == EventType.SOFT_BOUNCED
    assert not suppressed(soft)


def test_the_same_sns_notification_twice_is_stored_once(client, flush):
    message = SentMessageFactory(provider_message_id="0102018f-dup-000000")
    body, headers = payloads.sns_notification(
        payloads.ses_event("Bounce", message.provider_message_id, message.to_address)
    )
    for _ in range(2):
        assert post(client, "/anymail/amazon_ses/tracking/", body, **headers).status_code == 200
    flush()

    assert MessageEvent.objects.count() == 1


def test_ses_without_or_with_wrong_credentials_stores_nothing(client, flush):
    message = SentMessageFactory(provider_message_id="0102018f-auth-000000")
    event = payloads.ses_event("Complaint", message.provider_message_id, message.to_address)

    missing = ses(client, event, auth=False)
    wrong = ses(client, event, auth=basic_auth(password="nope"))
    flush()

    assert missing.status_code == 401  # SNS sends credentials only when challenged
    assert wrong.status_code == 403
    assert not MessageEvent.objects.exists()
    assert status_of(message) == M.SENT


# --- batched posts ------------------------------------------------------------------------------------


def test_a_batched_post_is_ingested_together_and_once(client, flush):
    messages = [SentMessageFactory(provider_message_id=f"batch-{n}") for n in range(30)]
    events = []
    for message in messages:
        events.append(payloads.sparkpost_event("delivery", message.provider_message_id, message.to_address))
        events.append(payloads.sparkpost_event("open", message.provider_message_id, message.to_address))
    events.append(
        payloads.sparkpost_event("bounce", messages[0].provider_message_id, messages[0].to_address, bounce_class="22")
    )

    for _ in range(2):
        assert post(client, "/anymail/sparkpost/tracking/", events).status_code == 200
    flush()

    assert MessageEvent.objects.count() == len(events)
    assert {status_of(m) for m in messages} == {M.OPENED}
    assert MessageEvent.objects.get(type=EventType.SOFT_BOUNCED).message_id == messages[0].pk
