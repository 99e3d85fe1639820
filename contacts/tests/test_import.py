"""CSV import: formats, bad rows, upserts, tags and lists, hooks."""

import codecs

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import OrganizationFactory
from contacts import hooks, services
from contacts.importer import ImportFailure, detect_format
from contacts.models import Contact, ContactTag, ImportJob, ImportStatus, ListMembership, Suppression, Tag
from contacts.tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def run_import(django_capture_on_commit_callbacks):
    def run(org, content: bytes | str, *, tags=(), contact_list=None, name="contacts.csv") -> ImportJob:
        data = content.encode() if isinstance(content, str) else content
        job = ImportJob(organization=org, tag_names=list(tags), contact_list=contact_list)
        with django_capture_on_commit_callbacks(execute=True):
            services.import_start(job=job, uploaded_file=SimpleUploadedFile(name, data, content_type="text/csv"))
        job.refresh_from_db()
        return job

    return run


def errors(job):
    return [(e.line, e.reason) for e in job.row_errors.order_by("line")]


def test_import_with_bad_rows_in_the_middle_imports_the_rest(org, run_import):
    csv = (
        "email,first_name,last_name,phone,city,age\n"
        "ana@example.com,Ana,Smit,+31612345678,Utrecht,34\n"
        "not-an-email,Bad,Row,,Nowhere,1\n"
        "bob@example.com,Bob,,,Amsterdam,41\n"
        "cas@example.com,Cas,,12345,Delft,2\n"
        ",Empty,Email,,,\n"
        "dee@example.com,Dee,,,Leiden,0123\n"
    )
    job = run_import(org, csv)
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.total_rows, job.created, job.updated, job.failed) == (6, 3, 0, 3)
    assert [line for line, _ in errors(job)] == [3, 5, 6]
    reasons = dict(errors(job))
    assert "not-an-email" in reasons[3]
    assert "12345" in reasons[5]
    assert "missing" in reasons[6]

    ana = Contact.objects.get(organization=org, email="ana@example.com")
    assert ana.first_name == "Ana"
    assert ana.phone == "+31612345678"
    assert ana.attributes == {"city": "Utrecht", "age": 34}
    assert ana.status == "subscribed"
    assert ana.consent_source == f"import:{job.pk}"
    # Leading zeros stay text.
    assert Contact.objects.get(email="dee@example.com").attributes["age"] == "0123"


def test_reimport_upserts_without_duplicates_and_keeps_what_is_not_given(org, run_import):
    run_import(org, "email,first_name,last_name,city\nana@example.com,Ana,Smit,Utrecht\nbob@example.com,Bob,B,Delft\n")
    contact = Contact.objects.get(email="ana@example.com")
    contact.status = "unsubscribed"
    contact.save(update_fields=["status"])

    job = run_import(org, "Email,First Name,plan\nANA@example.com,Anna,pro\ncas@example.com,Cas,free\n")
    assert (job.created, job.updated, job.failed) == (1, 1, 0)
    assert Contact.objects.filter(organization=org).count() == 3
    ana = Contact.objects.get(email="ana@example.com")
    assert ana.first_name == "Anna"
    assert ana.last_name == "Smit"  # not in the second file: kept
    assert ana.attributes == {"city": "Utrecht", "plan": "pro"}
    assert ana.status == "unsubscribed"  # an import never re-subscribes


def test_duplicates_within_the_file_are_reported_and_the_first_wins(org, run_import):
    csv = "email,first_name,tags\na@example.com,First,red\nb@example.com,B,\nA@example.com,Second,blue\n"
    job = run_import(org, csv)
    assert (job.created, job.failed) == (2, 1)
    assert errors(job) == [(4, "duplicate of line 2 (same email address)")]
    contact = Contact.objects.get(email="a@example.com")
    assert contact.first_name == "First"
    # The rejected line's tags were not applied.
    assert [link.tag.name for link in contact.tag_links.select_related("tag")] == ["red"]


def test_tags_column_job_tags_and_list(org, run_import):
    contact_list = ContactListFactory(organization=org)
    existing = Tag.objects.create(organization=org, name="VIP")
    job = run_import(
        org,
        'email,tags\na@example.com,"vip;new-one"\nb@example.com,\n',
        tags=["Imported"],
        contact_list=contact_list,
    )
    assert job.status == ImportStatus.COMPLETED
    a_tags = set(ContactTag.objects.filter(contact__email="a@example.com").values_list("tag__name", flat=True))
    b_tags = set(ContactTag.objects.filter(contact__email="b@example.com").values_list("tag__name", flat=True))
    assert a_tags == {"VIP", "new-one", "Imported"}
    assert b_tags == {"Imported"}
    assert Tag.objects.filter(organization=org, name__iexact="vip").get() == existing
    assert ListMembership.objects.filter(contact_list=contact_list).count() == 2


