"""An A/B campaign end to end through a real Celery worker: created and launched through the API, the
worker sends only the test portion into an SMTP sink, variant B's recipients open it through the open
pixel, the wait passes, the beat task `campaigns.ab.decide` (sent through the broker) picks B with a
significant p-value, and the rest gets B, everyone exactly once.

Time moves by moving the test's send times back by the wait, never by sleeping through it."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from campaigns.models import Campaign, Message, MessageStatus
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from campaigns.tests.test_e2e_send import smtp_env
from campaigns.tests.test_e2e_sequences import run_task, wait_until
from conftest import bearer_client
from contacts.tests.factories import ContactFactory, TagFactory
from tracking import buffer, conf

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
M = MessageStatus
CONTACTS = 100
WAIT_HOURS = 0.01  # 36 seconds
AB_TEST = {"test_fraction": 0.3, "metric": "open_rate", "wait_hours": WAIT_HOURS, "on_no_winner": "first"}
PIXEL = re.compile(r"/t/o/([^\"'\s>]+)\.gif")
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def subjects_by_recipient(sink) -> dict[str, list[str]]:
    received: dict[str, list[str]] = {}
    for recipients, email in sink.received:
        for address in recipients:
            received.setdefault(address, []).append(email["Subject"])
    return received


def dispatch_until(worker, predicate, what: str, timeout: float = 120) -> None:
    """Run the beat's dispatch through the broker until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_task(worker, "campaigns.dispatch.due")
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log[-4000:]}")


