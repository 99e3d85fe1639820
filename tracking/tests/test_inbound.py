"""Inbound replies through Anymail's inbound signal become `replied` events on the message answered."""

import json

import pytest

from campaigns.models import MessageStatus
from tracking import tokens
from tracking.models import EventType, MessageEvent
from tracking.tests import payloads
from tracking.tests.conftest import basic_auth, provider
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db


def post_inbound(client, body):
    with provider("/anymail/postmark/inbound/"):
        return client.post(
            "/anymail/postmark/inbound/",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=basic_auth(),
        )


def test_a_reply_is_matched_by_in_reply_to(client, flush):
    # Sent over SMTP: the provider id is the Message-ID we generated, without <>.
    message = SentMessageFactory(provider_message_id="172.1.2@mail.example.com")
    body = payloads.postmark_inbound(to="news@mail.example.com", in_reply_to="<172.1.2@mail.example.com>")

    assert post_inbound(client, body).status_code == 200
    assert post_inbound(client, body).status_code == 200  # Postmark retried: stored once
    flush()

    event = MessageEvent.objects.get()
    assert (event.type, event.message_id, event.esp) == (EventType.REPLIED, message.pk, "postmark")
    assert event.recipient == "ana@example.net"
    assert event.payload["matched_by"] == "In-Reply-To/References"
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_a_reply_is_matched_by_its_reply_address(client, flush):
    message = SentMessageFactory(provider_message_id="pm-0001")
    address = tokens.reply_address(message.pk, "replies@mail.example.com")

    assert post_inbound(client, payloads.postmark_inbound(to=address)).status_code == 200
    flush()

    event = MessageEvent.objects.get()
    assert (event.type, event.message_id) == (EventType.REPLIED, message.pk)
    assert event.payload["matched_by"] == "reply address"


def test_other_inbound_mail_records_nothing(client, flush):
    SentMessageFactory(provider_message_id="pm-0002")
    forged_address = "replies+1.AAAAAAAAAAAAAAAAAAAAAA@mail.example.com"

    for to in ("news@mail.example.com", forged_address):
        assert (
            post_inbound(client, payloads.postmark_inbound(to=to, in_reply_to="<other@elsewhere>")).status_code == 200
        )
    flush()

    assert not MessageEvent.objects.exists()
