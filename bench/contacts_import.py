"""CSV import throughput on PostgreSQL, against COPY of the same file.

Each import runs in a child process so its peak memory (max RSS) is its own:
a flat figure from 100k to 1M rows shows the import streams.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TITLE = "Contact CSV import (100k and 1M rows)"
SIZES = [100_000, 1_000_000]
REIMPORT_SIZE = 100_000  # the same file imported twice into one organization: the upsert path
CITIES = ["Utrecht", "Amsterdam", "Rotterdam", "Delft", "Leiden", "Zwolle", "Breda", "Gouda", "Ede", "Hoorn"]
PLANS = ["free", "pro", "team", "enterprise"]
TAGS = ["vip", "newsletter", "customer", "lead", "event-2026"]


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "last_name", "phone", "city", "age", "plan", "signup_date", "tags"])
        for i in range(rows):
            phone = f"+316{rng.randrange(10_000_000, 59_999_999)}" if i % 3 == 0 else ""
            tags = ";".join(rng.sample(TAGS, rng.randrange(0, 3)))
            writer.writerow(
                [
                    f"user{i}@example{i % 50}.com",
                    f"First{i}",
                    f"Last{i % 997}",
                    phone,
                    rng.choice(CITIES),
                    rng.randrange(18, 90),
                    rng.choice(PLANS),
                    f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                    tags,
                ]
            )


def import_once(csv_path: str, again: bool = False) -> dict:
    """Run in a child process: import the file into a fresh organization (with `again`, import it
    once untimed first, then time the second import: every row an update of an existing contact)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.files import File

    from accounts.models import Organization
    from contacts.importer import run_import
    from contacts.models import ImportJob, ImportStatus

    org = Organization.objects.create(name="Bench import", slug=f"bench-import-{time.time_ns()}")
    for _ in range(2 if again else 1):
        job = ImportJob(organization=org, tag_names=["imported"])
        with open(csv_path, "rb") as handle:
            job.file.save("bench.csv", File(handle), save=False)
        job.save()
        started = time.perf_counter()
        job = run_import(job)
        elapsed = time.perf_counter() - started
        assert job.status == ImportStatus.COMPLETED, job.failure_reason
    return {
        "seconds": elapsed,
        "rows": job.total_rows,
        "created": job.created,
        "updated": job.updated,
        "failed": job.failed,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def copy_baseline(csv_path: Path) -> float:
    """PostgreSQL COPY of the same file into an unindexed table of text columns."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_baseline")
        conn.execute(
            "CREATE UNLOGGED TABLE bench_copy_baseline (email text, first_name text, last_name text, phone text, "
            "city text, age text, plan text, signup_date text, tags text)"
        )
        started = time.perf_counter()
        copy_sql = "COPY bench_copy_baseline FROM STDIN WITH (FORMAT csv, HEADER)"
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy, csv_path.open("rb") as handle:
            while block := handle.read(1 << 20):
                copy.write(block)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy_baseline")
    return elapsed


def clean_database() -> None:
    """Remove what earlier import runs left, and nothing of the other benchmarks' data."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM accounts_organization WHERE slug LIKE 'bench-import-%%'")
        org_ids = [row[0] for row in cursor.fetchall()]
        for org_id in org_ids:
            cursor.execute(
                "DELETE FROM contacts_contacttag WHERE tag_id IN "
                "(SELECT id FROM contacts_tag WHERE organization_id = %s)",
                [org_id],
            )
            cursor.execute(
                "DELETE FROM contacts_importrowerror WHERE job_id IN "
                "(SELECT id FROM contacts_importjob WHERE organization_id = %s)",
                [org_id],
            )
            for table in ("contacts_importjob", "contacts_contact", "contacts_tag", "contacts_suppression"):
                cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [org_id])
            cursor.execute("DELETE FROM accounts_organization WHERE id = %s", [org_id])
    if org_ids:
        # Leave no dead rows behind for the next run's inserts to step over.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE contacts_contact, contacts_contacttag, contacts_importrowerror")


def run() -> str:
    clean_database()
    lines = [
        "| rows | import | rows/s | peak RSS | COPY baseline | COPY rows/s | import / COPY |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for size, again in [(size, False) for size in SIZES] + [(REIMPORT_SIZE, True)]:
            path = Path(tmp) / f"contacts_{size}.csv"
            if not path.exists():
                write_csv(path, size)
            baseline = copy_baseline(path)
            code = f"import json, bench.contacts_import as b; print(json.dumps(b.import_once({str(path)!r}, {again})))"
            child = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parent.parent,
                env={**os.environ, "LOG_LEVEL": "WARNING"},
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            assert result["updated" if again else "created"] == size, result
            rate = size / result["seconds"]
            label = f"{size:,} again (every row updates a contact)" if again else f"{size:,}"
            lines.append(
                f"| {label} | {result['seconds']:.1f} s | {rate:,.0f} | {result['max_rss_mb']:.0f} MB "
                f"| {baseline:.2f} s | {size / baseline:,.0f} | {result['seconds'] / baseline:.1f}x |"
            )
            clean_database()
    lines += [
        "",
        "Import: `contacts.importer.run_import` on a generated CSV (9 columns: email, names, a phone on every third",
        "row, city, age, plan, date, 0-2 tags) into a fresh organization: validation of every row, COPY into a",
        "staging table, the contacts (a plain INSERT, as the organization had no contacts before: a savepoint falls",
        "back to INSERT ... ON CONFLICT if another writer adds one of the addresses meanwhile; a re-import into an",
        "organization with contacts runs the upsert: the last row), tag links and the job's tag, one transaction.",
        "Goal: >= 20,000 rows/s with flat memory. Baseline: `COPY` of the same file into an unindexed table of",
        "text columns (no validation, no upsert), measured in the same run.",
        "",
        "Measured once to decide the design (this machine, 2026-12-02; 200k rows, two interleaved rounds, rows/s):",
        "the writer in a thread of its own with a 0.5 ms switch interval while the import runs 21,339 / 22,084;",
        "the same thread with Python's default 5 ms interval 17,014 / 17,724; the writer inline in the task",
        "14,616 / 16,175. Both pay on the worker's own path (`run_import`), so both stay; the interval is set",
        "only while an import runs and restored after, in the prefork child that runs it.",
    ]
    return "\n".join(lines)
