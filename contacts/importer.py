"""CSV import of contacts: streamed, validated, staged, then upserted in set-based SQL.

Phase 1 streams the file (never whole in memory): it sniffs encoding (UTF-8 with or
without BOM, else Latin-1) and delimiter (`,` `;` tab `|`), maps the header, validates
each row and writes good rows to a temporary staging table in chunks (PostgreSQL:
COPY) and bad ones to ImportRowError with their line numbers.

Phase 2 runs in one transaction: later duplicates of an address within the file
become errors, contacts are upserted with one INSERT ... SELECT ... ON CONFLICT,
then tags, the list and suppressions of erased addresses are applied, and the job
is marked completed. A file that cannot be read fails the job before phase 2, so a
failed import never leaves contacts half-written.

Columns: email (required), phone, first_name, last_name, tags (separated by `;`),
timezone, locale; common spellings are recognised (E-mail, First Name, mobile, ...).
Every other column becomes a contact attribute; numbers and true/false are stored
typed, numbers with leading zeros stay text. Empty cells never overwrite data.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from django.db import connection, transaction
from django.utils import timezone

from contacts import hooks
from contacts.models import Contact, ImportJob, ImportRowError, ImportStatus, Tag
from contacts.normalize import (
    InvalidValue,
    address_hash,
    email_domain,
    normalize_email,
    normalize_phone,
    normalize_timezone,
    typed_attribute,
)

logger = logging.getLogger(__name__)

SAMPLE_BYTES = 64 * 1024
CHUNK_ROWS = 5_000
MAX_COLUMNS = 200
MAX_FIELD_CHARS = 10_000
MAX_ROW_ERRORS = 100_000
DELIMITERS = ",;\t|"

FIELD_ALIASES = {
    "email": {"email", "e_mail", "email_address", "mail", "emailaddress"},
    "phone": {"phone", "phone_number", "mobile", "mobile_phone", "cell", "telephone", "msisdn"},
    "first_name": {"first_name", "firstname", "given_name", "first"},
    "last_name": {"last_name", "lastname", "surname", "family_name", "last"},
    "tags": {"tags", "tag"},
    "timezone": {"timezone", "time_zone", "tz"},
    "locale": {"locale", "language", "lang"},
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
STAGE_COLUMNS = [
    "line",
    "email",
    "email_domain",
    "email_hash",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "attributes",
]


class ImportFailure(Exception):
    """The file as a whole cannot be imported; the message says why, for the user."""


@dataclass
class FileFormat:
    encoding: str
    delimiter: str


@dataclass
class ColumnMap:
    fields: dict[str, int]  # our field -> column index
    attributes: list[tuple[str, int]]  # attribute key -> column index
    width: int


@dataclass
class PhaseOneResult:
    rows: int = 0
    staged: int = 0
    errors: int = 0
    tag_names: set[str] = field(default_factory=set)


# --- reading the file ----------------------------------------------------------------


def detect_format(sample: bytes) -> FileFormat:
    """Encoding and delimiter from the first bytes of the file."""
    if not sample.strip():
        raise ImportFailure("The file is empty.")
    if sample.startswith(codecs.BOM_UTF16_LE) or sample.startswith(codecs.BOM_UTF16_BE) or b"\x00" in sample:
        raise ImportFailure("This is a binary file (or UTF-16 text), not a CSV file. Save it as CSV (UTF-8).")
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
    if control > len(sample) * 0.01:
        raise ImportFailure("This is a binary file, not a CSV file.")
    if sample.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        try:
            # The sample may end inside a multi-byte character: decode incrementally.
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "latin-1"
    text = sample.decode(encoding, errors="ignore")
    header = text.splitlines()[0] if text.splitlines() else ""
    return FileFormat(encoding=encoding, delimiter=_sniff_delimiter(text, header))


def _sniff_delimiter(text: str, header: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:16_384], delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def map_columns(header: list[str]) -> ColumnMap:
    if len(header) > MAX_COLUMNS:
        raise ImportFailure(f"The file has {len(header)} columns; at most {MAX_COLUMNS} are allowed.")
    fields: dict[str, int] = {}
    attributes: list[tuple[str, int]] = []
    seen: set[str] = set()
    for index, raw in enumerate(header):
        key = header_key(raw)
        if not key:
            continue
        if key in seen:
            raise ImportFailure(f"The column {raw.strip()!r} appears twice in the header.")
        seen.add(key)
        target = _ALIAS_TO_FIELD.get(key)
        if target and target not in fields:
            fields[target] = index
        else:
            attributes.append((key[:64], index))
    if "email" not in fields:
        shown = ", ".join(h.strip() for h in header[:10]) or "(nothing)"
        raise ImportFailure(f"No email column. The header row has: {shown}. Name one column 'email'.")
    return ColumnMap(fields=fields, attributes=attributes, width=len(header))


def read_rows(stream: BinaryIO, fmt: FileFormat) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and an iterator of (line number, cells); the file is read as it goes."""
    text = io.TextIOWrapper(stream, encoding=fmt.encoding, errors="strict", newline="")
    reader = csv.reader(text, delimiter=fmt.delimiter, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailure("The file has no header row.") from None
    except UnicodeDecodeError:
        raise ImportFailure("The header row has bytes that are not valid text.") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise ImportFailure(
                    f"Line {reader.line_num + 1}: bytes that are not valid {fmt.encoding.upper()} "
                    f"({exc.reason}). Save the file as UTF-8 and import it again."
                ) from None
            except csv.Error as exc:
                raise ImportFailure(f"Line {reader.line_num}: the CSV is malformed ({exc}).") from None
            if cells and any(cell.strip() for cell in cells):
                yield reader.line_num, cells

    return header, rows()


def parse_row(cells: list[str], columns: ColumnMap) -> tuple[tuple, list[str]]:
    """One row as a staging tuple (without the line) plus its tag names; raises InvalidValue."""
    if len(cells) > columns.width:
        extra = [c for c in cells[columns.width :] if c.strip()]
        if extra:
            raise InvalidValue(f"has {len(cells)} cells but the header has {columns.width} columns")

    def cell(name: str) -> str:
        index = columns.fields.get(name)
        if index is None or index >= len(cells):
            return ""
        value = cells[index]
        if len(value) > MAX_FIELD_CHARS:
            raise InvalidValue(f"{name} is longer than {MAX_FIELD_CHARS} characters")
        return value.strip()

    email = normalize_email(cell("email"))
    phone_text = cell("phone")
    phone = normalize_phone(phone_text) if phone_text else None
    tz = normalize_timezone(cell("timezone"))
    attributes = {}
    for key, index in columns.attributes:
        if index < len(cells) and cells[index].strip():
            if len(cells[index]) > MAX_FIELD_CHARS:
                raise InvalidValue(f"{key} is longer than {MAX_FIELD_CHARS} characters")
            attributes[key] = typed_attribute(cells[index])
    tags = [t.strip()[:100] for t in cell("tags").split(";") if t.strip()]
    row = (
        email,
        email_domain(email),
        address_hash(email),
        phone,
        cell("first_name")[:150],
        cell("last_name")[:150],
        tz,
        cell("locale")[:16],
        json.dumps(attributes, ensure_ascii=False),
    )
    return row, tags


def count_lines(stream: BinaryIO) -> int:
    lines = 0
    for block in iter(lambda: stream.read(1 << 20), b""):
        lines += block.count(b"\n")
    stream.seek(0)
    return lines


# --- the database side ------------------------------------------------------------------


class Staging:
    """A temporary table for one import's rows, and the dialect bits that differ."""

    def __init__(self, job: ImportJob):
        suffix = job.id.hex
        self.rows = f"import_rows_{suffix}"
        self.tags = f"import_tags_{suffix}"
        self.vendor = connection.vendor

    def create(self) -> None:
        temp = "TEMPORARY"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.rows}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.tags}")
            cursor.execute(
                f"CREATE {temp} TABLE {self.rows} (line integer, email text, email_domain text, email_hash text, "
                "phone text, first_name text, last_name text, timezone text, locale text, attributes text)"
            )
            cursor.execute(f"CREATE {temp} TABLE {self.tags} (line integer, email text, tag text)")

    def param(self, value):
        """A value for raw SQL: SQLite takes UUIDs as hex and datetimes as Django stores them."""
        if self.vendor == "sqlite":
            if isinstance(value, uuid.UUID):
                return value.hex
            if isinstance(value, datetime):
                return connection.ops.adapt_datetimefield_value(value)
        return value

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.rows}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.tags}")

    def write(self, rows: list[tuple], tag_rows: list[tuple]) -> None:
        with connection.cursor() as cursor:
            if self.vendor == "postgresql":
                with cursor.copy(f"COPY {self.rows} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                if tag_rows:
                    with cursor.copy(f"COPY {self.tags} (line, email, tag) FROM STDIN") as copy:
                        for row in tag_rows:
                            copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(STAGE_COLUMNS))
                cursor.executemany(f"INSERT INTO {self.rows} ({', '.join(STAGE_COLUMNS)}) VALUES ({marks})", rows)
                if tag_rows:
                    cursor.executemany(f"INSERT INTO {self.tags} (line, email, tag) VALUES (%s, %s, %s)", tag_rows)

    # Dialect pieces for phase 2.
    @property
    def new_uuid(self) -> str:
        return "gen_random_uuid()" if self.vendor == "postgresql" else "lower(hex(randomblob(16)))"

    @property
    def json_value(self) -> str:
        return "s.attributes::jsonb" if self.vendor == "postgresql" else "json(s.attributes)"

    @property
    def json_merge(self) -> str:
        if self.vendor == "postgresql":
            return "contacts_contact.attributes || excluded.attributes"
        return "json_patch(contacts_contact.attributes, excluded.attributes)"