@pytest.mark.parametrize(
    ("content", "encoding", "delimiter"),
    [
        ("email;first_name\na@example.com;Zoë\n".encode(), "utf-8", ";"),
        (codecs.BOM_UTF8 + "email,first_name\na@example.com,Zoë\n".encode(), "utf-8-sig", ","),
        ("email;first_name\na@example.com;Zoë\n".encode("latin-1"), "cp1252", ";"),
        ("email\tfirst_name\na@example.com\tZoë\n".encode(), "utf-8", "\t"),
    ],
)
def test_encodings_and_delimiters_are_detected(org, run_import, content, encoding, delimiter):
    job = run_import(org, content)
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.encoding, job.delimiter) == (encoding, delimiter)
    assert Contact.objects.get(email="a@example.com").first_name == "Zoë"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"first_name,last_name\nAna,Smit\n", "No email or phone column"),
        (b"email,first_name\n", "no data rows"),
        (b"email,first_name\n\n \n,\n", "no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "binary"),
        (b"email,email\na@example.com,b@example.com\n", "appears twice"),
        (b'email,"first_name\na@example.com,Ann\n', "header row has a quote"),
    ],
)
def test_malformed_files_fail_the_job_with_a_reason_and_write_nothing(org, run_import, content, reason):
    job = run_import(org, content)
    assert job.status == ImportStatus.FAILED
    assert reason in job.failure_reason
    assert not Contact.objects.filter(organization=org).exists()


def test_import_reports_progress_counts(org, run_import):
    rows = "".join(f"user{i}@example.com,User {i}\n" for i in range(12_000))
    job = run_import(org, "email,first_name\n" + rows)
    assert job.status == ImportStatus.COMPLETED
    assert (job.total_rows, job.processed_rows, job.created) == (12_000, 12_000, 12_000)
    assert job.started_at <= job.finished_at


def test_erased_address_in_a_file_comes_back_suppressed(org, run_import):
    contact = ContactFactory(organization=org, email="gone@example.com")
    services.contact_erase(contact=contact)
    run_import(org, "email\ngone@example.com\nfine@example.com\n")
    assert set(Suppression.objects.filter(organization=org, kind="email").values_list("value", flat=True)) == {
        "gone@example.com"
    }


def test_import_emits_contact_created_and_tag_added_hooks(org, run_import):
    ContactFactory(organization=org, email="old@example.com")
    received = []

    def receiver(sender, **kwargs):
        emails = sorted(kwargs["contacts"].values_list("email", flat=True))
        received.append((kwargs["name"], emails, kwargs["properties"]))

    hooks.contact_event.connect(receiver)
    try:
        run_import(org, "email,tags\nold@example.com,vip\nnew@example.com,vip\n")
    finally:
        hooks.contact_event.disconnect(receiver)
    names = {name: emails for name, emails, _ in received}
    assert names["contact_created"] == ["new@example.com"]
    assert names["tag_added"] == ["new@example.com", "old@example.com"]


def test_a_finished_job_is_not_imported_again(org, run_import):
    job = run_import(org, "email\na@example.com\n")
    from contacts.importer import run_import as importer_run

    Contact.objects.all().delete()
    assert importer_run(job).status == ImportStatus.COMPLETED
    assert not Contact.objects.exists()


def test_detect_format_refuses_utf16():
    with pytest.raises(ImportFailure, match="binary"):
        detect_format("email\na@example.com\n".encode("utf-16"))


@pytest.mark.django_db(transaction=True)
def test_import_outside_a_transaction_commits_in_the_writer_thread(org):
    """Outside a transaction (as in a worker) the writer runs in its own thread on PostgreSQL.
    test_import_threads.py covers how that thread ends on failures and stalls."""
    from contacts.importer import run_import as importer_run

    def job_for(content: bytes) -> ImportJob:
        job = ImportJob(organization=org)
        job.file.save("f.csv", SimpleUploadedFile("f.csv", content), save=False)
        job.save()
        return job

    good = importer_run(
        job_for(b"email,tags\n" + b"".join(b"u%d@example.com,t%d\n" % (i, i % 3) for i in range(12_000)))
    )
    assert (good.status, good.created, good.processed_rows) == (ImportStatus.COMPLETED, 12_000, 12_000)
    assert ContactTag.objects.filter(contact__organization=org).count() == 12_000

    # A Windows-1252 accent far past the sample the delimiter is sniffed from.
    late_accent = b"email,first_name\n" + b"".join(b"v%d@example.com,V\n" % i for i in range(12_000))
    late = importer_run(job_for(late_accent + "w@example.com,Zoë €\n".encode("cp1252")))
    assert (late.status, late.encoding, late.created, late.failed) == (ImportStatus.COMPLETED, "cp1252", 12_001, 0)
    assert Contact.objects.get(organization=org, email="w@example.com").first_name == "Zoë €"


