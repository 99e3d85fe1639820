"""A CSV import that records a custom event for every contact in the file: the API field, the admin
field, the events written (created and updated contacts alike), the hook, and nothing on a rollback."""

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from contacts import hooks, importer, services
from contacts.importer import ImportFailure
from contacts.models import Contact, ContactEvent, ImportJob, ImportStatus
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

EVENT = "webinar_attended"


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def manager(member_client):
    return member_client(Role.MANAGER)


@pytest.fixture
def received():
    """Every contact hook emission as (name, sorted emails, properties), for the test's duration."""
    seen = []

    def receiver(sender, **kwargs):
        emails = sorted(kwargs["contacts"].values_list("email", flat=True))
        seen.append((kwargs["name"], emails, kwargs["properties"]))

    hooks.contact_event.connect(receiver)
    yield seen
    hooks.contact_event.disconnect(receiver)


@pytest.fixture
def run_import(django_capture_on_commit_callbacks):
    def run(org, content: str, *, event: str = EVENT) -> ImportJob:
        job = ImportJob(organization=org, event_name=event)
        with django_capture_on_commit_callbacks(execute=True):
            services.import_start(job=job, uploaded_file=SimpleUploadedFile("c.csv", content.encode()))
        job.refresh_from_db()
        return job

    return run


def many_rows(count: int, prefix: str = "u") -> str:
    return "email,first_name\n" + "".join(f"{prefix}{i}@example.com,N{i}\n" for i in range(count))


def event_emails(org, name: str = EVENT) -> list[str]:
    return sorted(ContactEvent.objects.filter(organization=org, name=name).values_list("contact__email", flat=True))


# --- the API ------------------------------------------------------------------------------------------------


