"""Analytics end to end through a real Celery worker: a campaign launched through the API is sent into
an SMTP sink, some recipients open it through the pixel and click a link, one buys (a conversion through
the API), and the beat task `analytics.rollup`, sent through the broker, writes the daily rows the
campaign analytics API then reads: the same figures as happened, with revenue and ROI."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from analytics.models import DailyStat, LinkDailyStat, RollupState
from campaigns.models import Message, MessageStatus
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from campaigns.tests.test_e2e_ab import BROWSER, dispatch_until
from campaigns.tests.test_e2e_send import smtp_env
from campaigns.tests.test_e2e_sequences import run_task, wait_until
from conftest import bearer_client
from contacts.tests.factories import ContactFactory, TagFactory
from tracking import buffer, conf
from tracking.models import TrackingSettings

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
M = MessageStatus
CONTACTS = 12
OPENERS = 5
CLICKERS = 2
PIXEL = re.compile(r"/t/o/([^\"'\s>]+)\.gif")
LINK = re.compile(r"/t/c/([^\"'\s>]+)")


def test_the_rollup_task_writes_what_happened_and_the_api_reads_it(start_worker, smtp_sink, client):
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        buffer.client().delete(conf.stream_key())
    worker = start_worker(env=smtp_env(smtp_sink))
    member = MembershipFactory(role=Role.MANAGER)
    org = member.organization
    sends_from(org, "news@mail.example.com")
    # The recipients click within a second of the send here; link scanners do that, people seldom.
    TrackingSettings.objects.create(organization=org, machine_window_seconds=0)
    tag = TagFactory(organization=org, name="buyers")
    contacts = [
        ContactFactory(organization=org, email=f"buyer{i}@example.com", first_name=f"B{i}", tags=[tag])
        for i in range(CONTACTS)
    ]
    template = EmailTemplateFactory(
        organization=org,
        subject="Autumn sale",
        html_body='<html><body><p>Hi {{ contact.first_name }}</p><a href="https://shop.example.com/autumn">Shop</a>'
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
    )
    api = bearer_client(member.user, org)
    created = api.post(
        "/api/v1/campaigns/",
        {
            "name": "Autumn sale",
            "channel": "email",
            "template": str(template.pk),
            "audience": {"tags": ["buyers"]},
            "budget": "100.00",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    campaign_id = created.json()["id"]
    assert api.post(f"/api/v1/campaigns/{campaign_id}/launch").status_code == 200

    messages = Message.objects.filter(campaign_id=campaign_id)
    wait_until(lambda: messages.count() == CONTACTS, 60, worker, "the expansion")
    dispatch_until(worker, lambda: messages.filter(status=M.SENT).count() == CONTACTS, "the campaign to be sent")
    assert len(smtp_sink.received) == CONTACTS

    # Some open it (their mail clients fetch the pixel), two of them click the link.
    mails = sorted(smtp_sink.received, key=lambda item: item[0][0])
    for n, (_recipients, email) in enumerate(mails[:OPENERS]):
        html = next(part for part in email.walk() if part.get_content_type() == "text/html").get_payload(decode=True)
        text = html.decode()
        [pixel] = PIXEL.findall(text)
        assert client.get(f"/t/o/{pixel}.gif", HTTP_USER_AGENT=BROWSER).status_code == 200
        if n < CLICKERS:
            link = next(token for token in LINK.findall(text))
            assert client.get(f"/t/c/{link}", HTTP_USER_AGENT=BROWSER).status_code == 302
    run_task(worker, "tracking.flush")
    wait_until(lambda: messages.filter(status__in=[M.OPENED, M.CLICKED]).count() == OPENERS, 30, worker, "the opens")

    # A clicker buys: the conversion goes to the message they clicked.
    buyer = mails[0][0][0]
    bought = api.post("/api/v1/conversions/", {"contact": buyer, "value": "150.00", "currency": "EUR"}, format="json")
    assert bought.status_code == 201, bought.content
    assert (bought.json()["attribution"], str(bought.json()["campaign"])) == ("click", campaign_id)

    run_task(worker, "analytics.rollup")
    assert RollupState.objects.filter(source="events").exists()
    rows = DailyStat.objects.filter(organization_id=org.pk, campaign_id=campaign_id)
    stored = {name: sum(getattr(row, name) for row in rows) for name in ("sent", "opened", "clicked", "conversions")}
    assert stored == {"sent": CONTACTS, "opened": OPENERS, "clicked": CLICKERS, "conversions": 1}
    assert sum(row.revenue for row in rows) == Decimal("150.00")
    links = LinkDailyStat.objects.filter(campaign_id=campaign_id)
    assert {(row.url, row.clicks) for row in links} == {("https://shop.example.com/autumn", CLICKERS)}

    report = api.get(f"/api/v1/analytics/campaigns/{campaign_id}")
    assert report.status_code == 200, report.content
    body = report.json()
    totals = body["totals"]["counters"]
    assert (totals["sent"], totals["opened"], totals["clicked"], totals["conversions"]) == (
        CONTACTS,
        OPENERS,
        CLICKERS,
        1,
    )
    assert body["totals"]["rates"]["open_rate"] == round(OPENERS / CONTACTS, 4)
    assert Decimal(str(body["revenue"])) == Decimal("150.00")
    assert Decimal(str(body["roi"])) == Decimal("0.5")  # (150 - 100) / 100
    assert [(link["url"], link["clicks"]) for link in body["links"]] == [("https://shop.example.com/autumn", 2)]
    assert {c.email for c in contacts} == set(smtp_sink.addresses())
