"""SMS and WhatsApp backends (file, console, Twilio and Meta's Cloud API stubbed at the HTTP boundary),
the send path through them, and launch refused without a backend."""

import io
import json
from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from campaigns import channels, sending, sequences
from campaigns.channels import OutgoingMessage
from campaigns.models import Campaign, Message, MessageStatus, Sequence
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory
from conftest import bearer_client
from contacts.tests.factories import ContactFactory
from templates_app.services import template_snapshot

pytestmark = pytest.mark.django_db
M = MessageStatus

TWILIO_SID = "AC00000000000000000000000000000000"
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
GRAPH_URL = "https://graph.facebook.com/v23.0/106540352242922/messages"


def twilio_created(sid: str, to: str) -> dict:
    """Twilio's answer to a created message (201), as its API documents it."""
    return {
        "account_sid": TWILIO_SID,
        "api_version": "2010-04-01",
        "body": "Hi",
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": None,
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": None,
        "messaging_service_sid": "MG00000000000000000000000000000000",
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}/Media.json"},
        "to": to,
        "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json",
    }


def twilio_error(code: int, message: str, status: int) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def meta_accepted(wamid: str, to: str) -> dict:
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }


def meta_error(code: int, message: str, details: str) -> dict:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AazV4P0mlcT2aD6_4ys2xkR",
        }
    }


@pytest.fixture
def twilio(settings):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = "test-auth-token"
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG00000000000000000000000000000000"
    settings.TWILIO_FROM = ""
    settings.PUBLIC_BASE_URL = "https://campaigns.example.com"
    with responses.RequestsMock() as mocked:
        yield mocked


@pytest.fixture
def cloud(settings):
    settings.WHATSAPP_BACKEND = "cloud"
    settings.WHATSAPP_TOKEN = "EAAG-test-token"
    settings.WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
    settings.WHATSAPP_API_VERSION = "v23.0"
    with responses.RequestsMock() as mocked:
        yield mocked


def sms(message_id: int, to: str = "+31612345678", body: str = "Hi Ana") -> OutgoingMessage:
    return OutgoingMessage(message_id=message_id, to=to, body=body)


def read_lines(directory) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl")) for line in path.read_text().splitlines()]


# --- file and console -----------------------------------------------------------------------------------


def test_the_sms_file_backend_writes_one_json_line_per_message(settings, tmp_path):
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path / "sms")
    backend = channels.backend_for("sms")

    outcomes = backend.send_batch([sms(1, body="Hi Ana 👋"), sms(2, to="+31687654321", body="Hi Bo")])

    assert all(outcome.ok for outcome in outcomes)
    assert len({outcome.provider_id for outcome in outcomes}) == 2
    lines = read_lines(tmp_path / "sms")
    assert [(line["to"], line["body"], line["message_id"]) for line in lines] == [
        ("+31612345678", "Hi Ana 👋", "1"),
        ("+31687654321", "Hi Bo", "2"),
    ]
    assert [line["provider_message_id"] for line in lines] == [outcome.provider_id for outcome in outcomes]


def test_the_whatsapp_file_backend_writes_template_language_and_parameters(settings, tmp_path):
    settings.WHATSAPP_BACKEND = "file"
    settings.WHATSAPP_FILE_PATH = str(tmp_path / "wa")
    message = OutgoingMessage(
        message_id=7, to="+31612345678", template="order_update", language="nl", parameters={"body": ["Ana", "42"]}
    )

    [outcome] = channels.backend_for("whatsapp").send_batch([message])

    [line] = read_lines(tmp_path / "wa")
    assert outcome.ok
    assert {key: line[key] for key in ("to", "template", "language", "parameters", "message_id")} == {
        "to": "+31612345678",
        "template": "order_update",
        "language": "nl",
        "parameters": {"body": ["Ana", "42"]},
        "message_id": "7",
    }
    assert "body" not in line


def test_an_unwritable_file_path_is_a_temporary_failure(settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.SMS_FILE_PATH = str(blocker / "sms")

    [outcome] = channels.backend_for("sms").send_batch([sms(1)])

    assert not outcome.ok
    assert outcome.temporary


def test_the_console_backend_prints_each_message():
    stream = io.StringIO()
    backend = channels.ConsoleBackend("sms", stream=stream)

    backend.send_batch([sms(1), sms(2, body="Second")])

    printed = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["to"], line["body"], line["message_id"]) for line in printed] == [
        ("+31612345678", "Hi Ana", "1"),
        ("+31612345678", "Second", "2"),
    ]


# --- Twilio -------------------------------------------------------------------------------------------


