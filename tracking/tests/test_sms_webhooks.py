"""Twilio and WhatsApp Cloud API webhooks: signatures, status mapping, STOP / START, replies."""

import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from django.utils import timezone
from twilio.request_validator import RequestValidator

from accounts.tests.factories import OrganizationFactory
from campaigns.models import CampaignStatus, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory
from contacts import hooks
from contacts.models import Contact, ContactStatus, Suppression
from contacts.tests.factories import ContactFactory
from tracking.channel_webhooks import twilio_signature_valid
from tracking.models import EventType, MessageEvent
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db
M = MessageStatus

BASE = "https://campaigns.example.com"
TWILIO_PATH = "/webhooks/sms/twilio/"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
WHATSAPP_PATH = "/webhooks/whatsapp/"
APP_SECRET = "meta-app-secret-for-tests"
PHONE = "+31612345678"


@pytest.fixture(autouse=True)
def _providers(settings):
    settings.PUBLIC_BASE_URL = BASE
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.WHATSAPP_APP_SECRET = APP_SECRET
    settings.WHATSAPP_VERIFY_TOKEN = "verify-me"


def phone_message(channel="sms", organization=None, phone=PHONE, sent_ago=timedelta(hours=1), **fields):
    organization = organization or OrganizationFactory()
    campaign = CampaignFactory(organization=organization, channel=channel, status=CampaignStatus.RUNNING)
    contact = ContactFactory(organization=organization, phone=phone)
    return SentMessageFactory(
        campaign=campaign,
        contact=contact,
        to_address=phone,
        sending_domain="",
        sent_at=timezone.now() - sent_ago,
        **fields,
    )


def post_twilio(client, params, *, signature=None):
    if signature is None:
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(BASE + TWILIO_PATH, params)
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    return client.post(TWILIO_PATH, data=urlencode(params), content_type="application/x-www-form-urlencoded", **headers)


def status_callback(sid, status, **extra):
    return {
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "From": "+15557122661",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": PHONE,
        **extra,
    }


def inbound_sms(body, *, sid="SMinbound0000000000000000000000001", sender=PHONE):
    return {
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": sender,
        "FromCountry": "NL",
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": "+15557122661",
    }


# --- Twilio's signature -----------------------------------------------------------------------------------