def run_import(job: ImportJob) -> ImportJob:
    """Import the job's file; marks the job completed or failed. Safe to run again."""
    claimed = ImportJob.objects.filter(pk=job.pk, status__in=[ImportStatus.PENDING, ImportStatus.RUNNING]).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), failure_reason=""
    )
    if not claimed:
        return ImportJob.objects.get(pk=job.pk)  # completed or failed already: nothing to redo
    ImportRowError.objects.filter(job=job).delete()  # a rerun after a crash starts clean
    staging = Staging(job)
    try:
        staging.create()
        with job.file.open("rb") as stream:
            result = _phase_one(job, stream, staging)
        _phase_two(job, staging, result)
    except ImportFailure as exc:
        _fail(job, str(exc))
    except Exception:
        logger.exception("import crashed", extra={"import_job_id": str(job.pk)})
        _fail(job, "The import stopped on an unexpected error; nothing was imported. Try again or contact support.")
        raise
    finally:
        try:
            staging.drop()
        except Exception:  # the connection may be gone after a crash; temp tables die with it
            logger.warning("could not drop import staging tables", extra={"import_job_id": str(job.pk)})
    job.refresh_from_db()
    return job


def _fail(job: ImportJob, reason: str) -> None:
    # Only a running job fails: a job whose phase 2 committed stays completed.
    ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
        status=ImportStatus.FAILED, failure_reason=reason, finished_at=timezone.now()
    )
    logger.info("import failed", extra={"import_job_id": str(job.pk), "reason": reason})


