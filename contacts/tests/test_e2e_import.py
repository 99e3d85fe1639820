"""End to end through a real Celery worker: upload a CSV, the worker imports it."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from conftest import bearer_client
from contacts.models import Contact, ImportJob

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_csv_import_runs_on_a_real_worker(start_worker):
    worker = start_worker()
    manager = MembershipFactory(role=Role.MANAGER)
    client = bearer_client(manager.user, manager.organization)
    rows = "".join(f"person{i}@example.com;Person {i};{i}\n" for i in range(2_000))
    content = ("email;first_name;score\n" + rows + "broken-address;X;1\n").encode()

    response = client.post(
        "/api/v1/contacts/import",
        {"file": SimpleUploadedFile("people.csv", content, content_type="text/csv"), "tags": "e2e"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/contacts/imports/{job_id}/").json()
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert status["status"] == "completed", (status, worker.log)
    assert (status["created"], status["failed"]) == (2_000, 1)
    assert status["errors"] == [{"line": 2_002, "reason": "'broken-address' is not a valid email address"}]
    assert Contact.objects.filter(organization=manager.organization, tag_links__tag__name="e2e").count() == 2_000
    assert Contact.objects.get(email="person7@example.com").attributes == {"score": 7}
    assert "contacts.import_contacts" in worker.log
    assert ImportJob.objects.get(pk=job_id).delimiter == ";"


def wait_for_import(client, job_id: str, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/contacts/imports/{job_id}/").json()
        if status["status"] in ("completed", "failed"):
            return status
        time.sleep(0.2)
    return status


def test_a_file_without_data_rows_fails_and_does_not_hold_the_worker(start_worker):
    worker = start_worker()  # one process (solo pool): a wedged import would keep it from the next task
    manager = MembershipFactory(role=Role.MANAGER)
    client = bearer_client(manager.user, manager.organization)

    def upload(content: bytes) -> str:
        response = client.post(
            "/api/v1/contacts/import",
            {"file": SimpleUploadedFile("people.csv", content, content_type="text/csv")},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        return response.json()["id"]

    empty = [upload(b"email,first_name\n"), upload(b"email,first_name\n\n\n")]
    good = upload(b"email,first_name\nana@example.com,Ana\n")
    for job_id in empty:
        status = wait_for_import(client, job_id)
        assert status["status"] == "failed", (status, worker.log)
        assert "no data rows" in ImportJob.objects.get(pk=job_id).failure_reason
    status = wait_for_import(client, good)
    assert (status["status"], status["created"]) == ("completed", 1), (status, worker.log)