def test_duplicates_across_chunks_point_at_the_first_line(org, run_import, monkeypatch):
    from contacts import importer

    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    csv = "email,tags\na@example.com,red\nb@example.com,\nc@example.com,\nA@example.com,blue\nb@example.com,\n"
    job = run_import(org, csv)
    assert (job.created, job.failed) == (3, 2)
    assert errors(job) == [
        (5, "duplicate of line 2 (same email address)"),
        (6, "duplicate of line 3 (same email address)"),
    ]
    tags = set(ContactTag.objects.filter(contact__email="a@example.com").values_list("tag__name", flat=True))
    assert tags == {"red"}


def test_a_first_import_falls_back_to_the_upsert_when_someone_else_adds_an_address(org, run_import, monkeypatch):
    from django.db import connection

    from contacts.importer import ChunkWriter

    if connection.vendor != "postgresql":
        pytest.skip("the plain insert for an organization's first contacts is PostgreSQL's")
    insert_new = ChunkWriter._insert_new
    outcomes = []

    def while_someone_else_creates_bob(self, cursor, params):
        assert self.first_contacts
        # Between the check that the organization had no contacts and this chunk's insert.
        ContactFactory(organization=org, email="bob@example.com", first_name="Robert", last_name="Old")
        outcomes.append(insert_new(self, cursor, params))
        return outcomes[-1]

    monkeypatch.setattr(ChunkWriter, "_insert_new", while_someone_else_creates_bob)
    job = run_import(org, "email,first_name\nana@example.com,Ana\nbob@example.com,Bob\n", tags=["fair"])

    assert outcomes == [False]  # the plain insert hit the unique index; the upsert took over
    assert job.status == ImportStatus.COMPLETED
    assert (job.created, job.updated, job.failed) == (1, 1, 0)
    assert Contact.objects.filter(organization=org).count() == 2
    bob = Contact.objects.get(organization=org, email="bob@example.com")
    assert (bob.first_name, bob.last_name) == ("Bob", "Old")
    assert set(ContactTag.objects.filter(tag__name="fair").values_list("contact__email", flat=True)) == {
        "ana@example.com",
        "bob@example.com",
    }


@pytest.mark.parametrize(
    "row",
    [
        (1, "plain", None, "x"),
        (2, "back\\slash", None, None),
        (3, "tab\there", "", None),
        (4, "new\nline", "carriage\rreturn", 7),
        (5, "\\N", None, "literal backslash-N"),
        (6, None, None, None),
    ],
)
def test_copy_text_escapes_exactly_what_copy_needs(row):
    from contacts.importer import _copy_text, _copy_value

    expected = ("\t".join(map(_copy_value, row)) + "\n").encode()
    assert _copy_text([row]) == expected
    assert _copy_value("back\\slash") == "back\\\\slash"
    assert _copy_value(None) == "\\N"


def test_chunks_grow_from_small_and_shrink_towards_the_end_of_the_file():
    from contacts.importer import CHUNK_ROWS, MIN_CHUNK_ROWS, _chunk_limit

    sizes, remaining, limit = [], 200_000, _chunk_limit(grown=MIN_CHUNK_ROWS, remaining=200_000)
    while remaining > 0:
        size = min(limit, remaining)
        sizes.append(size)
        remaining -= size
        limit = _chunk_limit(grown=limit * 2, remaining=remaining)
    assert sizes[:5] == [2_000, 4_000, 8_000, 16_000, CHUNK_ROWS]
    assert max(sizes) == CHUNK_ROWS
    assert sizes[-1] <= MIN_CHUNK_ROWS  # the writer finishes soon after the reader
    assert sum(sizes) == 200_000


def test_a_tag_repeated_in_a_cell_or_also_given_to_the_import_links_once(org, run_import):
    content = 'email,tags\na@example.com,"vip;VIP;Fair"\nb@example.com,fair\n'
    for _ in range(2):  # the organization's first contacts, then the same file again (the upsert path)
        job = run_import(org, content, tags=["FAIR"])
        assert job.status == ImportStatus.COMPLETED, job.failure_reason
    links = sorted(ContactTag.objects.filter(contact__organization=org).values_list("contact__email", "tag__name"))
    assert links == [("a@example.com", "FAIR"), ("a@example.com", "vip"), ("b@example.com", "FAIR")]


# --- encodings: detected over the whole file, undecodable rows reported ------------------------------


