"""Drip sequences end to end through real Celery workers: a tag added through the API starts a
sequence whose steps a worker writes (`campaigns.sequences.advance`) and sends (`campaigns.dispatch.due`
and the send tasks) into an SMTP sink, until a reply through the inbound webhook stops it; and a worker
killed with SIGKILL in the middle of advancing, then a new one: every step message once, none sent twice.

Time moves by moving the enrollments' `next_message_at` back by a step's delay, never by sleeping."""

from __future__ import annotations

import base64
import json
import logging
import signal
import time
from collections import Counter, defaultdict
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from campaigns import sequences
from campaigns.models import Enrollment, EnrollmentStatus, Message, MessageStatus, Sequence, message_step
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from campaigns.tests.test_e2e_send import smtp_env
from config.celery import app as celery_app
from conftest import bearer_client
from contacts.models import Contact
from contacts.tests.factories import ContactFactory
from tracking import buffer, conf

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
E = EnrollmentStatus
M = MessageStatus
WEBHOOK_USER, WEBHOOK_PASSWORD = "hooks", "e2e-webhook-password"


def run_task(worker, name: str, timeout: float = 60) -> None:
    """Send the beat task `name` through the broker and wait until the worker has run it."""
    task_id = celery_app.send_task(name).id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = worker.log
        if f"[{task_id}] succeeded" in log:
            return
        if f"[{task_id}] raised" in log or worker.process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{name} did not succeed in the worker; its log:\n{worker.log[-4000:]}")


def wait_until(predicate, timeout: float, worker, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log[-4000:]}")


def make_sequence(organization, *, trigger: dict, delays_minutes: list[int]) -> Sequence:
    """An active email sequence of len(delays_minutes) steps, step n's subject "Step n for <first name>"."""
    steps = [
        {
            "order": n,
            "delay": {"unit": "minutes", "value": delay},
            "template": str(
                EmailTemplateFactory(
                    organization=organization, name=f"Step {n}", subject=f"Step {n} for {{{{ contact.first_name }}}}"
                ).pk
            ),
        }
        for n, delay in enumerate(delays_minutes, start=1)
    ]
    sequence = sequences.sequence_save(
        sequence=Sequence(organization=organization, name="Trial drip", channel="email"), trigger=trigger, steps=steps
    )
    sequences.sequence_activate(sequence=sequence)
    sequence.refresh_from_db()
    return sequence


def minutes_pass(sequence: Sequence, minutes: int) -> None:
    """`minutes` go by for the sequence's active enrollments."""
    Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE).update(
        next_message_at=F("next_message_at") - timedelta(minutes=minutes)
    )


def subjects_by_recipient(sink) -> dict[str, list[str]]:
    received = defaultdict(list)
    for recipients, email in sink.received:
        for address in recipients:
            received[address].append(email["Subject"])
    return dict(received)


def post_reply(client, *, in_reply_to: str, to: str):
    """A reply as Postmark's inbound webhook posts it (a JSON message with its headers)."""
    body = {
        "FromName": "Ana",
        "MessageStream": "inbound",
        "From": "ana@example.com",
        "FromFull": {"Email": "ana@example.com", "Name": "Ana", "MailboxHash": ""},
        "To": to,
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "OriginalRecipient": to,
        "Subject": "Re: Step 2 for Ana",
        "MessageID": "7c5a34e1-2a0b-4c41-9d3b-4a7d6a1f0e21",
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Tue, 1 Dec 2026 16:45:32 +01:00",
        "TextBody": "Please call me tomorrow.\n\n> Step 2 for Ana",
        "HtmlBody": "<p>Please call me tomorrow.</p>",
        "StrippedTextReply": "Please call me tomorrow.",
        "Tag": "",
        "Headers": [
            {"Name": "In-Reply-To", "Value": in_reply_to},
            {"Name": "References", "Value": in_reply_to},
            {"Name": "Message-ID", "Value": "<reply-0001@example.com>"},
        ],
        "Attachments": [],
    }
    credentials = base64.b64encode(f"{WEBHOOK_USER}:{WEBHOOK_PASSWORD}".encode()).decode()
    return client.post(
        "/anymail/postmark/inbound/",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )


