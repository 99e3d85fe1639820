"""CSV import of contacts: streamed, validated, staged, then upserted in set-based SQL.

The reader streams the file (never whole in memory). A first fast pass counts the
lines and settles the encoding over the whole file: UTF-8 (with or without BOM), else
Windows-1252 (what Excel writes on Windows; a superset of Latin-1's printable
characters). It sniffs the delimiter (`,` `;` tab `|`), maps the header and validates
each row, in chunks of a few thousand rows. Bad rows become ImportRowError with the
line they start on: bytes that are not valid in the file's encoding, and a quote that
is never closed properly (the lines it ran together are reported, then read again as
rows of their own, so no row disappears into one cell).

The writer (ChunkWriter) takes chunks inside one transaction: it stages them
(PostgreSQL: COPY), reports later duplicates of an address within the file against
the first line, and upserts the chunk with one INSERT ... SELECT ... ON CONFLICT,
then links tags and the list and records the import's custom event (ImportJob.event_name)
for every contact it created or updated. On PostgreSQL it runs in a thread of its own so the
database works while Python parses the next chunk. The transaction commits after the
last chunk, so a file that turns out to be unreadable leaves no contacts behind.
Every wait between the reader and the writer is bounded by IMPORT_STALL_SECONDS: a
side that hears nothing from the other for that long fails the job, so an import can
never hold a worker.

Columns: email and phone (a file needs one of them, a row at least one), first_name,
last_name, tags (separated by `;`), timezone, locale, and consent_email, consent_sms,
consent_whatsapp (yes/no, true/false, 1/0); common spellings are recognised (E-mail,
First Name, mobile, ...). Every other column becomes a contact attribute; numbers and
true/false are stored typed, numbers with leading zeros stay text. Empty cells never
overwrite data.

A row with an email address is matched to a contact by that address. A row with a phone
number and no email address (a phone-only contact) is matched to the organization's
contact with that number, or creates one; within a file such rows are told apart by number.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import logging
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from config.ids import uuid7_hexes
from contacts import hooks, services
from contacts.models import Contact, ContactEvent, ImportJob, ImportRowError, ImportStatus
from contacts.normalize import (
    InvalidValue,
    address_hash,
    normalize_email,
    normalize_phone,
    normalize_timezone,
    typed_attribute,
)

logger = logging.getLogger(__name__)

SAMPLE_BYTES = 64 * 1024
CHUNK_ROWS = 20_000
# Reading and writing overlap; the first chunk is read with nothing to write yet and the last is
# written with nothing left to read. Chunks start small, grow, and shrink again towards the end.
MIN_CHUNK_ROWS = 2_000
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
    "consent_email": {"consent_email", "email_consent"},
    "consent_sms": {"consent_sms", "sms_consent"},
    "consent_whatsapp": {"consent_whatsapp", "whatsapp_consent"},
}
CONSENT_COLUMNS = (("email", "consent_email"), ("sms", "consent_sms"), ("whatsapp", "consent_whatsapp"))
CONSENT_ANSWERS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
STAGE_COLUMNS = [
    "line",
    "public_id",
    "email",
    "email_domain",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "attributes",
    "consent",
]


CONTACT_INSERT_COLUMNS = (
    "organization_id, public_id, email, email_domain, phone, first_name, last_name, timezone, "
    "locale, attributes, consent, status, consent_source, consent_at, created_at, updated_at"
)


class ImportFailure(Exception):
    """The file as a whole cannot be imported; the message says why, for the user."""


class ImportStalled(ImportFailure):
    """The reader or the writer heard nothing from the other for IMPORT_STALL_SECONDS."""

    def __init__(self, seconds: float):
        super().__init__(
            f"The import stalled (no progress for {seconds:g} seconds) and was stopped; nothing was imported. "
            "Try again later or contact support."
        )


NO_DATA_ROWS = "The file has no data rows: only a header row (and perhaps blank lines)."


@dataclass
class FileFormat:
    encoding: str
    delimiter: str


@dataclass
class ColumnMap:
    fields: dict[str, int]  # our field -> column index
    attributes: list[tuple[str, int]]  # attribute key -> column index
    width: int

    @property
    def at(self) -> dict[str, int]:
        """Column index of every known field; a field the file lacks points past the last column."""
        if not hasattr(self, "_at"):
            self._at = {name: self.fields.get(name, self.width) for name in FIELD_ALIASES}
        return self._at


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
            encoding = "cp1252"
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
    if "email" not in fields and "phone" not in fields:
        shown = ", ".join(h.strip() for h in header[:10]) or "(nothing)"
        raise ImportFailure(
            f"No email or phone column. The header row has: {shown}. Name one column 'email' (or 'phone')."
        )
    return ColumnMap(fields=fields, attributes=attributes, width=len(header))


class _LineSource:
    """Feeds csv.reader one physical line at a time and keeps the lines of the current record.

    A record that runs over several lines can then be checked for a quote that was never closed,
    and its later lines handed to the reader again. Lines of one record always have consecutive
    numbers, pushed-back lines included, so a record starts at `number - len(record) + 1`.
    """

    def __init__(self, text: io.TextIOBase):
        self._lines = iter(text)
        self._pending: list[str] = []  # pushed back, last first
        self.number = 0  # physical line number of the last line handed out
        self.record: list[str] = []

    def __iter__(self) -> _LineSource:
        return self

    def __next__(self) -> str:
        line = self._pending.pop() if self._pending else next(self._lines)
        self.number += 1
        self.record.append(line)
        return line

    @property
    def record_start(self) -> int:
        return self.number - len(self.record) + 1

    def push_back(self, lines: list[str]) -> None:
        self._pending.extend(reversed(lines))
        self.number -= len(lines)


def _quotes_close(lines: list[str], delimiter: str) -> bool:
    """Whether these raw lines are well-formed CSV (every quoted cell closed, then a delimiter or line end)."""
    try:
        for _ in csv.reader(lines, delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        return False
    return True


_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # undecodable bytes, as errors="surrogateescape" keeps them
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp1252": "Windows-1252"}


class BadRow(str):
    """A reason the reader found a row unreadable, yielded in place of its cells."""


def read_rows(
    stream: BinaryIO, fmt: FileFormat, *, check_bytes: bool = True
) -> tuple[list[str], Iterator[tuple[int, list[str] | BadRow]]]:
    """The header and an iterator of (first line of the row, cells or BadRow); the file is read as it goes.

    `check_bytes`: the file has bytes its encoding cannot decode; the rows holding them are reported.
    """
    encoding = fmt.encoding
    text = io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline="")
    source = _LineSource(text)
    reader = csv.reader(source, delimiter=fmt.delimiter, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailure("The file has no header row.") from None
    except csv.Error as exc:
        raise ImportFailure(f"The header row is malformed ({exc}).") from None
    if len(source.record) > 1 and not _quotes_close(source.record, fmt.delimiter):
        raise ImportFailure('The header row has a quote (") that is not closed properly.')
    # Column names go into messages and attribute keys: an undecodable byte becomes U+FFFD there.
    header = [_ESCAPED_BYTES.sub("\ufffd", name) for name in header]
    bad_bytes = (
        f"has bytes that are not valid {ENCODING_NAMES[encoding]} text (the file mixes encodings); "
        "save the file as UTF-8 and import it again"
    )

    def rows() -> Iterator[tuple[int, list[str] | BadRow]]:
        record = source.record
        while True:
            record.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # The reader starts afresh at the next line; a record that ran over several lines is
                # reported below like any other whose quote never closed.
                if len(record) < 2:
                    yield source.record_start, BadRow(f"the CSV is malformed ({exc})")
                    continue
                cells = None
            if len(record) > 1 and (cells is None or not _quotes_close(record, fmt.delimiter)):
                # A quote opened here and never closed properly, so the reader ran the following lines
                # into one cell (to the end of the file, or to the next stray quote). Report this line
                # and read the others again as rows of their own.
                first, last = source.record_start, source.number
                yield (
                    first,
                    BadRow(
                        f'a quote (") opened on this line is not closed properly, so lines {first}-{last} '
                        f"ran together; lines {first + 1}-{last} were read again as rows of their own"
                    ),
                )
                source.push_back(record[1:])
                continue
            joined = "".join(cells)
            if not joined or joined.isspace():
                continue
            if check_bytes and not joined.isascii() and _ESCAPED_BYTES.search(joined):
                yield source.record_start, BadRow(bad_bytes)
                continue
            yield source.record_start, cells

    return header, rows()


@dataclass
class FileScan:
    lines: int = 0
    invalid_utf8: int = 0  # bytes that are not part of a valid UTF-8 sequence
    utf8_chars: int = 0  # non-ASCII characters that are valid UTF-8
    cp1252_undefined: bool = False  # bytes Windows-1252 leaves undefined

    def encoding(self, sniffed: str) -> str:
        """UTF-8 unless most non-ASCII bytes are not UTF-8: then Windows-1252 (a BOM always means UTF-8)."""
        if sniffed == "utf-8-sig":
            return sniffed
        if self.invalid_utf8 == 0 or self.utf8_chars >= self.invalid_utf8:
            return "utf-8"
        return "cp1252"

    def has_bad_bytes(self, encoding: str) -> bool:
        return self.cp1252_undefined if encoding == "cp1252" else self.invalid_utf8 > 0


def scan_file(stream: BinaryIO) -> FileScan:
    """One pass over the raw bytes: the line count, and whether (and how much) the file is UTF-8.

    Decided over the whole file, not a sample: a Windows-1252 file whose first accent is past the sample
    would otherwise be read as UTF-8 and fail. ASCII blocks, the common case, are only counted.
    """
    scan = FileScan()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    for block in iter(lambda: stream.read(1 << 20), b""):
        scan.lines += block.count(b"\n")
        if block.isascii() and not decoder.getstate()[0]:
            continue
        _scan_text(scan, decoder.decode(block))
        scan.cp1252_undefined = scan.cp1252_undefined or bool(_CP1252_UNDEFINED.search(block))
    _scan_text(scan, decoder.decode(b"", final=True))
    stream.seek(0)
    return scan


def _scan_text(scan: FileScan, text: str) -> None:
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    if non_ascii:
        invalid = len(_ESCAPED_BYTES.findall(text))
        scan.invalid_utf8 += invalid
        scan.utf8_chars += non_ascii - invalid


_json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def parse_row(cells: list[str], columns: ColumnMap) -> tuple[tuple, list[str]]:
    """One row as a staging tuple (without line and id) plus its tag names; raises InvalidValue."""
    width = columns.width
    if len(cells) > width and "".join(cells[width:]).strip():
        raise InvalidValue(f"has {len(cells)} cells but the header has {width} columns")
    if max(map(len, cells)) > MAX_FIELD_CHARS:
        raise InvalidValue(f"a cell is longer than {MAX_FIELD_CHARS} characters")
    # Pad so every mapped column exists; a missing field points at the last, empty cell.
    padded = cells[:width] + [""] * (width - len(cells) + 1)
    at = columns.at
    email_text = padded[at["email"]].strip()
    email = normalize_email(email_text) if email_text else None
    phone_text = padded[at["phone"]].strip()
    phone = normalize_phone(phone_text) if phone_text else None
    if email is None and phone is None:
        raise InvalidValue("email and phone are both missing; a contact needs one of them")
    consent = {}
    for channel, column in CONSENT_COLUMNS:
        answer = padded[at[column]].strip()
        if answer:
            if answer.lower() not in CONSENT_ANSWERS:
                raise InvalidValue(f"{column}: {answer[:20]!r} is not yes/no, true/false or 1/0")
            consent[channel] = CONSENT_ANSWERS[answer.lower()]
    timezone_text = padded[at["timezone"]].strip()
    tz = normalize_timezone(timezone_text) if timezone_text else ""
    attributes = {}
    for key, index in columns.attributes:
        value = padded[index]
        if value and not value.isspace():
            attributes[key] = typed_attribute(value)
    tags_text = padded[at["tags"]]
    tags = [t.strip()[:100] for t in tags_text.split(";") if t.strip()] if tags_text else []
    row = (
        email,
        email.rpartition("@")[2] if email else "",
        phone,
        padded[at["first_name"]].strip()[:150],
        padded[at["last_name"]].strip()[:150],
        tz,
        padded[at["locale"]].strip()[:16],
        _json_text(attributes) if attributes else "{}",
        _json_text(consent) if consent else "{}",
    )
    return row, tags


def row_address(row: tuple) -> str:
    """What tells a parsed row's contact apart within a file: the email address, else the phone
    number (`tel:` + E.164, which no email address can be)."""
    return row[0] if row[0] is not None else "tel:" + row[2]


def _duplicate_reason(first: int, address: str) -> str:
    same = "same phone number" if address.startswith("tel:") else "same email address"
    return f"duplicate of line {first} ({same})"


# --- the database side ------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows parsed from one stretch of the file, on their way to the database."""

    rows: list[tuple] = field(default_factory=list)  # (line, *STAGE_COLUMNS[1:])
    tag_rows: list[tuple] = field(default_factory=list)  # (line, lower-cased tag name)
    tag_names: dict[str, str] = field(default_factory=dict)  # lower-cased -> as written
    errors: list[tuple[int, str]] = field(default_factory=list)
    phone_only: int = 0  # rows without an email address
    rows_copy: bytes | None = None
    tags_copy: bytes | None = None

    def __len__(self) -> int:
        return len(self.rows) + len(self.errors)

    def with_public_ids(self) -> Chunk:
        ids = uuid7_hexes(len(self.rows))
        self.rows = [(row[0], public_id, *row[2:]) for row, public_id in zip(self.rows, ids, strict=True)]
        return self

    def encode_for_copy(self) -> None:
        """Turn the rows into COPY text now, in the reading thread, so the writer thread only ships bytes."""
        self.rows_copy = _copy_text(self.rows)
        self.tags_copy = _copy_text(self.tag_rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if not isinstance(value, str):
        return str(value)
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_text(rows: list[tuple]) -> bytes:
    """PostgreSQL COPY text format: tab-separated, backslash escapes, \\N for NULL."""
    lines = []
    for row in rows:
        line = "\t".join([value if type(value) is str else _copy_value(value) for value in row])
        # Most rows need no escaping: no backslash but those of \\N, no line break, only the separators' tabs.
        if line.count("\\") != row.count(None) or "\n" in line or "\r" in line or line.count("\t") != len(row) - 1:
            line = "\t".join(map(_copy_value, row))
        lines.append(line)
    lines.append("")
    return "\n".join(lines).encode()


@dataclass
class Totals:
    rows: int = 0
    created: int = 0
    existing: int = 0
    failed: int = 0


class _Abort(Exception):
    """The reader gave up (bad file, stall): roll the import back."""


# row_address() in SQL, over a staged row `n`.
ADDRESS_SQL = "COALESCE(n.email, 'tel:' || n.phone)"

_DONE = object()
_ABORT = object()


class ChunkWriter:
    """The database side of one import, inside one transaction.

    Every chunk is staged, checked for addresses seen earlier in the file, and
    upserted at once, so PostgreSQL works on chunk N while Python parses chunk
    N+1 (the writer runs in its own thread there). Nothing is committed until the
    last chunk: a file that turns out to be unreadable leaves no contacts behind.
    """

    def __init__(self, job: ImportJob):
        suffix = job.id.hex
        self.job = job
        self.stage = f"import_stage_{suffix}"  # every accepted row, one per address (row_address)
        self.incoming = f"import_in_{suffix}"  # the current chunk
        self.incoming_tags = f"import_in_tags_{suffix}"
        self.chunk_ids = f"import_ids_{suffix}"  # contact ids of the current chunk
        self.accepted = f"import_ok_{suffix}"  # lines of the current chunk seen first here
        self.vendor = connection.vendor
        self.now = timezone.now()
        self.consent = f"import:{job.pk}"
        self.tag_ids: dict[str, uuid.UUID] = {}
        self.job_tag_ids: list[uuid.UUID] = []
        self.totals = Totals()
        self.errors_written = 0
        self.first_contacts = False
        self.events_recorded = 0

    # --- dialect ---

    def param(self, value):
        """A value for raw SQL: SQLite takes UUIDs as hex and datetimes as Django stores them."""
        if self.vendor == "sqlite":
            if isinstance(value, uuid.UUID):
                return value.hex
            if isinstance(value, datetime):
                return connection.ops.adapt_datetimefield_value(value)
        return value

    def _values(self, alias: str, columns: list[str], count: int) -> str:
        rows = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * count)
        if self.vendor == "postgresql":
            return f"(VALUES {rows}) AS {alias}({', '.join(columns)})"
        picked = ", ".join(f"column{i + 1} AS {name}" for i, name in enumerate(columns))
        return f"(SELECT {picked} FROM (VALUES {rows})) AS {alias}"

    # --- lifecycle ---

    def start(self) -> None:
        if self.vendor == "postgresql":
            # Before the first temporary table of the session: room for the staging index in memory.
            with connection.cursor() as cursor:
                cursor.execute("SET temp_buffers = '128MB'")
        else:
            connection.ensure_connection()
            connection.connection.create_function("cc_sha256", 1, address_hash, deterministic=True)
        columns = (
            "line integer, public_id uuid, email text, email_domain text, phone text, "
            "first_name text, last_name text, timezone text, locale text, attributes text, consent text"
        )
        with connection.cursor() as cursor:
            self._drop(cursor)
            cursor.execute(f"CREATE TEMPORARY TABLE {self.stage} (address text PRIMARY KEY, line integer NOT NULL)")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.incoming} ({columns})")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.accepted} (line integer PRIMARY KEY)")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.incoming_tags} (line integer, tag text)")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.chunk_ids} (id bigint, address text, inserted boolean)")
        # The organization's first contacts: every row of the file is new unless someone else adds it meanwhile.
        self.first_contacts = not Contact.objects.filter(organization_id=self.job.organization_id).exists()
        tags = _ensure_tags(self.job.organization_id, {name: name for name in self.job.tag_names})
        self.tag_ids.update(tags)
        self.job_tag_ids = list(tags.values())

    def _drop(self, cursor) -> None:
        for table in (self.stage, self.incoming, self.incoming_tags, self.chunk_ids, self.accepted):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")

    def drop(self) -> None:
        with connection.cursor() as cursor:
            self._drop(cursor)

    def write(self, chunk: Chunk) -> None:
        p = self.param
        org = p(self.job.organization_id)
        self.totals.rows += len(chunk)
        self._write_errors([(line, reason) for line, reason in chunk.errors])
        self.totals.failed += len(chunk.errors)
        if not chunk.rows:
            return
        new_tags = {key: name for key, name in chunk.tag_names.items() if key not in self.tag_ids}
        if new_tags:
            self.tag_ids.update(_ensure_tags(self.job.organization_id, new_tags))
        s, i, ids, acc = self.stage, self.incoming, self.chunk_ids, self.accepted
        chunk_tables = (i, self.incoming_tags, ids, acc)
        with connection.cursor() as cursor:
            if self.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(chunk_tables)}")
            else:
                for table in chunk_tables:
                    cursor.execute(f"DELETE FROM {table}")
            self._copy(cursor, i, STAGE_COLUMNS, chunk.rows, chunk.rows_copy)
            if chunk.tag_rows:
                self._copy(cursor, self.incoming_tags, ["line", "tag"], chunk.tag_rows, chunk.tags_copy)
            # The first line with an address wins; later ones are reported against it. The reader
            # already dropped repeats within the chunk; `stage` (email -> first line) catches
            # repeats of earlier chunks. Every statement reads the chunk's own tables and reaches
            # `stage` only through its primary key, so a chunk costs the same at any point in the file.
            stage_insert = (
                f"INSERT INTO {s} (address, line) SELECT {ADDRESS_SQL}, line FROM {i} n WHERE true "
                "ON CONFLICT (address) DO NOTHING"
            )
            if self.vendor == "postgresql":
                cursor.execute(
                    f"WITH ins AS ({stage_insert} RETURNING line) INSERT INTO {acc} (line) SELECT line FROM ins"
                )
            else:
                cursor.execute(f"{stage_insert} RETURNING line")
                cursor.executemany(f"INSERT INTO {acc} (line) VALUES (%s)", cursor.fetchall())
            cursor.execute(
                f"""
                INSERT INTO contacts_importrowerror (job_id, line, reason)
                SELECT %s, n.line, 'duplicate of line ' || (SELECT s.line FROM {s} s WHERE s.address = {ADDRESS_SQL})
                       || CASE WHEN n.email IS NULL THEN ' (same phone number)' ELSE ' (same email address)' END
                FROM {i} n WHERE NOT EXISTS (SELECT 1 FROM {acc} a WHERE a.line = n.line)
                """,
                [p(self.job.pk)],
            )
            duplicates = max(cursor.rowcount, 0)
            self.totals.failed += duplicates
            accepted = f"{i} n JOIN {acc} a ON a.line = n.line WHERE true"
            upsert = self._upsert_sql(f"{accepted} AND n.email IS NOT NULL")
            upsert_params = [org, self.consent, p(self.now), p(self.now), p(self.now)]
            if self.vendor == "postgresql":
                if not (self.first_contacts and self._insert_new(cursor, upsert_params)):
                    # One pass: the upsert hands back each contact's id and whether it was new (xmax = 0).
                    cursor.execute(
                        f"WITH up AS ({upsert} RETURNING id, email, (xmax = 0) AS inserted) "
                        f"INSERT INTO {ids} (id, address, inserted) SELECT id, email, inserted FROM up",
                        upsert_params,
                    )
            else:
                cursor.execute(upsert, upsert_params)
                # Rows this upsert inserted carry its timestamp; updated ones keep their created_at.
                cursor.execute(
                    f"INSERT INTO {ids} (id, address, inserted) SELECT c.id, c.email, c.created_at = %s FROM {i} n "
                    f"JOIN {acc} a ON a.line = n.line "
                    "JOIN contacts_contact c ON c.organization_id = %s AND c.email = n.email",
                    [p(self.now), org],
                )
            if chunk.phone_only:
                self._write_phone_only(cursor, upsert_params)
            cursor.execute(f"SELECT count(*), count(*) FILTER (WHERE inserted) FROM {ids}")
            upserted, created = cursor.fetchone()
            self.totals.created += created
            self.totals.existing += upserted - created
            self._link_tags(cursor, chunk, created=created, existing=upserted - created)
            if self.job.event_name:
                self._record_event(cursor)
            if self.job.contact_list_id:
                cursor.execute(
                    f"""
                    INSERT INTO contacts_listmembership (contact_list_id, contact_id, subscribed_at)
                    SELECT %s, x.id, %s FROM {ids} x WHERE true
                    ON CONFLICT (contact_list_id, contact_id) DO NOTHING
                    """,
                    [p(self.job.contact_list_id), p(self.now)],
                )
            # Addresses erased on request stay unmailable when they come back in a file (hashed
            # in SQL, and only when the organization has erased anyone).
            cursor.execute(
                "SELECT 1 FROM contacts_suppression WHERE organization_id = %s AND kind = 'email_hash' LIMIT 1", [org]
            )
            if cursor.fetchone() is None:
                return
            cursor.execute(
                f"""
                INSERT INTO contacts_suppression (id, organization_id, kind, value, reason, source, created_at)
                SELECT {self._new_uuid}, %s, 'email', n.email, 'erased', %s, %s FROM {accepted}
                AND {self._sha256("n.email")} IN (
                    SELECT value FROM contacts_suppression WHERE organization_id = %s AND kind = 'email_hash'
                )
                ON CONFLICT (organization_id, kind, value) DO NOTHING
                """,
                [org, self.consent, p(self.now), org],
            )

    def _insert_sql(self, rows: str) -> str:
        """INSERT of the staged `rows` (a FROM clause over `incoming n`) into contacts_contact."""
        return f"""
            INSERT INTO contacts_contact ({CONTACT_INSERT_COLUMNS})
            SELECT %s, n.public_id, n.email, n.email_domain, n.phone, n.first_name, n.last_name,
                   n.timezone, n.locale, {self._json("n.attributes")}, {self._json("n.consent")}, 'subscribed',
                   %s, %s, %s, %s
            FROM {rows}
        """

    def _upsert_sql(self, rows: str) -> str:
        """The same INSERT, ON CONFLICT DO UPDATE: empty cells never overwrite, attributes merge."""
        return f"""
            {self._insert_sql(rows)}
            ON CONFLICT (organization_id, email) DO UPDATE SET
                phone = COALESCE(excluded.phone, contacts_contact.phone),
                first_name = CASE WHEN excluded.first_name <> '' THEN excluded.first_name
                                  ELSE contacts_contact.first_name END,
                last_name = CASE WHEN excluded.last_name <> '' THEN excluded.last_name
                                 ELSE contacts_contact.last_name END,
                timezone = CASE WHEN excluded.timezone <> '' THEN excluded.timezone
                                ELSE contacts_contact.timezone END,
                locale = CASE WHEN excluded.locale <> '' THEN excluded.locale ELSE contacts_contact.locale END,
                attributes = {self._json_merge("attributes", "excluded.attributes")},
                consent = {self._json_merge("consent", "excluded.consent")},
                updated_at = excluded.updated_at
        """

    def _write_phone_only(self, cursor, params: list) -> None:
        """The chunk's accepted rows without an email address: each updates the organization's contact
        with that number (the first one, should several share it) or creates a contact. Their ids go to
        `chunk_ids` under the row's address (`tel:` + number), like the email rows' upsert."""
        p = self.param
        i, acc, ids = self.incoming, self.accepted, self.chunk_ids
        org = p(self.job.organization_id)
        rows = f"{i} n JOIN {acc} a ON a.line = n.line WHERE n.email IS NULL"
        same_number = "c.organization_id = %s AND c.phone = n.phone AND c.erased_at IS NULL"
        cursor.execute(
            f"""
            INSERT INTO {ids} (id, address, inserted)
            SELECT (SELECT min(c.id) FROM contacts_contact c WHERE {same_number}), {ADDRESS_SQL}, false
            FROM {rows} AND EXISTS (SELECT 1 FROM contacts_contact c WHERE {same_number})
            """,
            [org, org],
        )
        if cursor.rowcount:
            cursor.execute(
                f"""
                UPDATE contacts_contact SET
                    first_name = CASE WHEN n.first_name <> '' THEN n.first_name ELSE contacts_contact.first_name END,
                    last_name = CASE WHEN n.last_name <> '' THEN n.last_name ELSE contacts_contact.last_name END,
                    timezone = CASE WHEN n.timezone <> '' THEN n.timezone ELSE contacts_contact.timezone END,
                    locale = CASE WHEN n.locale <> '' THEN n.locale ELSE contacts_contact.locale END,
                    attributes = {self._json_merge("attributes", self._json("n.attributes"))},
                    consent = {self._json_merge("consent", self._json("n.consent"))},
                    updated_at = %s
                FROM {i} n JOIN {ids} x ON x.address = {ADDRESS_SQL} AND NOT x.inserted
                WHERE n.email IS NULL AND contacts_contact.id = x.id
                """,
                [p(self.now)],
            )
        insert = self._insert_sql(f"{rows} AND NOT EXISTS (SELECT 1 FROM {ids} x WHERE x.address = {ADDRESS_SQL})")
        if self.vendor == "postgresql":
            cursor.execute(
                f"WITH ins AS ({insert} RETURNING id, phone) "
                f"INSERT INTO {ids} (id, address, inserted) SELECT id, 'tel:' || phone, true FROM ins",
                params,
            )
        else:
            cursor.execute(f"{insert} RETURNING id, 'tel:' || phone", params)
            cursor.executemany(f"INSERT INTO {ids} (id, address, inserted) VALUES (%s, %s, true)", cursor.fetchall())

    def _insert_new(self, cursor, params: list) -> bool:
        """PostgreSQL, importing into an organization that had no contacts: the chunk's contacts are all
        new, so a plain INSERT (no speculative insertion per row) does. Should another writer have added
        one of these addresses meanwhile, it fails on the unique index inside a savepoint and the caller
        upserts the chunk instead. Returns whether the rows went in."""
        i, acc, ids = self.incoming, self.accepted, self.chunk_ids
        try:
            with transaction.atomic():
                rows = f"{i} n JOIN {acc} a ON a.line = n.line WHERE n.email IS NOT NULL"
                cursor.execute(
                    f"WITH ins AS ({self._insert_sql(rows)} RETURNING id, email) "
                    f"INSERT INTO {ids} (id, address, inserted) SELECT id, email, true FROM ins",
                    params,
                )
        except IntegrityError:
            return False
        return True

    def _copy(self, cursor, table: str, columns: list[str], rows: list[tuple], encoded: bytes | None) -> None:
        if self.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                if encoded is not None:
                    copy.write(encoded)
                else:
                    for row in rows:
                        copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @property
    def event_properties(self) -> dict:
        return {"source": "import", "import_job_id": str(self.job.pk)}

    def _record_event(self, cursor) -> None:
        """The import's custom event for every contact this chunk created or updated, in one INSERT.

        `chunk_ids` holds exactly those contacts, whichever way the chunk went in (the upsert, or the
        plain insert of an organization's first contacts), and an address is upserted once per file.
        """
        p = self.param
        cursor.execute(
            f"""
            INSERT INTO contacts_contactevent (organization_id, contact_id, name, properties, occurred_at, created_at)
            SELECT %s, x.id, %s, {self._json("%s")}, %s, %s FROM {self.chunk_ids} x WHERE true
            """,
            [
                p(self.job.organization_id),
                self.job.event_name,
                json.dumps(self.event_properties),
                p(self.now),
                p(self.now),
            ],
        )
        self.events_recorded += max(cursor.rowcount, 0)

    def _write_errors(self, errors: list[tuple[int, str]]) -> None:
        room = MAX_ROW_ERRORS - self.errors_written
        if errors and room > 0:
            ImportRowError.objects.bulk_create(
                [ImportRowError(job_id=self.job.pk, line=line, reason=reason[:500]) for line, reason in errors[:room]]
            )
            self.errors_written += min(len(errors), room)

    def _link_tags(self, cursor, chunk: Chunk, *, created: int, existing: int) -> None:
        """Tags from the file's tags column and the import's own tags, in one INSERT."""
        p = self.param
        selects, params = [], []
        # Every row gets the import's own tags below: a file tag that is one of them is linked there
        # once. Each (contact, tag) pair comes out once, so new contacts' links need no ON CONFLICT.
        job_tags = set(self.job_tag_ids)
        named = {
            key: self.tag_ids[key]
            for _line, key in chunk.tag_rows
            if key in self.tag_ids and self.tag_ids[key] not in job_tags
        }
        if named:
            selects.append(
                f"SELECT x.id AS contact_id, x.inserted, m.tag_id AS tag_id FROM {self.incoming_tags} t "
                f"JOIN {self.accepted} a ON a.line = t.line "
                f"JOIN {self.incoming} n ON n.line = t.line "
                f"JOIN {self.chunk_ids} x ON x.address = {ADDRESS_SQL} "
                f"JOIN {self._values('m', ['name', 'tag_id'], len(named))} ON m.name = t.tag"
            )
            params += [item for key, tag_id in named.items() for item in (key, p(tag_id))]
        if self.job_tag_ids:
            selects.append(
                f"SELECT x.id AS contact_id, x.inserted, j.tag_id AS tag_id FROM {self.chunk_ids} x "
                f"CROSS JOIN {self._values('j', ['tag_id'], len(self.job_tag_ids))}"
            )
            params += [p(tag_id) for tag_id in self.job_tag_ids]
        if not selects:
            return
        links = f"SELECT links.contact_id, links.tag_id, %s FROM ({' UNION ALL '.join(selects)}) links"
        # A contact this chunk created has no links yet, and no other transaction can see it to
        # link it: its links are plain inserts (no speculative insertion per row). Only the links
        # of contacts that existed before need ON CONFLICT.
        for new, count in ((True, created), (False, existing)):
            if count:
                cursor.execute(
                    f"INSERT INTO contacts_contacttag (contact_id, tag_id, created_at) {links} "
                    f"WHERE links.inserted = {'true' if new else 'false'}"
                    f"{'' if new else ' ON CONFLICT (contact_id, tag_id) DO NOTHING'}",
                    [p(self.now), *params],
                )

    def finish(self) -> None:
        if self.totals.rows == 0:
            raise ImportFailure(NO_DATA_ROWS)
        # Only a running job completes: one failed meanwhile (a stall) rolls back instead of committing.
        completed = ImportJob.objects.filter(pk=self.job.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.COMPLETED,
            total_rows=self.totals.rows,
            processed_rows=self.totals.rows,
            created=self.totals.created,
            updated=self.totals.existing,
            failed=self.totals.failed,
            finished_at=timezone.now(),
        )
        if not completed:
            raise ImportFailure("The import was stopped before it finished.")
        self._emit_hooks()

    def _emit_hooks(self) -> None:
        organization_id = self.job.organization_id
        if self.totals.created:
            hooks.emit(
                organization_id=organization_id,
                name=hooks.CONTACT_CREATED,
                # consent_source is written on insert only, so it marks the contacts this import created.
                contacts=Contact.objects.filter(organization_id=organization_id, consent_source=self.consent),
                properties={"source": "import", "import_job_id": str(self.job.pk)},
                occurred_at=self.now,
            )
        for key, tag_id in self.tag_ids.items():
            hooks.emit(
                organization_id=organization_id,
                name=hooks.TAG_ADDED,
                contacts=Contact.objects.filter(tag_links__tag_id=tag_id, tag_links__created_at=self.now),
                properties={"tag": key, "tag_id": str(tag_id), "source": "import"},
                occurred_at=self.now,
            )
        if self.events_recorded:
            # The events just written name their contacts (found through the (organization, name,
            # occurred_at) index); unlike the contacts' own columns, nothing changes them after the commit.
            recorded = ContactEvent.objects.filter(
                organization_id=organization_id,
                name=self.job.event_name,
                occurred_at=self.now,
                properties__import_job_id=str(self.job.pk),
            )
            hooks.emit(
                organization_id=organization_id,
                name=self.job.event_name,
                contacts=Contact.objects.filter(organization_id=organization_id, pk__in=recorded.values("contact_id")),
                properties=self.event_properties,
                occurred_at=self.now,
            )

    def _sha256(self, column: str) -> str:
        """SQL for normalize.address_hash() of an already normalized address."""
        if self.vendor == "postgresql":
            return f"encode(sha256(convert_to({column}, 'UTF8')), 'hex')"
        return f"cc_sha256({column})"

    @property
    def _new_uuid(self) -> str:
        return "gen_random_uuid()" if self.vendor == "postgresql" else "lower(hex(randomblob(16)))"

    def _json(self, column: str) -> str:
        return f"{column}::jsonb" if self.vendor == "postgresql" else f"json({column})"

    def _json_merge(self, column: str, changes: str) -> str:
        """SQL for the contact's JSON `column` with the keys of `changes` (an SQL expression) replaced."""
        if self.vendor == "postgresql":
            return f"contacts_contact.{column} || {changes}"
        return f"json_patch(contacts_contact.{column}, {changes})"