def test_twilio_sends_each_message_through_one_http_session_per_batch(twilio):
    for number, sid in (("+31612345678", "SM" + "a" * 32), ("+31687654321", "SM" + "b" * 32)):
        twilio.post(TWILIO_URL, json=twilio_created(sid, number), status=201)
    backend = channels.backend_for("sms")

    outcomes = backend.send_batch([sms(1), sms(2, to="+31687654321", body="Hi Bo")])

    assert [outcome.provider_id for outcome in outcomes] == ["SM" + "a" * 32, "SM" + "b" * 32]
    first, second = twilio.calls
    sent = [dict(pair.split("=", 1) for pair in call.request.body.split("&")) for call in twilio.calls]
    assert sent[0]["To"] == "%2B31612345678"
    assert sent[0]["Body"] == "Hi+Ana"
    assert sent[0]["MessagingServiceSid"] == "MG00000000000000000000000000000000"
    assert sent[0]["StatusCallback"] == "https%3A%2F%2Fcampaigns.example.com%2Fwebhooks%2Fsms%2Ftwilio%2F"
    assert first.request.headers["Authorization"].startswith("Basic ")
    # The same requests session (its adapter) carried both calls.
    assert first.response.connection is second.response.connection

    twilio.post(TWILIO_URL, json=twilio_created("SM" + "c" * 32, "+31612345678"), status=201)
    backend.send_batch([sms(3)])
    assert twilio.calls[2].response.connection is not first.response.connection  # a new batch, a new session


def test_twilio_uses_the_from_number_without_a_messaging_service(twilio, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM = "+15557122661"
    twilio.post(TWILIO_URL, json=twilio_created("SM" + "d" * 32, "+31612345678"), status=201)

    [outcome] = channels.backend_for("sms").send_batch([sms(1)])

    assert outcome.ok
    body = twilio.calls[0].request.body
    assert "From=%2B15557122661" in body
    assert "MessagingServiceSid" not in body


@pytest.mark.parametrize(
    ("status", "answer", "temporary", "text"),
    [
        (400, twilio_error(21211, "The 'To' number +3100 is not a valid phone number.", 400), False, "21211"),
        (400, twilio_error(21610, "Attempt to send to unsubscribed recipient", 400), False, "21610"),
        (429, twilio_error(20429, "Too Many Requests", 429), True, "20429"),
        (503, twilio_error(20503, "Service Unavailable", 503), True, "20503"),
    ],
)
def test_twilio_errors_are_classified_from_their_json(twilio, status, answer, temporary, text):
    twilio.post(TWILIO_URL, json=answer, status=status)
    twilio.post(TWILIO_URL, json=twilio_created("SM" + "e" * 32, "+31687654321"), status=201)

    failed, sent = channels.backend_for("sms").send_batch([sms(1), sms(2, to="+31687654321")])

    assert (failed.ok, failed.temporary) == (False, temporary)
    assert text in failed.error
    assert answer["message"] in failed.error
    assert sent.provider_id == "SM" + "e" * 32  # one message's error does not stop the batch


def test_twilio_unreachable_is_temporary(twilio):
    twilio.post(TWILIO_URL, body=requests.ConnectionError("connection refused"))

    [outcome] = channels.backend_for("sms").send_batch([sms(1)])

    assert (outcome.ok, outcome.temporary) == (False, True)


def test_twilio_without_credentials_is_no_backend(settings):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = ""
    settings.TWILIO_FROM = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = ""

    assert channels.backend_for("sms") is None
    reason = channels.unavailable_reason("sms")
    assert "TWILIO_AUTH_TOKEN" in reason
    assert "TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM" in reason
    assert "TWILIO_ACCOUNT_SID" not in reason
    assert channels.unavailable_reason("email") is None


# --- WhatsApp Cloud API ---------------------------------------------------------------------------------


def test_cloud_sends_approved_templates_with_their_parameters(cloud):
    cloud.post(
        GRAPH_URL, json=meta_accepted("wamid.HBgLMzE2MTIzNDU2NzgVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA", "+31612345678")
    )
    cloud.post(GRAPH_URL, json=meta_accepted("wamid.SECOND", "+31687654321"))
    backend = channels.backend_for("whatsapp")
    first = OutgoingMessage(
        message_id=1,
        to="+31612345678",
        template="order_update",
        language="en_US",
        parameters={"header": ["Ana"], "body": ["Ana", "#42"], "buttons": ["42"]},
    )
    second = OutgoingMessage(message_id=2, to="+31687654321", template="hello_world", language="en_US")

    outcomes = backend.send_batch([first, second])

    assert [outcome.provider_id for outcome in outcomes] == [
        "wamid.HBgLMzE2MTIzNDU2NzgVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
        "wamid.SECOND",
    ]
    sent = json.loads(cloud.calls[0].request.body)
    assert sent == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+31612345678",
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "42"}]},
            ],
        },
    }
    assert "components" not in json.loads(cloud.calls[1].request.body)["template"]
    assert cloud.calls[0].request.headers["Authorization"] == "Bearer EAAG-test-token"
    assert cloud.calls[0].response.connection is cloud.calls[1].response.connection


