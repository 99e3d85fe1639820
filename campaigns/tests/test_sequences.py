"""Drip sequences: configuration rules, triggers through the real hooks, advancing, stopping, the cap."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from campaigns import sending, sequences
from campaigns.models import (
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    SendingPolicy,
    Sequence,
    SequenceStatus,
    StopReason,
    message_step,
)
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from config.errors import ConflictError
from contacts import services as contact_services
from contacts.models import Contact, ContactStatus
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db
M = MessageStatus
E = EnrollmentStatus


def make_sequence(organization=None, *, steps=3, trigger=None, settings=None, activate=True, conditions=None):
    organization = organization or OrganizationFactory()
    sends_from(organization)
    templates = [
        EmailTemplateFactory(
            organization=organization, name=f"Step {i}", subject=f"Step {i} for {{{{ contact.first_name }}}}"
        )
        for i in range(1, steps + 1)
    ]
    step_data = [
        {
            "order": i + 1,
            "delay": {"unit": "days", "value": 0 if i == 0 else 2},
            "template": str(template.pk),
            **({"condition": conditions[i]} if conditions and conditions.get(i) else {}),
        }
        for i, template in enumerate(templates)
    ]
    sequence = sequences.sequence_save(
        sequence=Sequence(organization=organization, name="Welcome", channel="email"),
        trigger=trigger or {"type": "api"},
        settings=settings or {},
        steps=step_data,
    )
    if activate:
        sequences.sequence_activate(sequence=sequence)
        sequence.refresh_from_db()
    return sequence


def step_messages(sequence, order, entry=1):
    return Message.objects.filter(campaign_id=sequence.campaign_id, step=message_step(entry, order))


# --- configuration ------------------------------------------------------------------------------------------


def test_bad_steps_name_the_field():
    organization = OrganizationFactory()
    template = EmailTemplateFactory(organization=organization)
    other = EmailTemplateFactory()
    sms = EmailTemplateFactory(organization=organization, channel="sms", subject="", html_body="", text_body="Hi")
    cases = [
        ([{"order": 1, "delay": {"unit": "days", "value": 0}}], "steps.0.template"),
        ([{"order": 1, "template": str(other.pk)}], "steps.0.template"),
        ([{"order": 1, "template": str(sms.pk)}], "steps.0.template"),
        ([{"order": 1, "template": "not-an-id"}], "steps.0.template"),
        (
            [
                {"order": 1, "template": str(template.pk)},
                {"order": 3, "template": str(template.pk), "delay": {"unit": "days", "value": 1}},
            ],
            "steps.1.order",
        ),
        (
            [
                {"order": 1, "template": str(template.pk)},
                {"order": 2, "template": str(template.pk), "delay": {"unit": "days", "value": 0}},
            ],
            "steps.1.delay.value",
        ),
        (
            [{"order": 1, "template": str(template.pk), "delay": {"unit": "fortnights", "value": 1}}],
            "steps.0.delay.unit",
        ),
        (
            [{"order": 1, "template": str(template.pk), "condition": {"type": "opened_previous"}}],
            "steps.0.condition.type",
        ),
        ([{"order": 1, "template": str(template.pk), "condition": {"rules": {"bogus": 1}}}], "steps.0.condition.rules"),
    ]
    for steps, path in cases:
        with pytest.raises(ValidationError) as caught:
            sequences.sequence_save(
                sequence=Sequence(organization=organization, name="S", channel="email"),
                trigger={"type": "manual"},
                steps=steps,
            )
        assert path in caught.value.message_dict, (steps, caught.value.message_dict)
    with pytest.raises(ValidationError) as caught:
        sequences.trigger_clean({"type": "whenever"})
    assert "trigger.type" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        sequences.trigger_clean({"type": "tag_added"})
    assert "trigger.value" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        sequences.settings_clean({"whatever": True})
    assert "settings" in caught.value.message_dict
    assert Sequence.objects.count() == 0


def test_steps_reached_by_active_enrollments_cannot_be_removed():
    sequence = make_sequence(steps=3)
    contact = ContactFactory(organization=sequence.organization)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    Enrollment.objects.filter(sequence=sequence).update(current_step=2)
    template = sequence.steps.get(order=1).template
    with pytest.raises(ValidationError) as caught:
        sequences.sequence_save(sequence=sequence, steps=[{"order": 1, "template": str(template.pk)}])
    assert "steps" in caught.value.message_dict
    # Adding a step after them is fine.
    steps = [
        {"order": s.order, "delay": {"unit": s.delay_unit, "value": s.delay_value}, "template": str(s.template_id)}
        for s in sequence.steps.order_by("order")
    ]
    steps.append({"order": 4, "delay": {"unit": "hours", "value": 5}, "template": str(template.pk)})
    sequences.sequence_save(sequence=sequence, steps=steps)
    assert sequence.steps.count() == 4
    assert sequence.steps.get(order=4).template_version_id  # a live sequence sends the new step's version


def test_state_machine():
    sequence = make_sequence(activate=False)
    assert sequence.campaign.status == "draft"
    sequences.sequence_activate(sequence=sequence)
    sequence.refresh_from_db()
    assert (sequence.status, sequence.campaign.status) == ("active", "running")
    with pytest.raises(ConflictError):
        sequences.sequence_activate(sequence=sequence)
    sequences.sequence_pause(sequence=sequence)
    sequence.refresh_from_db()
    assert (sequence.status, sequence.campaign.status) == ("paused", "paused")
    sequences.sequence_activate(sequence=sequence)
    sequences.sequence_archive(sequence=sequence)
    sequence.refresh_from_db()
    assert (sequence.status, sequence.campaign.status) == ("archived", "cancelled")
    with pytest.raises(ConflictError):
        sequences.sequence_pause(sequence=sequence)


# --- triggers -------------------------------------------------------------------------------------------------


def test_tag_added_enrolls_the_tagged_contacts_in_one_statement(django_capture_on_commit_callbacks):
    sequence = make_sequence(trigger={"type": "tag_added", "value": "VIP"})
    organization = sequence.organization
    contacts = [ContactFactory(organization=organization) for _ in range(30)]
    [tag] = contact_services.tags_get_or_create(organization_id=organization.pk, names=["vip"])
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        contact_services.tags_add(contacts=Contact.objects.filter(pk__in=[c.pk for c in contacts]), tags=[tag])
    inserts = [q for q in queries.captured_queries if "INSERT INTO campaigns_enrollment" in q["sql"]]
    assert len(inserts) == 1
    assert Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE).count() == 30


def test_contact_created_and_custom_event_triggers(django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    created = make_sequence(organization, trigger={"type": "contact_created"})
    evented = make_sequence(organization, trigger={"type": "custom_event", "value": "trial_started"})
    with django_capture_on_commit_callbacks(execute=True):
        contact = contact_services.contact_create(organization_id=organization.pk, data={"email": "new@example.org"})
    assert Enrollment.objects.filter(sequence=created, contact=contact).exists()
    assert not Enrollment.objects.filter(sequence=evented).exists()
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.event_record(organization_id=organization.pk, contact=contact, name="trial_started")
    assert Enrollment.objects.filter(sequence=evented, contact=contact).exists()


# --- advancing ------------------------------------------------------------------------------------------------


def test_steps_are_written_with_their_delays_then_complete():
    sequence = make_sequence(steps=3)
    contact = ContactFactory(organization=sequence.organization, first_name="Ada")
    result = sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    assert result.enrolled == 1
    now = timezone.now()
    advanced = sequences.enrollments_advance(now=now + timedelta(seconds=1))
    assert advanced.written == 1
    first = step_messages(sequence, 1).get()
    assert (first.status, first.to_address) == (M.QUEUED, contact.email)
    enrollment = Enrollment.objects.get(sequence=sequence)
    assert enrollment.current_step == 1
    assert enrollment.next_message_at == first.scheduled_at + timedelta(days=2)
    # Nothing more until the delay has passed; a repeat writes nothing twice.
    assert sequences.enrollments_advance(now=now + timedelta(days=1)).written == 0
    assert sequences.enrollments_advance(now=now + timedelta(days=2, seconds=2)).written == 1
    assert sequences.enrollments_advance(now=now + timedelta(days=4, seconds=3)).written == 1
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.current_step, enrollment.exited_at is not None) == (E.COMPLETED, 3, True)
    assert Message.objects.filter(campaign_id=sequence.campaign_id).count() == 3


def test_step_messages_go_out_through_the_broadcast_pipeline(mailoutbox):
    sequence = make_sequence(steps=2)
    contact = ContactFactory(organization=sequence.organization, first_name="Ada")
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
    result = sending.dispatch_due(now=timezone.now() + timedelta(seconds=2))
    for ids, lease in result.batches:
        sending.send_batch(message_ids=ids, lease=datetime.fromisoformat(lease))
    assert [m.subject for m in mailoutbox] == ["Step 1 for Ada"]
    sequence.refresh_from_db()
    assert sequence.campaign.status == "running"  # a sequence's campaign is not completed by dispatch


def test_reply_stops_the_enrollment_and_the_next_step_is_never_written():
    from contacts import hooks

    sequence = make_sequence(steps=2)
    contact = ContactFactory(organization=sequence.organization)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
    sequences.on_contact_event(
        organization_id=sequence.organization_id,
        name="message_replied",
        contacts=Contact.objects.filter(pk=contact.pk),
        properties={},
    )
    enrollment = Enrollment.objects.get(sequence=sequence)
    assert (enrollment.status, enrollment.stop_reason) == (E.STOPPED, StopReason.REPLIED)
    sequences.enrollments_advance(now=timezone.now() + timedelta(days=30))
    assert not step_messages(sequence, 2).exists()
    assert hooks  # the real hook path is covered by the tracking tests


def test_unsubscribe_stops_every_enrollment_of_the_contact(django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    first, second = make_sequence(organization), make_sequence(organization)
    contact = ContactFactory(organization=organization)
    for sequence in (first, second):
        sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.contacts_set_status(
            organization_id=organization.pk,
            contact_ids={contact.pk},
            status=ContactStatus.UNSUBSCRIBED,
            hook="unsubscribed",
        )
    assert set(Enrollment.objects.values_list("status", "stop_reason")) == {(E.STOPPED, StopReason.UNSUBSCRIBED)}


def test_allow_reentry_and_max_new_per_day():
    organization = OrganizationFactory()
    once = make_sequence(organization, steps=1)
    again = make_sequence(organization, steps=1, settings={"allow_reentry": True})
    contact = ContactFactory(organization=organization)
    for sequence in (once, again):
        sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
        sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
        assert Enrollment.objects.get(sequence=sequence).status == E.COMPLETED
    assert sequences.sequence_enroll(sequence=once, contact_ids=[contact.pk]).skipped == {"enrolled_before": 1}
    assert sequences.sequence_enroll(sequence=again, contact_ids=[contact.pk]).enrolled == 1
    sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=2))
    assert step_messages(again, 1, entry=2).count() == 1

    capped = make_sequence(organization, steps=1, settings={"max_new_per_day": 2})
    people = [ContactFactory(organization=organization) for _ in range(5)]
    assert sequences.sequence_enroll(sequence=capped, contact_ids=[p.pk for p in people]).enrolled == 5
    started = Enrollment.objects.filter(sequence=capped, started_at__isnull=False)
    assert started.count() == 2
    assert sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1)).admitted == 0
    assert sequences.enrollments_advance(now=timezone.now() + timedelta(days=1, seconds=1)).admitted == 2
    # The first comers first.
    first_ids = sorted(p.pk for p in people[:4])
    assert sorted(started.values_list("contact_id", flat=True)) == first_ids


def test_conditions_on_the_previous_step():
    sequence = make_sequence(steps=2, conditions={1: {"type": "opened_previous", "otherwise": "exit"}})
    opener, ignorer = (ContactFactory(organization=sequence.organization) for _ in range(2))
    sequences.sequence_enroll(sequence=sequence, contact_ids=[opener.pk, ignorer.pk])
    sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
    step_messages(sequence, 1).update(status=M.SENT, sent_at=timezone.now())
    step_messages(sequence, 1).filter(contact=opener).update(status=M.OPENED)
    sequences.enrollments_advance(now=timezone.now() + timedelta(days=3))
    assert list(step_messages(sequence, 2).values_list("contact_id", flat=True)) == [opener.pk]
    stopped = Enrollment.objects.get(sequence=sequence, contact=ignorer)
    assert (stopped.status, stopped.stop_reason) == (E.STOPPED, StopReason.CONDITION)


def test_business_hours_push_a_step_to_the_next_window():
    sequence = make_sequence(steps=1, settings={"respect_business_hours": True})
    organization = sequence.organization
    organization.timezone = "UTC"
    organization.save()
    SendingPolicy.objects.create(
        organization=organization, window={"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
    )
    contact = ContactFactory(organization=organization)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    saturday_night = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    Enrollment.objects.update(next_message_at=saturday_night)
    sequences.enrollments_advance(now=saturday_night)
    message = step_messages(sequence, 1).get()
    assert message.status == M.QUEUED
    assert message.scheduled_at == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_frequency_cap_delays_the_step_and_says_why():
    sequence = make_sequence(steps=1)
    organization = sequence.organization
    SendingPolicy.objects.create(organization=organization, frequency_cap={"per_day": 1})
    contact = ContactFactory(organization=organization)
    sent_at = timezone.now() - timedelta(hours=3)
    Message.objects.create(
        organization=organization,
        campaign=sequence.campaign,
        step=99,
        contact=contact,
        to_address=contact.email,
        status=M.SENT,
        scheduled_at=sent_at,
        sent_at=sent_at,
    )
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
    message = step_messages(sequence, 1).get()
    assert message.scheduled_at == sent_at + timedelta(days=1)
    assert "frequency cap" in message.last_error


def test_frequency_release_rule():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)]
    planned = t0 + timedelta(hours=3)
    assert sequences.frequency_release(times, planned, per_day=3, per_week=None) == t0 + timedelta(days=1)
    assert sequences.frequency_release(times, planned, per_day=4, per_week=None) == planned
    assert sequences.frequency_release(times, planned, per_day=None, per_week=2) == t0 + timedelta(days=7, hours=1)


def test_other_organizations_contacts_are_not_found():
    sequence = make_sequence()
    stranger = ContactFactory()
    with pytest.raises(Contact.DoesNotExist):
        sequences.sequence_enroll(sequence=sequence, contact_ids=[stranger.pk])
    assert not Enrollment.objects.exists()
    assert sequence.status == SequenceStatus.ACTIVE


def test_erasing_a_contact_stops_its_enrollments_and_nothing_more_is_written(django_capture_on_commit_callbacks):
    sequence = make_sequence(steps=2)
    contact = ContactFactory(organization=sequence.organization)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.contact_erase(contact=contact)
    enrollment = Enrollment.objects.get(sequence=sequence)
    assert (enrollment.status, enrollment.stop_reason) == (E.STOPPED, StopReason.UNSUBSCRIBED)
    assert sequences.enrollments_advance(now=timezone.now() + timedelta(days=9)).written == 0
    assert not Message.objects.filter(campaign_id=sequence.campaign_id).exists()


def test_an_erased_contact_is_stopped_when_its_step_comes_due():
    sequence = make_sequence(steps=2)
    contact = ContactFactory(organization=sequence.organization)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    Contact.objects.filter(pk=contact.pk).update(erased_at=timezone.now(), email=None)  # no hook ran
    result = sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
    assert (result.written, result.stopped) == (0, 1)
    assert Enrollment.objects.get(sequence=sequence).stop_reason == StopReason.UNSUBSCRIBED