def test_a_tag_starts_a_drip_that_a_worker_sends_step_by_step_until_a_reply_stops_it(
    start_worker, smtp_sink, settings, client
):
    # The inbound webhook of the configured provider, in this (the web) process.
    settings.ANYMAIL_ESP_NAME = "postmark"
    settings.ANYMAIL = {"WEBHOOK_SECRET": f"{WEBHOOK_USER}:{WEBHOOK_PASSWORD}"}
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        buffer.client().delete(conf.stream_key())  # events another run left behind are not this database's
    worker = start_worker(env=smtp_env(smtp_sink))
    owner = MembershipFactory(role=Role.MANAGER)
    org = owner.organization
    sends_from(org, "news@mail.example.com")
    sequence = make_sequence(org, trigger={"type": "tag_added", "value": "trial"}, delays_minutes=[5, 30, 60])
    ana = ContactFactory(organization=org, email="ana@example.com", first_name="Ana")
    ben = ContactFactory(organization=org, email="ben@example.com", first_name="Ben")
    cleo = ContactFactory(organization=org, email="cleo@example.com", first_name="Cleo")

    api = bearer_client(owner.user, org)
    for contact, tags in ((ana, ["trial"]), (ben, ["trial", "vip"]), (cleo, ["vip"])):
        response = api.patch(f"/api/v1/contacts/{contact.public_id}/", {"tags": tags}, format="json")
        assert response.status_code == 200, response.content

    enrollments = Enrollment.objects.filter(sequence=sequence)
    assert set(enrollments.values_list("contact_id", "status", "current_step")) == {
        (ana.pk, E.ACTIVE, 0),
        (ben.pk, E.ACTIVE, 0),
    }
    in_five = timezone.now() + timedelta(minutes=5)
    for due in enrollments.values_list("next_message_at", flat=True):
        assert abs(due - in_five) < timedelta(seconds=30)

    # Not due yet: the tick writes nothing.
    run_task(worker, "campaigns.sequences.advance")
    assert not Message.objects.filter(campaign_id=sequence.campaign_id).exists()

    def step(order: int, minutes: int, recipients: set[str]) -> None:
        """`minutes` pass, a tick writes step `order`, dispatch sends it."""
        before = len(smtp_sink.received)
        minutes_pass(sequence, minutes)
        run_task(worker, "campaigns.sequences.advance")
        written = Message.objects.filter(campaign_id=sequence.campaign_id, step=message_step(1, order))
        assert set(written.values_list("to_address", flat=True)) == recipients
        run_task(worker, "campaigns.dispatch.due")
        wait_until(lambda: len(smtp_sink.received) == before + len(recipients), 60, worker, f"step {order}")
        wait_until(lambda: set(written.values_list("status", flat=True)) == {M.SENT}, 30, worker, "sent")
        # The next step waits for its own delay: a tick right away writes nothing more.
        run_task(worker, "campaigns.sequences.advance")
        assert Message.objects.filter(campaign_id=sequence.campaign_id).count() == before + len(recipients)

    step(1, 5, {"ana@example.com", "ben@example.com"})
    assert set(enrollments.values_list("current_step", flat=True)) == {1}
    step(2, 30, {"ana@example.com", "ben@example.com"})

    # Ana replies to step 2 through the provider's inbound webhook; the worker's flush stores the
    # reply (a no-op where the webhook stored it at once) and the reply stops her enrollment.
    step_two = next(email for recipients, email in smtp_sink.received if email["Subject"] == "Step 2 for Ana")
    assert step_two["To"] == "ana@example.com"
    assert post_reply(client, in_reply_to=step_two["Message-ID"], to="news@mail.example.com").status_code == 200
    run_task(worker, "tracking.flush")
    wait_until(lambda: enrollments.get(contact=ana).status == E.STOPPED, 30, worker, "the reply to stop Ana")
    stopped = enrollments.get(contact=ana)
    assert (stopped.stop_reason, stopped.current_step, stopped.next_message_at) == ("replied", 2, None)
    assert sequences.sequence_stats(sequence=sequence)[1]["replied"] == 1

    step(3, 60, {"ben@example.com"})
    assert not Message.objects.filter(campaign_id=sequence.campaign_id, step=message_step(1, 3), contact_id=ana.pk)
    assert subjects_by_recipient(smtp_sink) == {
        "ana@example.com": ["Step 1 for Ana", "Step 2 for Ana"],
        "ben@example.com": ["Step 1 for Ben", "Step 2 for Ben", "Step 3 for Ben"],
    }
    done = enrollments.get(contact=ben)
    assert (done.status, done.current_step, done.next_message_at) == (E.COMPLETED, 3, None)
    provider_ids = set(
        Message.objects.filter(campaign_id=sequence.campaign_id).values_list("provider_message_id", flat=True)
    )
    assert {email["Message-ID"].strip("<>") for _, email in smtp_sink.received} == provider_ids


# --- a worker killed while advancing -----------------------------------------------------------------------

FIRST_BATCH = sequences.ADVANCE_BATCH  # the task's first transaction takes this many, then loops
SECOND_BATCH = 300


def blocker_connection():
    """A connection of its own to the test database, in a transaction."""
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        autocommit=False,
    )


