"""Provider webhooks with good credentials and a bad body are a 400 that stores nothing (never a
500 and a provider retrying for days); only the configured provider's webhooks are mounted."""

import json

import pytest

from campaigns.models import MessageStatus
from tracking import buffer, conf
from tracking.models import EventType, MessageEvent
from tracking.tests import payloads
from tracking.tests.conftest import basic_auth, provider
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db

NOT_OBJECTS = ["[]", '"x"', "null", "1", "{not json", "", "\xff"]


def send(client, path, body, *, content_type="application/json", auth=None, **headers):
    if not isinstance(body, str | bytes) and content_type == "application/json":
        body = json.dumps(body)
    with provider(path):
        return client.post(
            path, data=body, content_type=content_type, HTTP_AUTHORIZATION=auth or basic_auth(), **headers
        )


def ses_envelope(message) -> tuple[dict, dict]:
    """An SNS notification envelope whose Message is `message` (text, as SNS posts it)."""
    body, headers = payloads.sns_notification({})
    body["Message"] = message if isinstance(message, str) else json.dumps(message)
    return body, headers


def stored_nothing(flush) -> bool:
    flush()
    buffered = conf.buffer_mode() == conf.BUFFER_REDIS and buffer.backlog()
    return not MessageEvent.objects.exists() and not buffered


def assert_refused(response, flush):
    assert response.status_code == 400, response.content
    assert response.content.startswith(b"Malformed ")
    assert stored_nothing(flush)


# --- tracking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("esp", ["postmark", "sparkpost", "amazon_ses"])
@pytest.mark.parametrize("kind", ["tracking", "inbound"])
@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_a_body_that_is_not_the_providers_format_is_a_400(client, flush, esp, kind, body):
    headers = {}
    if esp == "amazon_ses":
        headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", "HTTP_X_AMZ_SNS_MESSAGE_ID": "1"}
    assert_refused(send(client, f"/anymail/{esp}/{kind}/", body.encode(), **headers), flush)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"RecordType": "Delivery"},  # no MessageID
        {"MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"},  # no RecordType
        {"RecordType": ["Delivery"], "MessageID": "b7bc2f4a"},
        {"RecordType": "Open", "MessageID": "b7bc2f4a", "Recipient": "a\u0000@example.com"},  # PostgreSQL refuses NUL
    ],
)
def test_postmark_objects_without_their_fields_are_a_400(client, flush, body):
    SentMessageFactory(provider_message_id="b7bc2f4a")
    assert_refused(send(client, "/anymail/postmark/tracking/", body), flush)


def test_signed_mailgun_posts_without_their_event_are_a_400(client, flush):
    for body in (
        payloads.mailgun_signed({}),
        payloads.mailgun_signed("opened"),
        {key: value for key, value in payloads.mailgun_signed({}).items() if key != "event-data"},
        payloads.mailgun_signed({"event": 7, "recipient": "a@example.com"}),
    ):
        assert_refused(send(client, "/anymail/mailgun/tracking/", body), flush)
    for body in ("[]", '"x"', "null", "[1]"):
        assert_refused(send(client, "/anymail/mailgun/tracking/", body), flush)
    # Mailgun signs inside the body: one that is not JSON cannot prove who sent it.
    assert send(client, "/anymail/mailgun/tracking/", "{not json").status_code == 403
    assert stored_nothing(flush)


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        [],
        {},  # no mail object
        {"mail": {"messageId": "0102018f-x"}},  # no eventType
        {"eventType": "Bounce", "mail": {"messageId": "0102018f-x"}, "bounce": {}},  # Anymail's KeyError
        {"eventType": "Delivery", "mail": {"messageId": "0102018f-x"}, "delivery": {"recipients": 5}},
    ],
)
def test_ses_notifications_whose_message_is_not_an_ses_event_are_a_400(client, flush, message):
    body, headers = ses_envelope(message)
    assert_refused(send(client, "/anymail/amazon_ses/tracking/", body, **headers), flush)


@pytest.mark.parametrize(
    "events",
    [
        {"msys": {}},
        [1],
        [{"msys": 1}],
        [{"msys": {"track_event": {}}}],  # no type
        [{"msys": {"track_event": {"type": "open"}, "message_event": {"type": "delivery"}}}],
    ],
)
def test_sparkpost_batches_not_in_its_format_are_a_400(client, flush, events):
    assert_refused(send(client, "/anymail/sparkpost/tracking/", events), flush)


def test_one_malformed_event_refuses_its_whole_batch(client, flush):
    message = SentMessageFactory(provider_message_id="batch-1")
    good = payloads.sparkpost_event("delivery", message.provider_message_id, message.to_address)

    assert_refused(send(client, "/anymail/sparkpost/tracking/", [good, {"msys": {"message_event": []}}]), flush)
    assert send(client, "/anymail/sparkpost/tracking/", [good]).status_code == 200  # the provider's retry, fixed
    flush()
    assert MessageEvent.objects.get().type == EventType.DELIVERED


