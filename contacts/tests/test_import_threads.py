"""The threaded import (reader in the task, writer in a thread of its own) always ends, and ends honestly.

These run outside a test transaction, as in a worker, so the writer really runs in its own thread on
PostgreSQL. Each import runs in a thread the test joins with a deadline: an import that hangs fails the
test instead of hanging the test run.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction

from accounts.tests.factories import OrganizationFactory
from contacts import importer
from contacts.importer import ChunkWriter
from contacts.models import Contact, ImportJob, ImportStatus

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE_SECONDS = 30


@pytest.fixture
def org():
    return OrganizationFactory()


def job_for(org, content: bytes) -> ImportJob:
    job = ImportJob(organization=org)
    job.file.save("f.csv", SimpleUploadedFile("f.csv", content), save=False)
    job.save()
    return job


def import_within_deadline(job: ImportJob, deadline: float = DEADLINE_SECONDS) -> tuple[ImportJob, Exception | None]:
    """Run the import as a worker would (own thread, own connection); fail the test if it does not end."""
    raised: list[Exception] = []

    def run() -> None:
        try:
            importer.run_import(job)
        except Exception as exc:  # the test inspects what the task would have raised
            raised.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=deadline)
    if thread.is_alive():
        pytest.fail(f"the import did not finish within {deadline} s: it would hold a worker")
    # The writer thread is gone too (it rolled back or committed) before the test looks at the data.
    for other in threading.enumerate():
        if other.name == f"import-{job.pk}":
            other.join(timeout=max(deadline - (time.monotonic() - started), 1))
            assert not other.is_alive(), "the writer thread outlived the import"
    job.refresh_from_db()
    return job, (raised[0] if raised else None)


def many_rows(count: int, prefix: str = "u") -> bytes:
    return b"email,first_name\n" + b"".join(b"%s%d@example.com,N%d\n" % (prefix.encode(), i, i) for i in range(count))


def test_threaded_import_runs_in_a_writer_thread(org, monkeypatch):
    """The premise of this file: outside a transaction on PostgreSQL, ChunkWriter runs in another thread."""
    if connection.vendor != "postgresql":
        pytest.skip("the writer thread is PostgreSQL's")
    seen = []
    write = ChunkWriter.write

    def record_thread(self, chunk):
        seen.append(threading.current_thread().name)
        return write(self, chunk)

    monkeypatch.setattr(ChunkWriter, "write", record_thread)
    job, raised = import_within_deadline(job_for(org, many_rows(10)))
    assert raised is None
    assert job.status == ImportStatus.COMPLETED
    assert seen == [f"import-{job.pk}"]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"email,first_name\n", id="header-only"),
        pytest.param(b"email,first_name", id="header-without-newline"),
        pytest.param(b"email,first_name\n\n\n   \n,\n\r\n", id="blank-lines-only"),
    ],
)
def test_a_file_without_data_rows_fails_at_once_with_a_reason(org, content):
    started = time.monotonic()
    job, raised = import_within_deadline(job_for(org, content))
    assert raised is None
    assert job.status == ImportStatus.FAILED
    assert "no data rows" in job.failure_reason
    assert job.finished_at is not None
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("where", ["start", "write", "finish"])
def test_a_writer_failure_fails_the_job_and_writes_nothing(org, monkeypatch, where):
    original = getattr(ChunkWriter, where)
    calls = []

    def broken(self, *args):
        # A write breaks on the second chunk, after the first was written; start and finish at once.
        calls.append(args)
        if where != "write" or len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(self, *args)

    monkeypatch.setattr(ChunkWriter, where, broken)
    job, raised = import_within_deadline(job_for(org, many_rows(12_000)))
    assert isinstance(raised, RuntimeError)  # the task fails loudly, after marking the job
    assert job.status == ImportStatus.FAILED
    assert "unexpected error" in job.failure_reason
    assert not Contact.objects.filter(organization=org).exists()


def test_a_reader_failure_midway_rolls_back_what_the_writer_wrote(org, monkeypatch):
    parse_row = importer.parse_row

    def unreadable_late(cells, columns):
        if cells[0] == "u11000@example.com":
            raise importer.ImportFailure("Line 11002: the storage went away.")
        return parse_row(cells, columns)

    monkeypatch.setattr(importer, "parse_row", unreadable_late)
    job, raised = import_within_deadline(job_for(org, many_rows(12_000)))
    assert raised is None
    assert job.status == ImportStatus.FAILED
    assert job.failure_reason == "Line 11002: the storage went away."
    assert not Contact.objects.filter(organization=org).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the writer has a thread of its own on PostgreSQL only")
def test_a_writer_that_stalls_fails_the_job_and_commits_nothing_later(org, monkeypatch, settings):
    settings.IMPORT_STALL_SECONDS = 1
    write = ChunkWriter.write

    def slow(self, chunk):
        time.sleep(3)
        return write(self, chunk)

    monkeypatch.setattr(ChunkWriter, "write", slow)
    started = time.monotonic()
    job, raised = import_within_deadline(job_for(org, many_rows(12_000)))
    assert raised is None
    assert job.status == ImportStatus.FAILED
    assert "stalled" in job.failure_reason
    assert time.monotonic() - started < 15
    # The writer woke up after the job had failed: it rolled back instead of committing.
    assert not Contact.objects.filter(organization=org).exists()
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the writer has a thread of its own on PostgreSQL only")
def test_a_reader_that_stalls_fails_the_job(org, monkeypatch, settings):
    settings.IMPORT_STALL_SECONDS = 1
    read_chunks = importer.read_chunks

    def slow_reader(job, stream):
        for index, chunk in enumerate(read_chunks(job, stream)):
            if index == 1:
                time.sleep(3)
            yield chunk

    monkeypatch.setattr(importer, "read_chunks", slow_reader)
    job, raised = import_within_deadline(job_for(org, many_rows(12_000)))
    assert raised is None
    assert job.status == ImportStatus.FAILED
    assert "stalled" in job.failure_reason
    assert not Contact.objects.filter(organization=org).exists()


def test_a_good_file_still_imports_in_the_writer_thread(org):
    job, raised = import_within_deadline(job_for(org, many_rows(12_000)))
    assert raised is None
    assert (job.status, job.created, job.processed_rows) == (ImportStatus.COMPLETED, 12_000, 12_000)
    assert Contact.objects.filter(organization=org).count() == 12_000


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the writer has a thread of its own on PostgreSQL only")
def test_a_writer_stuck_on_a_row_lock_fails_the_job_instead_of_waiting(org, settings):
    """Another transaction holds a contact the file updates: the upsert would wait for it forever."""
    from contacts.tests.factories import ContactFactory

    settings.IMPORT_STALL_SECONDS = 1
    contact = ContactFactory(organization=org, email="locked@example.com", first_name="Old")
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                Contact.objects.select_for_update().get(pk=contact.pk)
                locked.set()
                release.wait(DEADLINE_SECONDS)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert locked.wait(10)
    try:
        job, raised = import_within_deadline(job_for(org, b"email,first_name\nlocked@example.com,New\n"))
    finally:
        release.set()
        holder.join(10)
    assert raised is None
    assert job.status == ImportStatus.FAILED
    assert "stalled" in job.failure_reason
    contact.refresh_from_db()
    assert contact.first_name == "Old"