def test_twilios_documented_signature_example_verifies(settings):
    # Twilio's security documentation: this URL, these parameters and auth token 12345 sign as below.
    settings.TWILIO_AUTH_TOKEN = "12345"
    settings.PUBLIC_BASE_URL = "https://mycompany.com"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    request = RequestFactory().post(
        "/myapp.php?foo=1&bar=2",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE="RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    )
    assert twilio_signature_valid(request)

    tampered = RequestFactory().post(
        "/myapp.php?foo=1&bar=2",
        data=urlencode({**params, "Digits": "9999"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE="RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    )
    assert not twilio_signature_valid(tampered)


@pytest.mark.parametrize("signature", ["", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "forged"])
def test_unsigned_or_wrongly_signed_twilio_posts_are_refused_and_store_nothing(client, flush, signature):
    message = phone_message(provider_message_id="SM" + "1" * 32)

    response = post_twilio(client, status_callback("SM" + "1" * 32, "delivered"), signature=signature)
    stop = post_twilio(client, inbound_sms("STOP"), signature=signature)
    flush()

    assert (response.status_code, stop.status_code) == (403, 403)
    assert not MessageEvent.objects.exists()
    assert not Suppression.objects.exists()
    message.refresh_from_db()
    assert message.status == M.SENT
    assert Contact.objects.get(pk=message.contact_id).status == ContactStatus.SUBSCRIBED


def test_twilio_posts_are_refused_while_no_auth_token_is_set(client, settings):
    phone_message(provider_message_id="SM" + "2" * 32)
    params = status_callback("SM" + "2" * 32, "delivered")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(BASE + TWILIO_PATH, params)
    settings.TWILIO_AUTH_TOKEN = ""

    assert post_twilio(client, params, signature=signature).status_code == 403
    assert not MessageEvent.objects.exists()


# --- Twilio statuses --------------------------------------------------------------------------------------


def test_twilio_statuses_move_the_message_forward_only(client, flush):
    sid = "SM" + "3" * 32
    message = phone_message(provider_message_id=sid)

    for status in ("queued", "sent", "delivered", "undelivered"):
        assert post_twilio(client, status_callback(sid, status)).status_code == 204
    assert post_twilio(client, status_callback(sid, "delivered")).status_code == 204  # Twilio retried
    flush()

    message.refresh_from_db()
    assert message.status == M.DELIVERED  # a failure report after delivery changes nothing
    events = list(MessageEvent.objects.filter(message_id=message.pk).order_by("id").values_list("type", "esp"))
    assert events == [
        (EventType.QUEUED, "twilio"),
        (EventType.SENT, "twilio"),
        (EventType.DELIVERED, "twilio"),
        (EventType.FAILED, "twilio"),
    ]


def test_an_undelivered_sms_fails_with_twilios_error(client, flush):
    sid = "SM" + "4" * 32
    message = phone_message(provider_message_id=sid)

    response = post_twilio(client, status_callback(sid, "undelivered", ErrorCode="30003", ErrorMessage="Unreachable"))
    flush()

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == M.FAILED
    event = MessageEvent.objects.get(message_id=message.pk)
    assert (event.type, event.detail) == (EventType.FAILED, "Twilio error 30003 Unreachable")
    assert event.payload["ErrorCode"] == "30003"


def test_a_verified_post_without_a_message_sid_is_a_400(client):
    response = post_twilio(client, {"MessageStatus": "delivered", "To": PHONE})

    assert response.status_code == 400
    assert b"MessageSid" in response.content


# --- STOP, START and replies ---------------------------------------------------------------------------------


def test_stop_opts_out_of_the_channel_for_the_organization_that_messaged_last(
    client, django_capture_on_commit_callbacks
):
    latest = phone_message(sent_ago=timedelta(minutes=5), provider_message_id="SM" + "5" * 32)
    older = phone_message(sent_ago=timedelta(days=2), provider_message_id="SM" + "6" * 32)
    pending = Message.objects.create(
        organization_id=latest.organization_id,
        campaign=latest.campaign,
        step=1,
        contact_id=latest.contact_id,
        to_address=PHONE,
        status=M.QUEUED,
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    email_campaign = CampaignFactory(organization=latest.organization, channel="email", status=CampaignStatus.RUNNING)
    pending_email = Message.objects.create(
        organization_id=latest.organization_id,
        campaign=email_campaign,
        contact_id=latest.contact_id,
        to_address="someone@example.com",
        status=M.QUEUED,
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    # Another contact of the same organization with the same number: the STOP speaks for the number.
    same_number = ContactFactory(organization=latest.organization, phone=PHONE, consent={"whatsapp": True})

    with django_capture_on_commit_callbacks(execute=True):
        response = post_twilio(client, inbound_sms("  stop "))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    suppression = Suppression.objects.get()
    assert (suppression.organization_id, suppression.kind, suppression.value, suppression.reason) == (
        latest.organization_id,
        "phone",
        PHONE,
        "unsubscribed",
    )
    # Only SMS: consent.sms is false, the email status and the other channels' answers stay.
    contact = Contact.objects.get(pk=latest.contact_id)
    assert (contact.status, contact.consent) == (ContactStatus.SUBSCRIBED, {"sms": False})
    assert Contact.objects.get(pk=same_number.pk).consent == {"whatsapp": True, "sms": False}
    older_contact = Contact.objects.get(pk=older.contact_id)  # another organization
    assert (older_contact.status, older_contact.consent) == (ContactStatus.SUBSCRIBED, {})
    pending.refresh_from_db()
    assert pending.status == M.SKIPPED
    pending_email.refresh_from_db()
    assert pending_email.status == M.QUEUED
    event = MessageEvent.objects.get(type=EventType.UNSUBSCRIBED)
    assert (event.message_id, event.esp) == (latest.pk, "twilio")

    # Twilio retried the same STOP: nothing more happens.
    post_twilio(client, inbound_sms("  stop "))
    assert MessageEvent.objects.filter(type=EventType.UNSUBSCRIBED).count() == 1


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit"])
def test_every_opt_out_word_suppresses_the_phone(client, word):
    message = phone_message(provider_message_id="SM" + "7" * 32)

    post_twilio(client, inbound_sms(word))

    assert Suppression.objects.filter(organization_id=message.organization_id, kind="phone", value=PHONE).exists()


def test_start_lifts_the_opt_out_and_gives_consent_for_the_channel(client):
    message = phone_message(provider_message_id="SM" + "8" * 32)
    Contact.objects.filter(pk=message.contact_id).update(status=ContactStatus.UNSUBSCRIBED)
    post_twilio(client, inbound_sms("STOP", sid="SM" + "a" * 32))
    assert Contact.objects.get(pk=message.contact_id).consent == {"sms": False}

    response = post_twilio(client, inbound_sms("Start", sid="SM" + "b" * 32))

    assert response.status_code == 200
    assert not Suppression.objects.exists()
    contact = Contact.objects.get(pk=message.contact_id)
    # A yes for SMS; the status (unsubscribed from email) is not the SMS channel's to change.
    assert (contact.status, contact.consent) == (ContactStatus.UNSUBSCRIBED, {"sms": True})
    assert MessageEvent.objects.filter(type=EventType.SUBSCRIBED, message_id=message.pk).exists()


def test_start_keeps_a_suppression_the_operator_added(client):
    from contacts import services as contact_services

    message = phone_message(provider_message_id="SM" + "9" * 32)
    contact_services.suppression_add(organization_id=message.organization_id, kind="phone", value=PHONE)

    post_twilio(client, inbound_sms("START"))

    assert Suppression.objects.filter(reason="manual").count() == 1


def test_any_other_text_is_a_reply_that_stops_drips(client, flush, django_capture_on_commit_callbacks):
    message = phone_message(provider_message_id="SM" + "c" * 32)
    heard = []

    def receiver(name, contacts, **kwargs):
        heard.append((name, list(contacts.values_list("pk", flat=True))))

    hooks.contact_event.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_twilio(client, inbound_sms("Stop sending me the blue ones, I want red"))
            flush()
    finally:
        hooks.contact_event.disconnect(receiver)

    assert response.status_code == 200
    event = MessageEvent.objects.get()
    assert (event.type, event.message_id, event.detail) == (
        EventType.REPLIED,
        message.pk,
        "Stop sending me the blue ones, I want red",
    )
    assert (hooks.MESSAGE_REPLIED, [message.contact_id]) in heard
    assert not Suppression.objects.exists()


def test_a_text_from_a_number_we_never_messaged_stores_nothing(client, flush):
    phone_message(provider_message_id="SM" + "d" * 32, channel="whatsapp")  # not an SMS

    assert post_twilio(client, inbound_sms("STOP")).status_code == 200
    flush()

    assert not MessageEvent.objects.exists()
    assert not Suppression.objects.exists()


# --- WhatsApp ---------------------------------------------------------------------------------------------


def whatsapp_post(client, body, *, secret=APP_SECRET, signature=None):
    raw = json.dumps(body).encode()
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"HTTP_X_HUB_SIGNATURE_256": signature} if signature else {}
    return client.post(WHATSAPP_PATH, data=raw, content_type="application/json", **headers)


def notification(value):
    """Meta's webhook envelope around one change's value."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def wa_status(wamid, status, *, at=None, errors=None):
    item = {
        "id": wamid,
        "status": status,
        "timestamp": str(int((at or timezone.now()).timestamp())),
        "recipient_id": PHONE.lstrip("+"),
        "conversation": {"id": "2a5fe6e4e7a2f0f7b2f0f0f0f0f0f0f0", "origin": {"type": "marketing"}},
        "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"},
    }
    if errors:
        item["errors"] = errors
    return item


def wa_text(text, *, wamid="wamid.HBgLMzE2MTIzNDU2NzgVAgASGBQzQUFCNEI2QjE4RjE0QjNEMjhGNQA="):
    return {
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": PHONE.lstrip("+")}],
        "messages": [
            {
                "from": PHONE.lstrip("+"),
                "id": wamid,
                "timestamp": str(int(timezone.now().timestamp())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }


def test_meta_verification_answers_the_challenge_only_with_the_right_token(client):
    good = client.get(
        WHATSAPP_PATH, {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158"}
    )
    wrong = client.get(WHATSAPP_PATH, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158"})

    assert (good.status_code, good.content) == (200, b"1158")
    assert wrong.status_code == 403


def test_whatsapp_statuses_are_mapped_read_is_opened(client, flush):
    wamid = "wamid.HBgLMzE2MTIzNDU2NzgVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    message = phone_message("whatsapp", provider_message_id=wamid)
    later = timezone.now()

    body = notification({"statuses": [wa_status(wamid, "sent", at=later), wa_status(wamid, "delivered", at=later)]})
    assert whatsapp_post(client, body).status_code == 200
    assert whatsapp_post(client, notification({"statuses": [wa_status(wamid, "read", at=later)]})).status_code == 200
    flush()

    message.refresh_from_db()
    assert message.status == M.OPENED
    assert set(MessageEvent.objects.filter(message_id=message.pk).values_list("type", "esp")) == {
        (EventType.SENT, "whatsapp"),
        (EventType.DELIVERED, "whatsapp"),
        (EventType.OPENED, "whatsapp"),
    }


def test_a_failed_whatsapp_message_keeps_metas_error(client, flush):
    wamid = "wamid.FAILED0001"
    message = phone_message("whatsapp", provider_message_id=wamid)
    errors = [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}]

    assert (
        whatsapp_post(client, notification({"statuses": [wa_status(wamid, "failed", errors=errors)]})).status_code
        == 200
    )
    flush()

    message.refresh_from_db()
    assert message.status == M.FAILED
    assert MessageEvent.objects.get().detail == "WhatsApp error 131026: Message undeliverable"


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "sha1=abc"])
def test_unsigned_or_wrongly_signed_whatsapp_posts_are_refused(client, flush, signature):
    wamid = "wamid.REFUSED"
    message = phone_message("whatsapp", provider_message_id=wamid)

    body = notification({"statuses": [wa_status(wamid, "read")], **wa_text("STOP")})
    assert whatsapp_post(client, body, signature=signature).status_code == 403
    assert whatsapp_post(client, body, secret="another-secret").status_code == 403
    flush()

    assert not MessageEvent.objects.exists()
    assert not Suppression.objects.exists()
    message.refresh_from_db()
    assert message.status == M.SENT


def test_a_signed_whatsapp_post_that_is_not_metas_format_is_a_400(client):
    response = whatsapp_post(client, {"entry": [{"changes": [{"value": {"statuses": [{"status": "read"}]}}]}]})

    assert response.status_code == 400
    assert b"statuses[0].id" in response.content


def test_whatsapp_stop_and_replies(client, flush):
    message = phone_message("whatsapp", provider_message_id="wamid.SENT0001")

    assert whatsapp_post(client, notification(wa_text("Which sizes do you have?"))).status_code == 200
    assert whatsapp_post(client, notification(wa_text("Stop", wamid="wamid.INBOUND0002"))).status_code == 200
    flush()

    assert set(MessageEvent.objects.filter(message_id=message.pk).values_list("type", flat=True)) == {
        EventType.REPLIED,
        EventType.UNSUBSCRIBED,
    }
    assert Suppression.objects.filter(organization_id=message.organization_id, kind="phone", value=PHONE).exists()
    contact = Contact.objects.get(pk=message.contact_id)
    assert (contact.status, contact.consent) == (ContactStatus.SUBSCRIBED, {"whatsapp": False})