def _phase_one(job: ImportJob, stream: BinaryIO, staging: Staging) -> PhaseOneResult:
    sample = stream.read(SAMPLE_BYTES)
    fmt = detect_format(sample)
    stream.seek(0)
    estimated = max(count_lines(stream) - 1, 0)
    ImportJob.objects.filter(pk=job.pk).update(
        encoding=fmt.encoding, delimiter=fmt.delimiter, total_rows=estimated, processed_rows=0
    )
    header, rows = read_rows(stream, fmt)
    columns = map_columns(header)

    result = PhaseOneResult()
    staged: list[tuple] = []
    tag_rows: list[tuple] = []
    errors: list[ImportRowError] = []

    def flush() -> None:
        staging.write(staged, tag_rows)
        ImportRowError.objects.bulk_create(errors)
        ImportJob.objects.filter(pk=job.pk).update(processed_rows=result.rows)
        staged.clear()
        tag_rows.clear()
        errors.clear()

    for line, cells in rows:
        result.rows += 1
        try:
            row, tags = parse_row(cells, columns)
        except InvalidValue as exc:
            result.errors += 1
            if result.errors <= MAX_ROW_ERRORS:
                errors.append(ImportRowError(job=job, line=line, reason=str(exc)[:500]))
        else:
            staged.append((line, *row))
            for tag in tags:
                lowered = tag.lower()
                result.tag_names.add(tag)
                tag_rows.append((line, row[0], lowered))
            result.staged += 1
        if len(staged) + len(errors) >= CHUNK_ROWS:
            flush()
    flush()
    if result.rows == 0:
        raise ImportFailure("The file has a header row but no contacts.")
    return result