def test_an_ab_campaign_sends_its_test_then_the_winner_to_the_rest(start_worker, smtp_sink, settings, client):
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        buffer.client().delete(conf.stream_key())  # events another run left behind are not this database's
    worker = start_worker(env=smtp_env(smtp_sink))
    owner = MembershipFactory(role=Role.MANAGER)
    org = owner.organization
    sends_from(org, "news@mail.example.com")
    vip = TagFactory(organization=org, name="vip")
    contacts = [
        ContactFactory(organization=org, email=f"person{i}@example.com", first_name=f"Person{i}", tags=[vip])
        for i in range(CONTACTS)
    ]
    templates = {
        name: EmailTemplateFactory(
            organization=org,
            name=f"Spring {name}",
            subject=f"Spring sale {name}",
            html_body='<html><body><p>Dear {{ contact.first_name }},</p><a href="https://shop.example.com/">Shop</a>'
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
        )
        for name in ("A", "B")
    }

    api = bearer_client(owner.user, org)
    created = api.post(
        "/api/v1/campaigns/",
        {
            "name": "Spring sale",
            "channel": "email",
            "variants": [{"name": name, "template": str(t.pk), "weight": 1} for name, t in templates.items()],
            "audience": {"tags": ["vip"]},
            "ab_test": AB_TEST,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    campaign_id = created.json()["id"]
    assert created.json()["ab_test"] == AB_TEST
    launched = api.post(f"/api/v1/campaigns/{campaign_id}/launch")
    assert launched.status_code == 200, launched.content

    # The worker expands the whole audience, holds the rest and plans only the test.
    messages = Message.objects.filter(campaign_id=campaign_id)
    wait_until(
        lambda: messages.count() == CONTACTS and not messages.filter(status=M.PLANNED).exists(),
        60,
        worker,
        "the expansion",
    )
    held = dict(messages.filter(status=M.HELD).values_list("contact__email", "pk"))
    test = messages.filter(variant__isnull=False)
    test_size = test.count()
    assert test_size == CONTACTS - len(held)
    assert test_size == pytest.approx(CONTACTS * AB_TEST["test_fraction"], abs=2)
    by_variant = Counter(test.values_list("variant__name", flat=True))
    assert set(by_variant) == {"A", "B"}

    # Only the test goes out; the held rest stays held whatever dispatch runs.
    dispatch_until(worker, lambda: len(smtp_sink.received) >= test_size, "the test to be sent")
    wait_until(lambda: set(test.values_list("status", flat=True)) == {M.SENT}, 30, worker, "the test to be sent")
    run_task(worker, "campaigns.dispatch.due")
    assert len(smtp_sink.received) == test_size
    assert not set(smtp_sink.addresses()) & set(held)
    assert messages.filter(status=M.HELD).count() == len(held)
    assert Campaign.objects.get(pk=campaign_id).status == "running"

    # Variant B's recipients open the message: their mail clients fetch its open pixel.
    b_mails = [email for _, email in smtp_sink.received if email["Subject"] == "Spring sale B"]
    assert len(b_mails) == by_variant["B"]
    for email in b_mails:
        html = next(part for part in email.walk() if part.get_content_type() == "text/html").get_payload(decode=True)
        [token] = PIXEL.findall(html.decode())
        assert client.get(f"/t/o/{token}.gif", HTTP_USER_AGENT=BROWSER).status_code == 200
    run_task(worker, "tracking.flush")  # a no-op where the pixel stored its open at once
    wait_until(
        lambda: set(test.filter(variant__name="B").values_list("status", flat=True)) == {M.OPENED},
        30,
        worker,
        "B's opens",
    )
    assert not test.filter(variant__name="A", status=M.OPENED).exists()

    # Within the wait the beat's decision leaves the test alone.
    waiting = api.get(f"/api/v1/campaigns/{campaign_id}/stats").json()["ab_test"]
    assert (waiting["status"], waiting["winner"], waiting["held"]) == ("waiting", None, len(held))
    due = datetime.fromisoformat(waiting["decision_due_at"])
    last_sent = test.order_by("-sent_at").values_list("sent_at", flat=True)[0]
    assert abs(due - (last_sent + timedelta(hours=WAIT_HOURS))) < timedelta(seconds=1)
    run_task(worker, "campaigns.ab.decide")
    assert timezone.now() < due, "the test took longer than the wait; the early decision proves nothing"
    assert Campaign.objects.get(pk=campaign_id).ab_result == {}
    assert messages.filter(status=M.HELD).count() == len(held)

    # The wait passes; the beat's decision picks B and plans the rest with B's template.
    test.update(sent_at=F("sent_at") - timedelta(hours=WAIT_HOURS))
    run_task(worker, "campaigns.ab.decide")
    result = Campaign.objects.get(pk=campaign_id).ab_result
    assert (result["winner"], result["decided_by"], result["significant"]) == ("B", "auto", True)
    assert result["p_value"] < 0.05
    assert not messages.filter(status=M.HELD).exists()
    assert set(messages.filter(pk__in=held.values()).values_list("variant__name", flat=True)) == {"B"}

    dispatch_until(
        worker, lambda: Campaign.objects.get(pk=campaign_id).status == "completed", "the rest to be sent", 180
    )

    received = Counter(smtp_sink.addresses())
    assert received == {contact.email: 1 for contact in contacts}
    subjects = subjects_by_recipient(smtp_sink)
    assert {address: subjects[address] for address in held} == {address: ["Spring sale B"] for address in held}
    assert Counter(subject for [subject] in subjects.values()) == {
        "Spring sale A": by_variant["A"],
        "Spring sale B": by_variant["B"] + len(held),
    }
    provider_ids = set(messages.values_list("provider_message_id", flat=True))
    assert {email["Message-ID"].strip("<>") for _, email in smtp_sink.received} == provider_ids

    stats = api.get(f"/api/v1/campaigns/{campaign_id}/stats")
    assert stats.status_code == 200, stats.content
    decided = stats.json()["ab_test"]
    assert (decided["status"], decided["winner"], decided["decided_by"]) == ("decided", "B", "auto")
    assert decided["p_value"] < 0.05
    assert decided["significant"] is True
    assert (decided["test_size"], decided["held"]) == (test_size, 0)
    figures = {row["variant"]: row for row in decided["per_variant"]}
    assert (figures["B"]["sent"], figures["B"]["opened"], figures["B"]["rate"]) == (by_variant["B"], by_variant["B"], 1)
    assert (figures["A"]["sent"], figures["A"]["opened"], figures["A"]["rate"]) == (by_variant["A"], 0, 0)
    assert stats.json()["kpis"]["sent"] == CONTACTS