def _ensure_tags(organization_id, names: dict[str, str]) -> dict[str, uuid.UUID]:
    """Tag ids by lower-cased name, creating the tags that do not exist yet."""
    tags = services.tags_get_or_create(
        organization_id=organization_id, names=[name for name in names.values() if name.strip()]
    )
    return {tag.name.lower(): tag.pk for tag in tags}


# --- the import -------------------------------------------------------------------------------


def read_chunks(job: ImportJob, stream: BinaryIO) -> Iterator[Chunk]:
    """Parse and validate the file, chunk by chunk; raises ImportFailure for an unreadable file."""
    sample = stream.read(SAMPLE_BYTES)
    fmt = detect_format(sample)
    stream.seek(0)
    scan = scan_file(stream)
    fmt.encoding = scan.encoding(fmt.encoding)
    estimated = max(scan.lines - 1, 0)
    ImportJob.objects.filter(pk=job.pk).update(encoding=fmt.encoding, delimiter=fmt.delimiter, total_rows=estimated)
    header, rows = read_rows(stream, fmt, check_bytes=scan.has_bad_bytes(fmt.encoding))
    columns = map_columns(header)
    chunk = Chunk()
    limit = _chunk_limit(grown=MIN_CHUNK_ROWS, remaining=estimated)
    first_lines: dict[str, int] = {}  # this chunk's addresses; earlier chunks are checked in the database
    seen_rows = False
    for line, cells in rows:
        seen_rows = True
        try:
            if isinstance(cells, BadRow):
                raise InvalidValue(cells)
            row, tags = parse_row(cells, columns)
        except InvalidValue as exc:
            chunk.errors.append((line, str(exc)))
        else:
            address = row_address(row)
            first = first_lines.setdefault(address, line)
            if first != line:
                chunk.errors.append((line, _duplicate_reason(first, address)))
                continue
            chunk.phone_only += row[0] is None
            chunk.rows.append((line, None, *row))  # public_id: given per chunk below, used only for new contacts
            for key, tag in {tag.lower(): tag for tag in reversed(tags)}.items():  # "vip;VIP" is one tag
                chunk.tag_names.setdefault(key, tag)
                chunk.tag_rows.append((line, key))
        if len(chunk) >= limit:
            yield chunk.with_public_ids()
            chunk = Chunk()
            first_lines.clear()
            limit = _chunk_limit(grown=limit * 2, remaining=estimated - line)
    if not seen_rows:
        # Failing here, before anything is handed to the writer, is also the quickest way out.
        raise ImportFailure(NO_DATA_ROWS)
    if len(chunk):
        yield chunk.with_public_ids()


