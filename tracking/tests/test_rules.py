"""The forward-only status rule: the pure function, and the SQL built from it, agree everywhere."""

import itertools

import pytest
from django.utils import timezone

from campaigns.models import MessageStatus
from tracking import rules
from tracking.models import EventType, MessageEvent
from tracking.records import EventRecord, hit_key
from tracking.services import event_ingest_batch
from tracking.tests.factories import SentMessageFactory

M = MessageStatus
CONTACT_EFFECTS = (EventType.BOUNCED, EventType.COMPLAINED, EventType.UNSUBSCRIBED)
EVENT_CASES = [(event_type, False) for event_type in EventType.values] + [
    (EventType.OPENED, True),
    (EventType.CLICKED, True),
]


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        (M.SENT, M.DELIVERED, M.DELIVERED),
        (M.OPENED, M.DELIVERED, M.OPENED),  # a late delivered after opened changes nothing
        (M.CLICKED, M.OPENED, M.CLICKED),  # an open after a click does not move it back
        (M.DELIVERED, M.CLICKED, M.CLICKED),
        (M.CLICKED, M.COMPLAINED, M.COMPLAINED),
        (M.BOUNCED, M.CLICKED, M.BOUNCED),  # terminal
        (M.COMPLAINED, M.BOUNCED, M.COMPLAINED),  # terminal
        (M.UNKNOWN, M.DELIVERED, M.DELIVERED),  # the event proves it went out
        (M.SENT, M.FAILED, M.FAILED),
        (M.DELIVERED, M.FAILED, M.DELIVERED),  # a failure report after delivery changes nothing
        (M.QUEUED, M.OPENED, M.QUEUED),  # never sent: events do not touch it
        (M.SENDING, M.DELIVERED, M.SENDING),  # the send task commits `sent` itself
        (M.CANCELLED, M.CLICKED, M.CANCELLED),
        (M.SENT, None, M.SENT),
    ],
)
def test_next_status(current, target, expected):
    assert rules.next_status(current, target) == expected


def test_machine_opens_and_clicks_only_prove_delivery():
    assert rules.event_target(EventType.OPENED, machine=True) == M.DELIVERED
    assert rules.event_target(EventType.CLICKED, machine=True) == M.DELIVERED
    assert rules.event_target(EventType.OPENED) == M.OPENED
    assert rules.event_target(EventType.DEFERRED) is None


def test_movable_from_is_the_rule_seen_from_the_database():
    for status, target in itertools.product(M.values, [*M.values, None]):
        if target is None:
            continue
        moves = rules.next_status(status, target) != status
        assert (status in rules.movable_from(target)) == moves
        if moves:
            assert rules.next_status(status, target) == target


def test_combined_target_prefers_evidence_of_arrival_over_a_failure_report():
    assert rules.combined_target([M.FAILED, M.DELIVERED]) == M.DELIVERED
    assert rules.combined_target([M.OPENED, M.CLICKED, None]) == M.CLICKED
    assert rules.combined_target([M.FAILED]) == M.FAILED
    assert rules.combined_target([None]) is None


@pytest.mark.django_db
def test_the_sql_updates_agree_with_the_function_for_every_status_and_event():
    campaign = SentMessageFactory().campaign
    cases = list(itertools.product(M.values, EVENT_CASES))
    # One contact per message: a bounce or complaint also skips the contact's pending messages.
    messages = [SentMessageFactory(campaign=campaign, status=status) for status, _event in cases]
    now = timezone.now()
    records = [
        EventRecord(
            type=event_type,
            occurred_at=now,
            dedupe_key=hit_key(),
            message_id=message.pk,
            user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
            method="GET",
            esp="" if event_type in (EventType.OPENED, EventType.CLICKED) else "postmark",
        )
        for message, (_status, (event_type, _machine)) in zip(messages, cases, strict=True)
    ]
    for record, (_status, (_type, machine)) in zip(records, cases, strict=True):
        if machine:
            record.user_agent = "Mozilla/5.0"  # Apple's prefetching proxy
            record.method = "HEAD"
    event_ingest_batch(records=records)

    flags = dict(MessageEvent.objects.values_list("message_id", "machine"))
    for message, (status, (event_type, machine)) in zip(messages, cases, strict=True):
        message.refresh_from_db()
        assert flags[message.pk] == machine
        expected = rules.next_status(status, rules.event_target(event_type, machine=machine))
        if status in (M.PLANNED, M.HELD, M.QUEUED) and event_type in CONTACT_EFFECTS:
            expected = M.SKIPPED  # the contact bounced, complained or left: nothing more is sent to them
        assert message.status == expected, (M(status).label, event_type, machine)