def test_sparkposts_ping_is_answered(client, flush):
    assert send(client, "/anymail/sparkpost/tracking/", [{"msys": {}}]).status_code == 200
    assert stored_nothing(flush)


@pytest.mark.parametrize("path", ["/anymail/postmark/tracking/", "/anymail/amazon_ses/tracking/"])
def test_credentials_are_checked_before_the_body(client, flush, path):
    response = send(client, path, "[]", auth=basic_auth(password="wrong"))
    assert response.status_code == 403
    assert stored_nothing(flush)


# --- inbound ------------------------------------------------------------------------------------------


@pytest.fixture
def replied_to():
    return SentMessageFactory(provider_message_id="172.9.9@mail.example.com")


def reply(message) -> str:
    return payloads.reply_mime(to="news@mail.example.com", in_reply_to=f"<{message.provider_message_id}>")


def assert_one_reply(message, flush) -> None:
    flush()
    event = MessageEvent.objects.get()
    assert (event.type, event.message_id) == (EventType.REPLIED, message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_ses_inbound_reply_is_stored_and_malformed_ones_refused(client, flush, replied_to):
    for message in ("nope", {"notificationType": "Received", "mail": {}}, {"receipt": {}}):
        body, headers = ses_envelope(message)
        assert_refused(send(client, "/anymail/amazon_ses/inbound/", body, **headers), flush)
    # A sending event posted to the inbound URL: the provider is misconfigured, the post is refused.
    body, headers = ses_envelope(payloads.ses_event("Delivery", "0102018f-x", "a@example.com"))
    assert_refused(send(client, "/anymail/amazon_ses/inbound/", body, **headers), flush)

    body, headers = ses_envelope(payloads.ses_inbound(reply(replied_to), to="news@mail.example.com"))
    assert send(client, "/anymail/amazon_ses/inbound/", body, **headers).status_code == 200
    assert_one_reply(replied_to, flush)


def test_sparkpost_inbound_reply_is_stored_and_malformed_ones_refused(client, flush, replied_to):
    good = payloads.sparkpost_relay(reply(replied_to), to="news@mail.example.com")
    for events in ([{"msys": {"relay_message": {"protocol": "smtp"}}}], {"msys": {}}, [{"msys": []}]):
        assert_refused(send(client, "/anymail/sparkpost/inbound/", events), flush)

    assert send(client, "/anymail/sparkpost/inbound/", good).status_code == 200
    assert_one_reply(replied_to, flush)


def test_postmark_inbound_objects_without_their_fields_are_a_400(client, flush, replied_to):
    good = payloads.postmark_inbound(to="news@mail.example.com", in_reply_to=f"<{replied_to.provider_message_id}>")
    for body in ({}, {**good, "FromFull": None}, {**good, "MessageID": None}, {**good, "Headers": "x"}):
        assert_refused(send(client, "/anymail/postmark/inbound/", body), flush)

    assert send(client, "/anymail/postmark/inbound/", good).status_code == 200
    assert_one_reply(replied_to, flush)


def test_mailgun_inbound_reply_is_stored_and_malformed_ones_refused(client, flush, replied_to):
    path = "/anymail/mailgun/inbound_mime/"
    good = payloads.mailgun_inbound(reply(replied_to), to="news@mail.example.com")
    without_message = {key: value for key, value in good.items() if key != "body-mime"}
    form = "application/x-www-form-urlencoded"
    from urllib.parse import urlencode

    assert_refused(send(client, path, urlencode(without_message), content_type=form), flush)
    assert_refused(send(client, path, {**payloads.mailgun_signed({}), **good}), flush)  # JSON, not a form

    assert send(client, path, urlencode(good), content_type=form).status_code == 200
    assert_one_reply(replied_to, flush)


# --- only the configured provider ---------------------------------------------------------------------


def test_only_the_configured_providers_webhooks_answer(client, flush, settings):
    message = SentMessageFactory(provider_message_id="<20260801.7@mg.example.com>")
    signed = json.dumps(payloads.mailgun_signed(payloads.mailgun_delivered("20260801.7@mg.example.com", "a@x.com")))
    post = lambda path: client.post(path, data=signed, content_type="application/json", HTTP_AUTHORIZATION=basic_auth())  # noqa: E731

    settings.ANYMAIL_ESP_NAME = "postmark"
    assert post("/anymail/mailgun/tracking/").status_code == 404
    assert post("/anymail/sendgrid/tracking/").status_code == 404
    assert post("/anymail/mandrill/").status_code == 404
    assert client.head("/anymail/mailgun/tracking/").status_code == 404
    settings.ANYMAIL_ESP_NAME = ""
    assert post("/anymail/mailgun/tracking/").status_code == 404  # no provider: none mounted
    assert stored_nothing(flush)

    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"  # named by its backend alone
    assert post("/anymail/mailgun/tracking/").status_code == 200
    flush()
    assert MessageEvent.objects.get().message_id == message.pk