def _chunk_limit(*, grown: int, remaining: int) -> int:
    """Rows in the next chunk: growing from the first, at most CHUNK_ROWS, and a quarter of what is left."""
    return min(CHUNK_ROWS, grown, max(MIN_CHUNK_ROWS, remaining // 4))


def run_import(job: ImportJob) -> ImportJob:
    """Import the job's file; marks the job completed or failed. Safe to run again."""
    claimed = ImportJob.objects.filter(pk=job.pk, status__in=[ImportStatus.PENDING, ImportStatus.RUNNING]).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), failure_reason="", processed_rows=0
    )
    if not claimed:
        return ImportJob.objects.get(pk=job.pk)  # completed or failed already: nothing to redo
    ImportRowError.objects.filter(job=job).delete()  # a rerun after a crash starts clean
    # In its own thread the writer overlaps PostgreSQL's work with parsing. Inside an
    # outer transaction (tests) or on SQLite (one writer at a time) it runs inline.
    threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
    try:
        with job.file.open("rb") as stream:
            chunks = read_chunks(job, stream)
            if threaded:
                _write_in_thread(job, chunks)
            else:
                _write_inline(job, chunks)
    except ImportFailure as exc:
        _fail(job, str(exc))
    except Exception:
        logger.exception("import crashed", extra={"import_job_id": str(job.pk)})
        _fail(job, "The import stopped on an unexpected error; nothing was imported. Try again or contact support.")
        raise
    job.refresh_from_db()
    if job.status == ImportStatus.COMPLETED:
        logger.info(
            "import completed",
            extra={"import_job_id": str(job.pk), "rows": job.total_rows, "contacts_created": job.created},
        )
    return job