def _phase_two(job: ImportJob, staging: Staging, result: PhaseOneResult) -> None:
    p = staging.param
    org_param = p(job.organization_id)
    now = timezone.now()
    s, st = staging.rows, staging.tags
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {s}_email ON {s} (email)")
        # A later row with an address seen before is an error that points at the first one.
        cursor.execute(
            f"""
            INSERT INTO contacts_importrowerror (job_id, line, reason)
            SELECT %s, r.line, 'duplicate of line ' || r.first_line || ' (same email address)'
            FROM (SELECT line, min(line) OVER (PARTITION BY email) AS first_line FROM {s}) r
            WHERE r.line <> r.first_line
            """,
            [p(job.pk)],
        )
        duplicates = cursor.rowcount
        if duplicates:
            later_lines = (
                f"SELECT line FROM (SELECT line, min(line) OVER (PARTITION BY email) AS first_line FROM {s}) r "
                "WHERE r.line <> r.first_line"
            )
            cursor.execute(f"DELETE FROM {st} WHERE line IN ({later_lines})")
            cursor.execute(f"DELETE FROM {s} WHERE line IN ({later_lines})")
        cursor.execute(
            f"SELECT count(*) FROM {s} s JOIN contacts_contact c ON c.organization_id = %s AND c.email = s.email",
            [org_param],
        )
        existing = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {s}")
        unique_rows = cursor.fetchone()[0]

        consent = f"import:{job.pk}"
        cursor.execute(
            f"""
            INSERT INTO contacts_contact (
                organization_id, public_id, email, email_domain, phone, first_name, last_name, timezone, locale,
                attributes, status, consent_source, consent_at, created_at, updated_at
            )
            SELECT %s, {staging.new_uuid}, s.email, s.email_domain, s.phone, s.first_name, s.last_name, s.timezone,
                   s.locale, {staging.json_value}, 'subscribed', %s, %s, %s, %s
            FROM {s} s WHERE true
            ON CONFLICT (organization_id, email) DO UPDATE SET
                phone = COALESCE(excluded.phone, contacts_contact.phone),
                first_name = CASE WHEN excluded.first_name <> '' THEN excluded.first_name
                                  ELSE contacts_contact.first_name END,
                last_name = CASE WHEN excluded.last_name <> '' THEN excluded.last_name
                                 ELSE contacts_contact.last_name END,
                timezone = CASE WHEN excluded.timezone <> '' THEN excluded.timezone ELSE contacts_contact.timezone END,
                locale = CASE WHEN excluded.locale <> '' THEN excluded.locale ELSE contacts_contact.locale END,
                attributes = {staging.json_merge},
                updated_at = excluded.updated_at
            """,
            [org_param, consent, p(now), p(now), p(now)],
        )

        tag_ids = _ensure_tags(job, result.tag_names | set(job.tag_names))
        _link_tags(cursor, staging, org_param, now, tag_ids, job)
        if job.contact_list_id:
            cursor.execute(
                f"""
                INSERT INTO contacts_listmembership (contact_list_id, contact_id, subscribed_at)
                SELECT %s, c.id, %s FROM {s} s
                JOIN contacts_contact c ON c.organization_id = %s AND c.email = s.email
                WHERE true
                ON CONFLICT (contact_list_id, contact_id) DO NOTHING
                """,
                [p(job.contact_list_id), p(now), org_param],
            )
        # Addresses erased on request stay unmailable when they come back in a file.
        cursor.execute(
            f"""
            INSERT INTO contacts_suppression (id, organization_id, kind, value, reason, source, created_at)
            SELECT {staging.new_uuid}, %s, 'email', s.email, 'erased', %s, %s FROM {s} s
            WHERE s.email_hash IN (
                SELECT value FROM contacts_suppression WHERE organization_id = %s AND kind = 'email_hash'
            )
            ON CONFLICT (organization_id, kind, value) DO NOTHING
            """,
            [org_param, consent, p(now), org_param],
        )
        created = unique_rows - existing
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.COMPLETED,
            total_rows=result.rows,
            processed_rows=result.rows,
            created=created,
            updated=existing,
            failed=result.errors + duplicates,
            finished_at=timezone.now(),
        )
        _emit_hooks(job, now, created, tag_ids)
    logger.info(
        "import completed",
        extra={
            "import_job_id": str(job.pk),
            "rows": result.rows,
            "contacts_created": created,
            "contacts_updated": existing,
        },
    )