@pytest.mark.parametrize(
    ("status", "answer", "temporary", "text"),
    [
        (400, meta_error(131026, "Message undeliverable", "Receiver is incapable of receiving"), False, "131026"),
        (404, meta_error(132001, "Template name does not exist in the translation", "template name"), False, "132001"),
        (400, meta_error(130429, "Rate limit hit", "Cloud API message throughput has been reached."), True, "130429"),
        (503, meta_error(133004, "Server temporarily unavailable", "Try again later"), True, "133004"),
    ],
)
def test_cloud_errors_are_classified_from_their_json(cloud, status, answer, temporary, text):
    cloud.post(GRAPH_URL, json=answer, status=status)

    [outcome] = channels.backend_for("whatsapp").send_batch(
        [OutgoingMessage(message_id=1, to="+31612345678", template="t", language="en")]
    )

    assert (outcome.ok, outcome.temporary) == (False, temporary)
    assert text in outcome.error
    assert answer["error"]["message"] in outcome.error


def test_cloud_without_a_phone_number_id_is_no_backend(settings):
    settings.WHATSAPP_BACKEND = "cloud"
    settings.WHATSAPP_TOKEN = "token"
    settings.WHATSAPP_PHONE_NUMBER_ID = ""

    assert channels.backend_for("whatsapp") is None
    assert "WHATSAPP_PHONE_NUMBER_ID" in channels.unavailable_reason("whatsapp")


# --- the send path --------------------------------------------------------------------------------------


def phone_campaign(channel="sms", **template_fields):
    fields = {"sms_body": "Hi {{ contact.first_name }}"} if channel == "sms" else {}
    fields.update(template_fields)
    campaign = CampaignFactory(status="running", channel=channel)
    campaign.template = EmailTemplateFactory(
        organization=campaign.organization, channel=channel, subject="", html_body="", **fields
    )
    campaign.template_version = template_snapshot(template=campaign.template)
    campaign.planned_at = timezone.now()
    campaign.save()
    return campaign


def claim(campaign, *phones):
    lease = timezone.now() + timedelta(minutes=5)
    messages = []
    for index, phone in enumerate(phones):
        contact = ContactFactory(organization=campaign.organization, phone=phone, first_name=f"P{index}")
        messages.append(
            Message.objects.create(
                organization=campaign.organization,
                campaign=campaign,
                contact=contact,
                to_address=phone,
                status=M.CLAIMED,
                lease_until=lease,
                scheduled_at=timezone.now(),
            )
        )
    return messages, lease


def test_sms_messages_are_rendered_and_sent_through_the_backend(settings, tmp_path):
    settings.SMS_FILE_PATH = str(tmp_path)
    campaign = phone_campaign()
    messages, lease = claim(campaign, "+31612345678", "+31687654321")

    result = sending.send_batch(message_ids=[m.pk for m in messages], lease=lease)

    assert (result.sent, result.failed) == (2, 0)
    lines = read_lines(tmp_path)
    assert sorted((line["to"], line["body"]) for line in lines) == [
        ("+31612345678", "Hi P0"),
        ("+31687654321", "Hi P1"),
    ]
    stored = {m.pk: m for m in Message.objects.filter(campaign=campaign)}
    for line in lines:
        message = stored[int(line["message_id"])]
        assert (message.status, message.provider_message_id) == (M.SENT, line["provider_message_id"])
        assert message.sent_at is not None
        assert message.attempts == 1
    # Run again (a redelivered task): nothing is sent twice.
    assert sending.send_batch(message_ids=[m.pk for m in messages], lease=lease).skipped == 2
    assert len(read_lines(tmp_path)) == 2


def test_whatsapp_messages_carry_the_rendered_parameters(settings, tmp_path):
    settings.WHATSAPP_FILE_PATH = str(tmp_path)
    campaign = phone_campaign(
        "whatsapp",
        whatsapp_template_name="order_update",
        whatsapp_language="nl",
        whatsapp_parameters={"body": ["{{ contact.first_name }}", "{{ campaign.name }}"]},
    )
    [message], lease = claim(campaign, "+31612345678")

    assert sending.send_batch(message_ids=[message.pk], lease=lease).sent == 1

    [line] = read_lines(tmp_path)
    assert (line["template"], line["language"], line["parameters"]) == (
        "order_update",
        "nl",
        {"body": ["P0", campaign.name]},
    )


