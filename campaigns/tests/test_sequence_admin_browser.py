"""A drip sequence built in a real browser by a marketer who types names, not ids or JSON, then run:
a tag added through the REST API enrolls a contact, steps are written with their delays, a reply ends it."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from campaigns import sending, sequences
from campaigns.models import Enrollment, EnrollmentStatus, Message, Sequence, SequenceStatus, StopReason, message_step
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from contacts.tests.factories import ContactFactory
from tracking import services as tracking_services
from tracking.models import EventType
from tracking.records import EventRecord, hit_key

pytestmark = pytest.mark.django_db(transaction=True)


def step_message(sequence, order):
    return Message.objects.filter(campaign_id=sequence.campaign_id, step=message_step(1, order)).first()


def send_due(now) -> None:
    """The send pipeline's own dispatch and send, as the beat and the workers run them."""
    for ids, lease in sending.dispatch_due(now=now).batches:
        sending.send_batch(message_ids=ids, lease=datetime.fromisoformat(lease))  # a no-op if already sent


def test_a_marketer_builds_a_tag_triggered_sequence_that_runs_until_a_reply(
    admin_page, chromium, live_server, mailoutbox
):
    organization = OrganizationFactory(name="Acme")
    sends_from(organization)
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    for name in ("Welcome aboard", "Getting started tips", "A gift for you"):
        EmailTemplateFactory(organization=organization, name=name, subject=f"{name}, {{{{ contact.first_name }}}}")
    EmailTemplateFactory(organization=organization, name="Text reminder", channel="sms", html_body="", text_body="Hi")
    EmailTemplateFactory(name="Globex newsletter")  # another organization's
    ada = ContactFactory(organization=organization, email="ada@example.org", first_name="Ada")
    page = admin_page(marketer.user, PASSWORD)

    # The sequence: a name, a trigger and its settings, by clicking and typing.
    page.goto("/admin/")
    page.get_by_role("link", name="Sequences").first.click()
    page.get_by_role("link", name="Add sequence").click()
    page.fill("#id_name", "Onboarding")
    page.select_option("#id_channel", label="Email")
    page.select_option("#id_trigger_type", label="Tag added")
    page.fill("#id_trigger_value", "vip")
    assert page.is_checked("#id_stop_on_reply")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".messagelist .success").wait_for()
    sequence = Sequence.objects.get(name="Onboarding")
    assert (sequence.trigger_type, sequence.trigger_value, sequence.status) == ("tag_added", "vip", "draft")

    # Its three steps, on the page the save led to; templates are picked by name.
    offered = page.locator("#id_steps-0-template option").all_inner_texts()
    assert "Welcome aboard" in offered
    assert "Text reminder" not in offered  # another channel
    assert "Globex newsletter" not in offered  # another organization
    steps = [
        ("1", "0", "days", "Welcome aboard", None),
        ("2", "2", "days", "Getting started tips", None),
        ("3", "3", "days", "A gift for you", "Only if the previous message was opened"),
    ]
    for row, (order, wait, unit, template, condition) in enumerate(steps):
        page.fill(f"#id_steps-{row}-order", order)
        page.fill(f"#id_steps-{row}-delay_value", wait)
        page.select_option(f"#id_steps-{row}-delay_unit", label=unit)
        page.select_option(f"#id_steps-{row}-template", label=template)
        if condition:
            page.select_option(f"#id_steps-{row}-condition_type", label=condition)
    # A slip first: the second step without a wait is refused on its own row, and nothing is lost.
    page.fill("#id_steps-1-delay_value", "0")
    page.get_by_role("button", name="Save and continue editing").click()
    page.locator(".errornote").wait_for()
    assert "A later step needs a delay greater than 0." in page.locator("#steps-1").inner_text()
    assert page.input_value("#id_steps-2-order") == "3"
    page.fill("#id_steps-1-delay_value", "2")
    page.get_by_role("button", name="Save and continue editing").click()
    page.locator(".messagelist .success").wait_for()
    assert list(sequence.steps.order_by("order").values_list("template__name", "delay_value")) == [
        ("Welcome aboard", 0),
        ("Getting started tips", 2),
        ("A gift for you", 3),
    ]

    page.get_by_role("button", name="Activate").click()
    page.locator(".messagelist .success").wait_for()
    assert "Onboarding: activated." in page.locator(".messagelist").inner_text()
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.ACTIVE

    # The contact is tagged through the REST API, as a client app would.
    api = chromium.new_context(base_url=live_server.url).request
    login = api.post("/api/v1/auth/login", data={"email": marketer.user.email, "password": PASSWORD})
    assert login.status == 200, login.text()
    bearer = {"Authorization": f"Bearer {login.json()['access']}"}
    found = api.get("/api/v1/contacts/?q=ada@example.org", headers=bearer)
    assert found.status == 200, found.text()
    [listed] = found.json()["results"]
    assert listed["id"] == str(ada.public_id)
    tagged = api.patch(f"/api/v1/contacts/{listed['id']}/", data={"tags": ["VIP"]}, headers=bearer)
    assert tagged.status == 200, tagged.text()

    page.goto("/admin/")
    page.get_by_role("link", name="Enrollments").first.click()
    row = page.locator("#result_list tbody tr", has_text="ada@example.org")
    assert "Onboarding" in row.inner_text()
    assert "Active" in row.inner_text()
    enrollment = Enrollment.objects.get(sequence=sequence, contact=ada)

    # Time moves on: step 1 at once, step 2 two days after step 1, never earlier.
    start = timezone.now()
    sequences.enrollments_advance(now=start + timedelta(seconds=1))
    first = step_message(sequence, 1)
    assert first is not None
    assert first.to_address == "ada@example.org"
    assert step_message(sequence, 2) is None
    send_due(start + timedelta(seconds=2))
    assert [(m.to, m.subject) for m in mailoutbox] == [(["ada@example.org"], "Welcome aboard, Ada")]
    sequences.enrollments_advance(now=start + timedelta(days=1))
    assert step_message(sequence, 2) is None
    sequences.enrollments_advance(now=start + timedelta(days=2, seconds=2))
    second = step_message(sequence, 2)
    assert second is not None
    assert second.scheduled_at - first.scheduled_at >= timedelta(days=2)
    send_due(start + timedelta(days=2, seconds=3))
    assert [m.subject for m in mailoutbox] == ["Welcome aboard, Ada", "Getting started tips, Ada"]
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.current_step) == (EnrollmentStatus.ACTIVE, 2)

    # Ada replies to step 2: the reply comes in through tracking's ingest and ends her enrollment.
    tracking_services.event_ingest_batch(
        records=[
            EventRecord(
                type=EventType.REPLIED,
                occurred_at=start + timedelta(days=2, hours=1),
                dedupe_key=hit_key(),
                message_id=second.pk,
            )
        ]
    )
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.stop_reason) == (EnrollmentStatus.STOPPED, StopReason.REPLIED)

    page.reload()
    row = page.locator("#result_list tbody tr", has_text="ada@example.org")
    assert "Stopped" in row.inner_text()
    assert "Replied" in row.inner_text()
    page.get_by_role("link", name="Replied").first.click()  # the "By stop reason" filter
    page.wait_for_url("**/enrollment/?stop_reason__exact=replied")
    page.locator("#result_list").wait_for()
    assert "ada@example.org" in page.locator("#result_list tbody tr").all_inner_texts()[0]
    assert page.locator("#result_list tbody tr").count() == 1

    # The step that was still to come is never written; the sequence's page tells the story.
    sequences.enrollments_advance(now=start + timedelta(days=30))
    assert step_message(sequence, 3) is None
    page.goto(f"/admin/campaigns/sequence/{sequence.pk}/change/")
    stats = page.locator("table.sequence-stats tbody tr").all_inner_texts()
    assert [line.split("\t") for line in stats] == [
        ["1", "Welcome aboard", "1", "0", "0", "0", "0"],
        ["2", "Getting started tips", "1", "0", "0", "1", "1"],
        ["3", "A gift for you", "0", "0", "0", "0", "0"],
    ]
    assert "Stopped: 1" in page.locator(".field-enrollment_summary").inner_text()