def _ensure_tags(job: ImportJob, names: set[str]) -> dict[str, uuid.UUID]:
    """Tag ids by lower-cased name, creating the tags that do not exist yet."""
    wanted = {name.strip().lower(): name.strip() for name in names if name.strip()}
    if not wanted:
        return {}
    existing = {t.name.lower(): t.pk for t in Tag.objects.for_organization(job.organization_id)}
    missing = [
        Tag(organization_id=job.organization_id, name=name) for key, name in wanted.items() if key not in existing
    ]
    Tag.objects.bulk_create(missing, ignore_conflicts=True)
    existing = {t.name.lower(): t.pk for t in Tag.objects.for_organization(job.organization_id)}
    return {key: existing[key] for key in wanted if key in existing}


def _link_tags(cursor, staging: Staging, org_param, now: datetime, tag_ids: dict[str, uuid.UUID], job: ImportJob):
    if not tag_ids:
        return
    s, st = staging.rows, staging.tags
    p = staging.param
    values = ", ".join(["(%s, %s)"] * len(tag_ids))
    mapping = [item for key, tag_id in tag_ids.items() for item in (key, p(tag_id))]
    # Tags named in the file's tags column.
    cursor.execute(
        f"""
        INSERT INTO contacts_contacttag (contact_id, tag_id, created_at)
        SELECT DISTINCT c.id, m.tag_id, %s
        FROM {st} st
        JOIN (VALUES {values}) AS m(name, tag_id) ON m.name = st.tag
        JOIN contacts_contact c ON c.organization_id = %s AND c.email = st.email
        WHERE true
        ON CONFLICT (contact_id, tag_id) DO NOTHING
        """
        if staging.vendor == "postgresql"
        else f"""
        INSERT INTO contacts_contacttag (contact_id, tag_id, created_at)
        SELECT DISTINCT c.id, m.tag_id, %s
        FROM {st} st
        JOIN (SELECT column1 AS name, column2 AS tag_id FROM (VALUES {values})) AS m ON m.name = st.tag
        JOIN contacts_contact c ON c.organization_id = %s AND c.email = st.email
        WHERE true
        ON CONFLICT (contact_id, tag_id) DO NOTHING
        """,
        [p(now), *mapping, org_param],
    )
    # Tags given to the whole import.
    for name in job.tag_names:
        tag_id = tag_ids.get(name.strip().lower())
        if tag_id is None:
            continue
        cursor.execute(
            f"""
            INSERT INTO contacts_contacttag (contact_id, tag_id, created_at)
            SELECT c.id, %s, %s FROM {s} s
            JOIN contacts_contact c ON c.organization_id = %s AND c.email = s.email
            WHERE true
            ON CONFLICT (contact_id, tag_id) DO NOTHING
            """,
            [p(tag_id), p(now), org_param],
        )


def _emit_hooks(job: ImportJob, stamp: datetime, created: int, tag_ids: dict[str, uuid.UUID]) -> None:
    organization_id = job.organization_id
    if created:
        hooks.emit(
            organization_id=organization_id,
            name=hooks.CONTACT_CREATED,
            # consent_source is written on insert only, so it marks the contacts this import created.
            contacts=Contact.objects.filter(organization_id=organization_id, consent_source=f"import:{job.pk}"),
            properties={"source": "import", "import_job_id": str(job.pk)},
            occurred_at=stamp,
        )
    for name, tag_id in tag_ids.items():
        hooks.emit(
            organization_id=organization_id,
            name=hooks.TAG_ADDED,
            contacts=Contact.objects.filter(tag_links__tag_id=tag_id, tag_links__created_at=stamp),
            properties={"tag": name, "tag_id": str(tag_id), "source": "import"},
            occurred_at=stamp,
        )