def test_a_windows_1252_file_is_read_as_windows_1252_not_latin_1(org, run_import):
    content = "email,first_name,price,quote\na@example.com,Zoë,€ 5,“hi” \u2013 ok\n".encode("cp1252")
    job = run_import(org, content)
    assert (job.status, job.encoding) == (ImportStatus.COMPLETED, "cp1252")
    contact = Contact.objects.get(email="a@example.com")
    assert (contact.first_name, contact.attributes) == ("Zoë", {"price": "€ 5", "quote": "“hi” \u2013 ok"})


def test_a_windows_1252_accent_past_the_sample_does_not_fail_the_file(org, run_import):
    ascii_rows = "".join(f"user{i}@example.com,User\n" for i in range(5_000))  # more than the 64 KB sample
    content = ("email,first_name\n" + ascii_rows).encode() + "jose@example.com,José\n".encode("cp1252")
    job = run_import(org, content)
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.encoding, job.created, job.failed) == ("cp1252", 5_001, 0)
    assert Contact.objects.get(email="jose@example.com").first_name == "José"


def test_a_row_with_bytes_foreign_to_a_utf8_file_is_reported_and_the_rest_imports(org, run_import):
    content = "email,first_name\na@example.com,Zoë\nb@example.com,Ærø\n".encode() + b"c@example.com,Jos\xe9\n"
    content += "d@example.com,Åsa\n".encode()
    job = run_import(org, content)
    assert (job.status, job.encoding, job.created, job.failed) == (ImportStatus.COMPLETED, "utf-8", 3, 1)
    [(line, reason)] = errors(job)
    assert line == 4
    assert "not valid UTF-8" in reason
    assert set(Contact.objects.filter(organization=org).values_list("first_name", flat=True)) == {"Zoë", "Ærø", "Åsa"}


def test_a_byte_windows_1252_leaves_undefined_is_reported_on_its_row(org, run_import):
    job = run_import(org, b"email,first_name\na@example.com,Jos\xe9\nb@example.com,x\x81y\nc@example.com,C\n")
    assert (job.status, job.encoding, job.created) == (ImportStatus.COMPLETED, "cp1252", 2)
    assert [(line, "Windows-1252" in reason) for line, reason in errors(job)] == [(3, True)]


# --- quotes: a quote left open never swallows the rows after it -------------------------------------


def test_a_quote_left_open_to_the_end_of_the_file_is_reported_and_no_row_is_swallowed(org, run_import):
    job = run_import(org, 'email,first_name\na@example.com,"Ann\nb@example.com,Bob\nc@example.com,Cy\n')
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.created, job.failed) == (2, 1)
    [(line, reason)] = errors(job)
    assert line == 2
    assert "quote" in reason
    assert "lines 2-4" in reason
    assert dict(Contact.objects.filter(organization=org).values_list("email", "first_name")) == {
        "b@example.com": "Bob",
        "c@example.com": "Cy",
    }


def test_a_quote_left_open_before_more_than_the_csv_field_limit_swallows_nothing(org, run_import):
    rows = "".join(f"user{i}@example.com,User {i}\n" for i in range(10_000))  # far past csv's 128 KB field limit
    job = run_import(org, 'email,first_name\na@example.com,"Ann\n' + rows)
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.created, job.failed) == (10_000, 1)
    assert [line for line, _ in errors(job)] == [2]
    assert Contact.objects.get(email="user0@example.com").first_name == "User 0"


def test_a_quote_closed_by_a_stray_quote_lines_later_is_reported_and_those_lines_read_again(org, run_import):
    content = 'email,first_name\na@example.com,"Ann\nb@example.com,Bob\nc@example.com,"Cy"\nd@example.com,Dee\n'
    job = run_import(org, content)
    assert (job.created, job.failed) == (3, 1)
    assert [line for line, _ in errors(job)] == [2]
    assert sorted(Contact.objects.filter(organization=org).values_list("email", flat=True)) == [
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]


def test_a_well_quoted_multiline_cell_imports_and_rows_report_the_line_they_start_on(org, run_import):
    content = 'email,first_name,address\na@example.com,Ann,"Main St 1\nUtrecht"\nnot-an-email,"Two\nLines",x\n'
    job = run_import(org, content)
    assert (job.created, job.failed) == (1, 1)
    assert [line for line, _ in errors(job)] == [4]  # the row starts on line 4 and ends on line 5
    assert Contact.objects.get(email="a@example.com").attributes == {"address": "Main St 1\nUtrecht"}


def test_a_cell_over_the_csv_field_limit_is_reported_on_its_row(org, run_import):
    content = "email,note\na@example.com," + "x" * 200_000 + "\nb@example.com,ok\n"
    job = run_import(org, content)
    assert (job.status, job.created, job.failed) == (ImportStatus.COMPLETED, 1, 1)
    [(line, reason)] = errors(job)
    assert line == 2
    assert "field limit" in reason