def session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def waiting_writer(other_than: int) -> int | None:
    """The pid of a session (not `other_than`'s) whose INSERT into campaigns_message waits for a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), %s)
              AND state = 'active' AND wait_event_type = 'Lock' AND query LIKE %s
            """,
            [other_than, "%INSERT INTO campaigns_message%"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="observes the worker's transaction in pg_stat_activity")
def test_a_worker_killed_while_advancing_writes_and_sends_every_step_once(start_worker, smtp_sink, caplog):
    caplog.set_level(logging.WARNING, logger="mail.log")  # the sink's line per SMTP command, ten thousand times
    env = {**smtp_env(smtp_sink, lease_seconds=300), "CAMPAIGN_SEND_BATCH": "500"}
    org = MembershipFactory(role=Role.MANAGER).organization
    sends_from(org, "news@mail.example.com")
    sequence = make_sequence(org, trigger={"type": "api"}, delays_minutes=[1, 60])
    count = FIRST_BATCH + SECOND_BATCH
    Contact.objects.bulk_create(
        [
            Contact(organization=org, email=f"person{i}@example.com", email_domain="example.com", first_name=f"P{i}")
            for i in range(count)
        ],
        batch_size=5000,
    )
    ids = list(Contact.objects.filter(organization=org).order_by("id").values_list("pk", flat=True))
    for start in range(0, count, sequences.ENROLL_MAX_IDS):
        sequences.sequence_enroll(sequence=sequence, contact_ids=ids[start : start + sequences.ENROLL_MAX_IDS])
    enrollments = Enrollment.objects.filter(sequence=sequence)
    assert enrollments.filter(status=E.ACTIVE, current_step=0).count() == count
    # All due; the first batch (earliest due) is the first FIRST_BATCH contacts, the rest the second.
    now = timezone.now()
    late = ids[FIRST_BATCH:]
    enrollments.exclude(contact_id__in=late).update(next_message_at=now - timedelta(minutes=2))
    enrollments.filter(contact_id__in=late).update(next_message_at=now - timedelta(minutes=1))
    step_one = Message.objects.filter(campaign_id=sequence.campaign_id, step=message_step(1, 1))

    # Another writer's uncommitted row for one contact of the second batch: the worker's
    # INSERT ... ON CONFLICT waits on it, holding the worker inside its second transaction.
    blocker = blocker_connection()
    blocker.execute(
        """
        INSERT INTO campaigns_message (organization_id, campaign_id, step, contact_id, to_address, status,
            sending_domain, attempts, last_error, created_at)
        VALUES (%s, %s, %s, %s, 'blocker@example.com', %s, '', 0, '', now())
        """,
        [org.pk, sequence.campaign_id, message_step(1, 1), late[-1], M.CANCELLED],
    )
    first = start_worker(env=env)
    try:
        celery_app.send_task("campaigns.sequences.advance")
        wait_until(lambda: waiting_writer(blocker.info.backend_pid), 120, first, "the second transaction")
        backend_pid = waiting_writer(blocker.info.backend_pid)
        assert step_one.count() == FIRST_BATCH  # the first transaction committed; the second is open
        first.stop(sig=signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()
    # The dead worker's session notices once its statement ends; its transaction rolls back.
    wait_until(lambda: not session_alive(backend_pid), 30, first, "the killed worker's session to end")
    assert step_one.count() == FIRST_BATCH
    assert enrollments.filter(current_step=1).count() == FIRST_BATCH
    assert set(enrollments.filter(current_step=0).values_list("contact_id", flat=True)) == set(late)
    assert not smtp_sink.received

    second = start_worker(env=env)
    run_task(second, "campaigns.sequences.advance")
    assert enrollments.filter(status=E.ACTIVE, current_step=1).count() == count
    assert step_one.count() == count
    per_contact = Counter(step_one.values_list("contact_id", flat=True))
    assert set(per_contact) == set(ids)
    assert set(per_contact.values()) == {1}
    # The next step is an hour away: only step 1 was written, once per enrollment.
    assert Message.objects.filter(campaign_id=sequence.campaign_id).count() == count

    deadline = time.monotonic() + 600
    while step_one.exclude(status=M.SENT).exists():
        assert time.monotonic() < deadline, f"not all sent; worker log:\n{second.log[-4000:]}"
        run_task(second, "campaigns.dispatch.due")
        time.sleep(0.5)
    received = Counter(smtp_sink.addresses())
    assert max(received.values()) == 1, [address for address, n in received.items() if n > 1]
    assert set(received) == {f"person{i}@example.com" for i in range(count)}
    run_task(second, "campaigns.sequences.advance")
    assert Message.objects.filter(campaign_id=sequence.campaign_id).count() == count
