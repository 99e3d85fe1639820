"""A sequence triggered by a custom event starts from a CSV import that records the event: every contact in
the file is enrolled through the real hook, set-based, in a number of queries that does not grow with it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import OrganizationFactory
from campaigns import sequences
from campaigns.models import Enrollment, EnrollmentStatus, Sequence
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from contacts import services as contact_services
from contacts.models import ContactEvent, ImportJob, ImportStatus
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db
E = EnrollmentStatus
EVENT = "webinar_attended"


def event_sequence(organization, event: str = EVENT) -> Sequence:
    sends_from(organization)
    template = EmailTemplateFactory(organization=organization, subject="Thanks for attending")
    sequence = sequences.sequence_save(
        sequence=Sequence(organization=organization, name=f"After {event}", channel="email"),
        trigger={"type": "custom_event", "value": event},
        steps=[{"order": 1, "delay": {"unit": "days", "value": 1}, "template": str(template.pk)}],
    )
    sequences.sequence_activate(sequence=sequence)
    sequence.refresh_from_db()
    return sequence


def rows(count: int, prefix: str = "u") -> str:
    return "email,first_name\n" + "".join(f"{prefix}{i}@example.com,N{i}\n" for i in range(count))


def import_with_event(organization, content: str, capture, event: str = EVENT) -> tuple[ImportJob, list[dict]]:
    """Upload as the API does, run the import (eagerly, on commit) and its hooks; the queries it ran."""
    job = ImportJob(organization=organization, event_name=event)
    with CaptureQueriesContext(connection) as queries, capture(execute=True):
        contact_services.import_start(job=job, uploaded_file=SimpleUploadedFile("c.csv", content.encode()))
    job.refresh_from_db()
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    return job, queries.captured_queries


def statements(queries: list[dict], prefix: str) -> int:
    return sum(1 for q in queries if q["sql"].lstrip().startswith(prefix))


def test_an_import_with_the_event_enrolls_every_contact_in_one_statement(django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    sequence = event_sequence(organization)
    other = event_sequence(organization, event="trial_started")
    ContactFactory(organization=organization, email="u3@example.com")  # already there: updated, and enrolled too
    job, queries = import_with_event(organization, rows(40), django_capture_on_commit_callbacks)
    assert (job.created, job.updated) == (39, 1)
    enrolled = Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE)
    assert sorted(enrolled.values_list("contact__email", flat=True)) == sorted(f"u{i}@example.com" for i in range(40))
    assert not Enrollment.objects.filter(sequence=other).exists()
    assert statements(queries, "INSERT INTO campaigns_enrollment") == 1
    assert statements(queries, "INSERT INTO contacts_contactevent") == 1
    # The first step waits its delay from the import's moment, the time of the event.
    occurred_at = ContactEvent.objects.filter(organization=organization, name=EVENT).values_list(
        "occurred_at", flat=True
    )[0]
    assert {e.entered_at for e in enrolled} == {occurred_at}


def test_enrolling_from_an_import_costs_the_same_queries_for_10_or_200_contacts(django_capture_on_commit_callbacks):
    counts = {}
    for size in (10, 200):
        organization = OrganizationFactory()
        sequence = event_sequence(organization)
        ContactFactory(organization=organization, email="u1@example.com")  # the upsert path, not the first-contacts one
        _, queries = import_with_event(organization, rows(size), django_capture_on_commit_callbacks)
        assert Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE).count() == size
        assert statements(queries, "INSERT INTO campaigns_enrollment") == 1
        counts[size] = len(queries)
    assert counts[200] <= counts[10], counts


def test_contacts_the_file_does_not_name_are_not_enrolled(django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    sequence = event_sequence(organization)
    bystander = ContactFactory(organization=organization, email="someone@example.com")
    elsewhere = OrganizationFactory()
    other_sequence = event_sequence(elsewhere)
    ContactFactory(organization=elsewhere, email="u0@example.com")
    import_with_event(organization, rows(3) + "not-an-email,Bad\n", django_capture_on_commit_callbacks)
    assert Enrollment.objects.filter(sequence=sequence).count() == 3
    assert not Enrollment.objects.filter(contact=bystander).exists()
    assert not Enrollment.objects.filter(sequence=other_sequence).exists()


def test_an_import_without_the_event_enrolls_nobody(django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    sequence = event_sequence(organization)
    _, queries = import_with_event(organization, rows(5), django_capture_on_commit_callbacks, event="")
    assert not Enrollment.objects.filter(sequence=sequence).exists()
    assert statements(queries, "INSERT INTO campaigns_enrollment") == 0