def test_upload_with_an_event_records_it_for_created_and_updated_contacts(manager, django_capture_on_commit_callbacks):
    client, _, org = manager
    ContactFactory(organization=org, email="old@example.com", first_name="Old")
    untouched = ContactFactory(organization=org, email="other@example.com")
    upload = SimpleUploadedFile(
        "people.csv",
        b"email,first_name\nold@example.com,Olga\nnew@example.com,Nina\nbad,B\nnew@example.com,Again\n",
        content_type="text/csv",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/contacts/import", {"file": upload, "event": EVENT}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["event"] == EVENT
    status = client.get(f"/api/v1/contacts/imports/{response.json()['id']}/").json()
    assert (status["status"], status["created"], status["updated"], status["failed"]) == ("completed", 1, 1, 2)
    assert status["event"] == EVENT

    job = ImportJob.objects.get(pk=response.json()["id"])
    events = list(ContactEvent.objects.filter(organization=org).select_related("contact"))
    # One event per contact the file created or updated; none for the bad line, the repeated address
    # or a contact the file does not name.
    assert sorted(e.contact.email for e in events) == ["new@example.com", "old@example.com"]
    assert not untouched.events.exists()
    for event in events:
        assert event.name == EVENT
        assert event.properties == {"source": "import", "import_job_id": str(job.pk)}
        assert job.started_at <= event.occurred_at <= job.finished_at
    assert len({e.occurred_at for e in events}) == 1  # the import's one moment


def test_upload_without_an_event_records_none(manager, django_capture_on_commit_callbacks):
    client, _, org = manager
    upload = SimpleUploadedFile("people.csv", b"email\na@example.com\n", content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/contacts/import", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["event"] == ""
    assert Contact.objects.filter(organization=org).count() == 1
    assert not ContactEvent.objects.filter(organization=org).exists()


@pytest.mark.parametrize(
    "event",
    [
        pytest.param("has spaces", id="space"),
        pytest.param("a/b", id="slash"),
        pytest.param("x" * 101, id="too-long"),
        pytest.param("naïve", id="non-ascii"),
        pytest.param("contact_created", id="built-in-created"),
        pytest.param("tag_added", id="built-in-tag"),
        pytest.param("unsubscribed", id="built-in-unsubscribed"),
    ],
)
def test_upload_refuses_a_bad_event_name_naming_the_field(manager, event):
    client, _, org = manager
    upload = SimpleUploadedFile("people.csv", b"email\na@example.com\n", content_type="text/csv")
    response = client.post("/api/v1/contacts/import", {"file": upload, "event": event}, format="multipart")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["event"]
    assert not ImportJob.objects.filter(organization=org).exists()


def test_the_built_in_refusal_says_why(manager):
    client, _, _ = manager
    upload = SimpleUploadedFile("people.csv", b"email\na@example.com\n", content_type="text/csv")
    response = client.post("/api/v1/contacts/import", {"file": upload, "event": "bounced"}, format="multipart")
    assert response.status_code == 400
    assert "built-in" in response.json()["event"][0]


def test_another_organizations_import_answers_404_and_gets_none_of_its_events(manager, member_client, run_import):
    client, _, org = manager
    _, _, other_org = member_client(Role.MANAGER)
    ContactFactory(organization=other_org, email="a@example.com")
    job = run_import(org, "email\na@example.com\n")
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    other_job = run_import(other_org, "email\nb@example.com\n")
    assert client.get(f"/api/v1/contacts/imports/{job.pk}/").json()["event"] == EVENT
    assert client.get(f"/api/v1/contacts/imports/{other_job.pk}/").status_code == 404
    # The same address in another organization is another contact: only this organization's got the event.
    assert event_emails(org) == ["a@example.com"]
    assert event_emails(other_org) == ["b@example.com"]


# --- the writer ----------------------------------------------------------------------------------------------


def test_every_path_into_the_table_records_the_event_once_per_contact(org, run_import, received):
    # An organization's first contacts go in by a plain INSERT (PostgreSQL); later files are upserted.
    first = run_import(org, many_rows(30))
    assert first.status == ImportStatus.COMPLETED, first.failure_reason
    assert len(event_emails(org)) == 30
    second = run_import(org, many_rows(40), event="trial_started")
    assert (second.created, second.updated) == (10, 30)
    assert event_emails(org, "trial_started") == sorted(f"u{i}@example.com" for i in range(40))
    assert len(event_emails(org)) == 30  # the first import's events are left as they were
    emitted = {name: emails for name, emails, _ in received}
    assert emitted[EVENT] == sorted(f"u{i}@example.com" for i in range(30))
    assert emitted["trial_started"] == sorted(f"u{i}@example.com" for i in range(40))
    properties = {name: props for name, _, props in received}
    assert properties["trial_started"] == {"source": "import", "import_job_id": str(second.pk)}


def test_a_file_of_several_chunks_records_one_event_per_contact(org, run_import):
    ContactFactory(organization=org, email="u4999@example.com")
    job = run_import(org, many_rows(5000))
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.created, job.updated) == (4999, 1)
    assert ContactEvent.objects.filter(organization=org, name=EVENT).count() == 5000
    assert ContactEvent.objects.filter(organization=org).values("contact_id").distinct().count() == 5000


def test_a_failed_import_records_no_event_and_emits_nothing(org, run_import, received, monkeypatch):
    parse_row = importer.parse_row

    def unreadable_late(cells, columns):
        # After the first chunk (and its events) was written.
        if cells[0] == "u4000@example.com":
            raise ImportFailure("The file became unreadable.")
        return parse_row(cells, columns)

    monkeypatch.setattr(importer, "parse_row", unreadable_late)
    job = run_import(org, many_rows(5000))
    assert job.status == ImportStatus.FAILED
    assert "unreadable" in job.failure_reason
    assert not Contact.objects.filter(organization=org).exists()
    assert not ContactEvent.objects.filter(organization=org).exists()
    assert received == []


@pytest.mark.django_db(transaction=True)
def test_in_the_writer_thread_events_commit_with_the_import_or_not_at_all(org, monkeypatch):
    """Outside a test transaction (as in a worker) the writer runs in a thread of its own on PostgreSQL."""
    seen = []

    def receiver(sender, **kwargs):
        seen.append((kwargs["name"], kwargs["contacts"].count()))

    hooks.contact_event.connect(receiver)
    try:

        def run(content: str) -> ImportJob:
            job = ImportJob(organization=org, event_name=EVENT)
            job.file.save("f.csv", SimpleUploadedFile("f.csv", content.encode()), save=False)
            job.save()
            thread = threading.Thread(target=lambda: (importer.run_import(job), connection.close()), daemon=True)
            thread.start()
            thread.join(timeout=60)
            assert not thread.is_alive()
            job.refresh_from_db()
            return job

        assert run(many_rows(50)).status == ImportStatus.COMPLETED
        assert ContactEvent.objects.filter(organization=org, name=EVENT).count() == 50
        assert (EVENT, 50) in seen

        seen.clear()
        parse_row = importer.parse_row

        def unreadable_late(cells, columns):
            if cells[0] == "v4000@example.com":
                raise ImportFailure("The file became unreadable.")
            return parse_row(cells, columns)

        monkeypatch.setattr(importer, "parse_row", unreadable_late)
        assert run(many_rows(5000, prefix="v")).status == ImportStatus.FAILED
        assert ContactEvent.objects.filter(organization=org, name=EVENT).count() == 50
        assert not Contact.objects.filter(organization=org, email__startswith="v").exists()
        assert seen == []
    finally:
        hooks.contact_event.disconnect(receiver)


# --- the admin -----------------------------------------------------------------------------------------------


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(role=Role.MANAGER)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    client.force_login(membership.user)
    return client, membership.organization


def test_admin_import_with_an_event(marketer, django_capture_on_commit_callbacks):
    client, org = marketer
    form = client.get("/admin/contacts/importjob/add/")
    assert b'name="event_name"' in form.content
    assert b"A custom event recorded for every contact in the file" in form.content
    upload = SimpleUploadedFile("people.csv", b"email\na@example.com\nb@example.com\n", content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/contacts/importjob/add/", {"organization": str(org.pk), "file": upload, "event_name": EVENT}
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.get(organization=org)
    assert (job.status, job.event_name) == (ImportStatus.COMPLETED, EVENT)
    assert event_emails(org) == ["a@example.com", "b@example.com"]
    page = client.get(f"/admin/contacts/importjob/{job.pk}/change/")
    assert page.status_code == 200
    assert EVENT.encode() in page.content


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("drop table; --", b"Use only letters, digits"),
        ("x" * 101, b"at most 100 characters"),
        ("bad\x00name", b"Null characters are not allowed"),
        ("complained", b"is a built-in event name"),
    ],
)
def test_admin_import_refuses_a_bad_event_on_the_form(marketer, event, reason):
    client, org = marketer
    upload = SimpleUploadedFile("people.csv", b"email\na@example.com\n", content_type="text/csv")
    response = client.post(
        "/admin/contacts/importjob/add/", {"organization": str(org.pk), "file": upload, "event_name": event}
    )
    assert response.status_code == 200
    assert reason in response.content
    assert "event_name" in response.context["adminform"].form.errors
    assert not ImportJob.objects.exists()
    assert not Contact.objects.exists()