def test_temporary_provider_failures_retry_and_permanent_ones_fail(twilio):
    campaign = phone_campaign()
    (throttled, invalid, ok), lease = claim(campaign, "+31612345678", "+31687654321", "+31611111111")
    twilio.post(TWILIO_URL, json=twilio_error(20429, "Too Many Requests", 429), status=429)
    twilio.post(TWILIO_URL, json=twilio_error(21211, "The 'To' number is not a valid phone number.", 400), status=400)
    twilio.post(TWILIO_URL, json=twilio_created("SM" + "f" * 32, "+31611111111"), status=201)

    before = timezone.now()
    result = sending.send_batch(message_ids=[throttled.pk, invalid.pk, ok.pk], lease=lease)

    assert (result.sent, result.retried, result.failed) == (1, 1, 1)
    throttled.refresh_from_db()
    invalid.refresh_from_db()
    ok.refresh_from_db()
    assert throttled.status == M.QUEUED
    assert "20429" in throttled.last_error
    assert before + timedelta(minutes=1) <= throttled.scheduled_at <= timezone.now() + timedelta(minutes=1)
    assert invalid.status == M.FAILED
    assert "21211" in invalid.last_error
    assert (ok.status, ok.provider_message_id) == (M.SENT, "SM" + "f" * 32)
    assert len(twilio.calls) == 3
    assert twilio.calls[0].response.connection is twilio.calls[2].response.connection  # one session for the chunk


def test_the_fourth_temporary_failure_fails_the_message(twilio):
    campaign = phone_campaign()
    [message], lease = claim(campaign, "+31612345678")
    Message.objects.filter(pk=message.pk).update(attempts=3)
    twilio.post(TWILIO_URL, json=twilio_error(20503, "Service Unavailable", 503), status=503)

    assert sending.send_batch(message_ids=[message.pk], lease=lease).failed == 1

    message.refresh_from_db()
    assert message.status == M.FAILED


def test_a_message_without_a_phone_fails_without_a_provider_call(twilio):
    campaign = phone_campaign()
    [message], lease = claim(campaign, "+31612345678")
    Message.objects.filter(pk=message.pk).update(to_address="")

    assert sending.send_batch(message_ids=[message.pk], lease=lease).failed == 1

    message.refresh_from_db()
    assert (message.status, message.last_error) == (M.FAILED, "The contact has no phone number.")
    assert not twilio.calls


# --- launch refused without a backend ---------------------------------------------------------------------


def unconfigured_twilio(settings):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""


def test_launching_an_sms_campaign_without_a_backend_is_refused(settings):
    unconfigured_twilio(settings)
    owner = MembershipFactory(role=Role.MANAGER)
    organization = owner.organization
    template = EmailTemplateFactory(organization=organization, channel="sms", subject="", html_body="", sms_body="Hi")
    client = bearer_client(owner.user, organization)
    created = client.post(
        "/api/v1/campaigns/",
        {"name": "Texts", "channel": "sms", "template": str(template.pk), "audience": {"tags": ["vip"]}},
        format="json",
    )
    assert created.status_code == 201, created.content
    campaign_id = created.json()["id"]

    response = client.post(f"/api/v1/campaigns/{campaign_id}/launch")

    assert response.status_code == 409
    assert "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in response.json()["detail"]
    assert Campaign.objects.get(pk=campaign_id).status == "draft"
    assert not Message.objects.filter(campaign_id=campaign_id).exists()

    settings.SMS_BACKEND = "file"
    assert client.post(f"/api/v1/campaigns/{campaign_id}/launch").status_code == 200


def test_activating_a_whatsapp_sequence_without_a_backend_is_refused(settings):
    settings.WHATSAPP_BACKEND = "cloud"
    settings.WHATSAPP_TOKEN = ""
    owner = MembershipFactory(role=Role.MANAGER)
    organization = owner.organization
    template = EmailTemplateFactory(
        organization=organization,
        channel="whatsapp",
        subject="",
        html_body="",
        whatsapp_template_name="welcome",
        whatsapp_language="en",
    )
    sequence = sequences.sequence_save(
        sequence=Sequence(organization=organization, name="Welcome", channel="whatsapp"),
        trigger={"type": "api"},
        settings={},
        steps=[{"order": 1, "delay": {"unit": "days", "value": 0}, "template": str(template.pk)}],
    )
    client = bearer_client(owner.user, organization)

    response = client.post(f"/api/v1/sequences/{sequence.pk}/activate")

    assert response.status_code == 409
    assert "WHATSAPP_BACKEND=cloud needs WHATSAPP_TOKEN" in response.json()["detail"]
    sequence.refresh_from_db()
    assert sequence.status == "draft"
