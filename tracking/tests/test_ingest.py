"""Ingestion rules beyond statuses: uniqueness, IP anonymization, hooks for drips."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts import hooks
from tracking import services
from tracking.models import EventType, MessageEvent
from tracking.records import EventRecord, anonymize_ip, hit_key
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def open_record(message, **fields) -> EventRecord:
    return EventRecord(
        type=fields.pop("type", EventType.OPENED),
        occurred_at=fields.pop("occurred_at", timezone.now()),
        dedupe_key=fields.pop("dedupe_key", hit_key()),
        message_id=message.pk,
        user_agent=BROWSER,
        method="GET",
        ip="2001:db8:85a3:1234:5678:8a2e:370:7334",
        **fields,
    )


def test_ip_addresses_are_anonymized_unless_the_organization_opts_out():
    kept = SentMessageFactory()
    settings = services.tracking_settings_get(organization_id=kept.organization_id)
    settings.anonymize_ips = False
    settings.save()
    anonymized = SentMessageFactory()

    services.event_ingest_batch(records=[open_record(kept), open_record(anonymized)])

    assert MessageEvent.objects.get(message=kept).ip == "2001:db8:85a3:1234:5678:8a2e:370:7334"
    assert MessageEvent.objects.get(message=anonymized).ip == "2001:db8:85a3::"
    assert anonymize_ip("198.51.100.23") == "198.51.100.0"


def test_the_first_human_open_is_the_unique_one_even_within_a_batch_and_across_replays():
    message = SentMessageFactory()
    now = timezone.now()
    later, earlier = open_record(message, occurred_at=now), open_record(message, occurred_at=now - timedelta(seconds=5))
    scanner = open_record(message, occurred_at=now - timedelta(seconds=9))
    scanner.user_agent = "Mozilla/5.0"

    first = services.event_ingest_batch(records=[later, earlier, scanner])
    replay = services.event_ingest_batch(records=[later, earlier, scanner])
    services.event_ingest_batch(records=[open_record(message)])

    assert (first.stored, replay.stored, replay.duplicates) == (3, 0, 3)
    unique = MessageEvent.objects.get(message=message, is_unique=True)
    assert unique.dedupe_key == earlier.dedupe_key
    assert MessageEvent.objects.filter(message=message).count() == 4
    assert MessageEvent.objects.filter(message=message, machine=True).count() == 1


def test_drips_hear_about_replies_unsubscribes_and_complaints(django_capture_on_commit_callbacks):
    replied, unsubscribed, complained = SentMessageFactory(), SentMessageFactory(), SentMessageFactory()
    heard = []

    def receiver(sender, organization_id, name, contacts, properties, occurred_at, **kwargs):
        heard.append((name, set(contacts.values_list("pk", flat=True)), properties))

    hooks.contact_event.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.event_ingest_batch(
                records=[
                    open_record(replied, type=EventType.REPLIED, esp="postmark"),
                    open_record(unsubscribed, type=EventType.UNSUBSCRIBED, esp="mailgun"),
                    open_record(complained, type=EventType.COMPLAINED, esp="amazon_ses"),
                ]
            )
    finally:
        hooks.contact_event.disconnect(receiver)

    names = {name: (contacts, properties) for name, contacts, properties in heard}
    assert names[services.HOOK_REPLIED] == (
        {replied.contact_id},
        {"message_id": str(replied.pk), "campaign_id": str(replied.campaign_id)},
    )
    assert names[services.HOOK_UNSUBSCRIBED][0] == {unsubscribed.contact_id}
    assert names[services.HOOK_COMPLAINED][0] == {complained.contact_id}