def _write_inline(job: ImportJob, chunks: Iterator[Chunk]) -> None:
    writer = ChunkWriter(job)
    try:
        with transaction.atomic():
            writer.start()
            for chunk in chunks:
                writer.write(chunk)
            writer.finish()
    finally:
        writer.drop()


def _write_in_thread(job: ImportJob, chunks: Iterator[Chunk]) -> None:
    pipe = _WriterThread(job, stall_seconds=float(getattr(settings, "IMPORT_STALL_SECONDS", 300)))
    # The reader holds the GIL while it parses; a short switch interval lets the writer
    # pick up each database reply at once instead of after up to 5 ms.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    pipe.start()
    processed = 0
    try:
        for chunk in chunks:
            chunk.encode_for_copy()
            if not pipe.send(chunk):
                break  # the writer stopped: finish() below says why
            processed += len(chunk)
            ImportJob.objects.filter(pk=job.pk).update(processed_rows=processed)
    except BaseException:
        pipe.abort()
        raise
    finally:
        sys.setswitchinterval(switch_interval)
    pipe.finish()


class _WriterThread:
    """A ChunkWriter in a thread of its own, fed chunks through a small queue.

    Every wait on either side is bounded: a side that sees no progress from the other for
    `stall_seconds` gives up (ImportStalled) and the job fails, so an import can never hold a
    worker. The writer's statements get the same bound from PostgreSQL's statement_timeout.
    Whatever the writer does after the reader gave up ends in a rollback, never a commit.
    """

    POLL_SECONDS = 0.25  # how soon the reader notices that the writer stopped

    def __init__(self, job: ImportJob, *, stall_seconds: float):
        self.job = job
        self.stall_seconds = stall_seconds
        self.feed: queue.Queue = queue.Queue(maxsize=2)  # bounded: memory stays flat
        self.stop = threading.Event()  # the reader gave up: roll back at the next step
        self.failure: BaseException | None = None
        self.committed = False
        self.progress_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"import-{job.pk}", daemon=True)

    def start(self) -> None:
        self.progress_at = time.monotonic()
        self.thread.start()

    # --- the reader's side ---

    def send(self, item) -> bool:
        """Queue a chunk (or _DONE) for the writer; False when the writer has stopped."""
        while self.thread.is_alive():
            try:
                self.feed.put(item, timeout=self.POLL_SECONDS)
            except queue.Full:
                self._check_progress()
            else:
                return True
        return False

    def finish(self) -> None:
        """The file is read: let the writer commit, waiting as long as it makes progress."""
        if self.send(_DONE):
            while self.thread.is_alive():
                self.thread.join(timeout=self.POLL_SECONDS)
                if self.thread.is_alive():
                    self._check_progress()
        if self.failure is not None:
            raise self.failure
        if not self.committed:
            raise ImportFailure("The import stopped before every row was written; nothing was imported.")

    def abort(self) -> None:
        """The reader gave up: the writer rolls back. Waits a bounded time for it."""
        self.stop.set()
        # A writer waiting for a chunk wakes at once; one busy with a chunk (queue full) sees `stop`
        # when it takes the next.
        with contextlib.suppress(queue.Full):
            self.feed.put_nowait(_ABORT)
        self.thread.join(timeout=self.stall_seconds)
        if self.thread.is_alive():
            logger.error("import writer did not stop", extra={"import_job_id": str(self.job.pk)})

    def _check_progress(self) -> None:
        if time.monotonic() - self.progress_at > self.stall_seconds:
            self.stop.set()
            logger.error("import writer stalled", extra={"import_job_id": str(self.job.pk)})
            raise ImportStalled(self.stall_seconds)

    # --- the writer's side ---

    def _next(self):
        try:
            item = self.feed.get(timeout=self.stall_seconds)
        except queue.Empty:
            logger.error("import reader stalled", extra={"import_job_id": str(self.job.pk)})
            raise ImportStalled(self.stall_seconds) from None
        if item is _ABORT or self.stop.is_set():
            raise _Abort
        self.progress_at = time.monotonic()
        return item

    def _run(self) -> None:
        writer = ChunkWriter(self.job)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    # A statement stuck on a lock or a slow disk fails the job instead of holding the worker.
                    milliseconds = str(max(int(self.stall_seconds * 1000), 1))
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [milliseconds])
                writer.start()
                while (item := self._next()) is not _DONE:
                    writer.write(item)
                    self.progress_at = time.monotonic()
                if self.stop.is_set():
                    raise _Abort
                writer.finish()
            self.committed = True
        except _Abort:
            pass  # the reader knows why it stopped
        except OperationalError as exc:
            cancelled = type(exc.__cause__).__name__ == "QueryCanceled"
            self.failure = ImportStalled(self.stall_seconds) if cancelled else exc
        except BaseException as exc:
            self.failure = exc
        finally:
            try:
                writer.drop()
            except Exception:
                logger.warning("import staging tables not dropped", extra={"import_job_id": str(self.job.pk)})
            finally:
                connection.close()


def _fail(job: ImportJob, reason: str) -> None:
    # Only a running job fails: a job whose rows were committed stays completed.
    ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
        status=ImportStatus.FAILED, failure_reason=reason, finished_at=timezone.now()
    )
    logger.info("import failed", extra={"import_job_id": str(job.pk), "reason": reason})
