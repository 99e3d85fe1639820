"""Advancing drip sequences: 100k due enrollments of 1M through `enrollments_advance`, against a raw
INSERT ... SELECT + UPDATE, and the beat tick when nothing is due. BENCH_DRIPS_ENROLLMENTS=<n> runs it
on a smaller table while developing."""

from __future__ import annotations

import os
import re
import statistics
import time
from collections import defaultdict

TITLE = "Drip sequences: advancing 100k due enrollments among 1M"
ENROLLMENTS = int(os.environ.get("BENCH_DRIPS_ENROLLMENTS") or 1_000_000)
DUE_EVERY = 10  # one enrollment in ten is due: 100k of 1M
SLUG = "bench-drips"
GOAL_RATE = 20_000  # enrollments/s
GOAL_TICK_MS = 50
EMPTY_TICKS = 20
ROUNDS = 2
# What the profile led to, measured by hand once (see run()).
MEASURED = """\
Measured once to find where the time goes (this machine, 2026-12-02; 1M enrollments, 100k due, two
interleaved rounds, enrollments/s), which led to the current `campaigns/sequences.py`: as it
was, 15,973 / 15,069; with the batch's contact ids put on the exclusion query itself
(`Contact.objects.active().filter(organization_id=..., pk__in=ids)` rather than `contacts_reachable`'s
`pk__in=<subquery>`, which PostgreSQL plans either as a parallel scan of all the organization's contacts
hash-joined to the ids, 167 ms of server time in the profiled batch, or as 10,000 primary-key probes, 45 ms;
the direct form is one primary-key scan, 34 ms) 18,365 / 19,151; that plus the INSERT of the messages and
the UPDATE of the enrollments in plain SQL taking the ids as one array parameter (`= ANY(%s)`) instead of
10,000 placeholders built by the ORM 24,012 / 23,628.
"""


def ensure_data():
    """An organization with ENROLLMENTS subscribed contacts, all enrolled in one active three-step
    sequence; every DUE_EVERY-th enrollment (marked note = 'due') is the set the benchmark makes due,
    the rest are a year or more away. Returns the sequence."""
    from django.db import connection, transaction

    from accounts.models import Organization
    from campaigns import sequences
    from campaigns.models import Enrollment, Sequence
    from templates_app.services import template_create

    org = Organization.objects.filter(slug=SLUG).first()
    sequence = Sequence.objects.filter(organization=org, status="active").first() if org else None
    if sequence and Enrollment.objects.filter(sequence=sequence).count() == ENROLLMENTS:
        return sequence
    if org:
        with connection.cursor() as cursor:
            for table in (
                "campaigns_message",
                "campaigns_enrollment",
                "campaigns_sequencestep WHERE sequence_id IN "
                "(SELECT id FROM campaigns_sequence WHERE organization_id = %s)",
                "campaigns_sequence",
                "campaigns_campaign",
                "templates_app_templateversion",
                "templates_app_messagetemplate",
                "contacts_contact",
            ):
                where = "" if " WHERE " in table else " WHERE organization_id = %s"
                cursor.execute(f"DELETE FROM {table}{where}", [org.pk])
        org.delete()
    with transaction.atomic():
        org = Organization.objects.create(name="Bench drips", slug=SLUG, default_from_email="news@mail.example.com")
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO contacts_contact (organization_id, public_id, email, email_domain, first_name, last_name,
                    timezone, locale, attributes, status, consent_source, created_at, updated_at)
                SELECT %s, gen_random_uuid(), 'd' || g || '@example' || (g %% 50) || '.com',
                       'example' || (g %% 50) || '.com', 'First' || g, 'Last', '', '', '{}'::jsonb, 'subscribed',
                       'bench', now(), now()
                FROM generate_series(1, %s) g
                """,
                [org.pk, ENROLLMENTS],
            )
        templates = [
            template_create(
                organization=org,
                name=f"Drip step {n}",
                channel="email",
                subject=f"Step {n} for {{{{ contact.first_name }}}}",
                html_body='<p>Hi {{ contact.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
            )
            for n in (1, 2, 3)
        ]
        sequence = sequences.sequence_save(
            sequence=Sequence(organization=org, name="Bench drip", channel="email"),
            trigger={"type": "api"},
            steps=[
                {"order": n, "delay": {"unit": "days", "value": days}, "template": str(template.pk)}
                for n, (days, template) in enumerate(zip((0, 2, 5), templates, strict=True), start=1)
            ],
        )
        sequences.sequence_activate(sequence=sequence)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO campaigns_enrollment (organization_id, sequence_id, contact_id, status, stop_reason,
                    entry, current_step, next_message_at, entered_at, started_at, exited_at, note)
                SELECT %s, %s, c.id, 'active', '', 1, 0,
                       now() + interval '1 year' + c.n * interval '1 second', now(), now(), NULL,
                       CASE WHEN c.n %% %s = 0 THEN 'due' ELSE '' END
                FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                      FROM contacts_contact WHERE organization_id = %s) c
                """,
                [org.pk, sequence.pk, DUE_EVERY, org.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE contacts_contact")
        cursor.execute("VACUUM ANALYZE campaigns_enrollment")
    return sequence


def make_due(sequence) -> int:
    """Back to the start: no step messages, the marked enrollments due (over the last hour, so the
    batches take them in next_message_at order), the rest untouched. Returns how many are due."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_message WHERE campaign_id = %s", [sequence.campaign_id])
        cursor.execute(
            """
            UPDATE campaigns_enrollment
            SET status = 'active', stop_reason = '', current_step = 0, exited_at = NULL,
                next_message_at = now() - interval '1 minute' - (id %% 3600) * interval '1 second'
            WHERE sequence_id = %s AND note = 'due'
            """,
            [sequence.pk],
        )
        due = cursor.rowcount
        cursor.execute("VACUUM ANALYZE campaigns_enrollment")
        cursor.execute("VACUUM ANALYZE campaigns_message")
    return due


def baseline(sequence) -> int:
    """The same work in two plain statements: the due enrollments' step-1 messages, then the
    enrollments moved to step 1 with step 2 due in two days. One transaction."""
    from django.db import connection, transaction

    from campaigns.models import MessageStatus, message_step

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO campaigns_message (organization_id, campaign_id, step, contact_id, to_address, status,
                scheduled_at, sending_domain, attempts, last_error, created_at)
            SELECT e.organization_id, %s, %s, c.id, c.email, %s, now(), '', 0, '', now()
            FROM campaigns_enrollment e JOIN contacts_contact c ON c.id = e.contact_id
            WHERE e.status = 'active' AND e.next_message_at <= now() AND e.sequence_id = %s
            """,
            [sequence.campaign_id, message_step(1, 1), MessageStatus.QUEUED, sequence.pk],
        )
        written = cursor.rowcount
        cursor.execute(
            """
            UPDATE campaigns_enrollment SET current_step = 1, next_message_at = now() + interval '2 days'
            WHERE status = 'active' AND next_message_at <= now() AND sequence_id = %s
            """,
            [sequence.pk],
        )
        assert cursor.rowcount == written, (cursor.rowcount, written)
    return written


def advance_all() -> tuple[int, int, int]:
    """Run the beat task's loop until nothing is due: (calls, enrollments advanced, messages written)."""
    from campaigns.sequences import enrollments_advance

    calls = advanced = written = 0
    while True:
        result = enrollments_advance()
        calls += 1
        advanced += result.due
        written += result.written
        if not result.due:
            return calls, advanced, written


LABELS = [
    (r"FOR UPDATE SKIP LOCKED", "select the due enrollments (`FOR UPDATE SKIP LOCKED`)"),
    (r"^INSERT INTO campaigns_message", "`_write_messages`: INSERT ... SELECT of the messages"),
    (r"^UPDATE \"campaigns_enrollment\"", "`_move_on`: UPDATE of the enrollments (`scheduled_at` subquery)"),
    (r"FROM \"contacts_contact\"", "`contacts_reachable`: exclusion reasons of the batch's contacts"),
    (r"FROM \"campaigns_sendingpolicy\"", "`sending_policy`"),
    (r"FROM \"campaigns_sequencestep\"", "the batch's sequences' steps"),
    (r"FROM \"campaigns_sequence\"", "active sequences, capped sequences, the batch's sequences"),
    (r"^(BEGIN|COMMIT)", "BEGIN, COMMIT"),
]


def label_of(sql: str) -> str:
    sql = sql.strip()
    for pattern, label in LABELS:
        if re.search(pattern, sql):
            return label
    return "other: " + re.sub(r"\s+", " ", sql)[:60]


def profile_batch() -> tuple[float, list[tuple[str, int, float]], int]:
    """One batch with every statement timed: (wall seconds, [(statement, count, seconds)], due)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from campaigns.sequences import enrollments_advance

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        result = enrollments_advance()
        wall = time.perf_counter() - started
    spent: dict[str, list[float]] = defaultdict(list)
    for query in captured.captured_queries:
        spent[label_of(query["sql"])].append(float(query["time"]))
    rows = sorted(((label, len(times), sum(times)) for label, times in spent.items()), key=lambda row: -row[2])
    return wall, rows, result.due


def empty_ticks() -> tuple[list[float], int, str]:
    """The beat tick with nothing due: times (ms), statements per tick, EXPLAIN ANALYZE of its due SELECT.
    Every tick counts, the first too."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from campaigns.sequences import enrollments_advance

    times = []
    for _ in range(EMPTY_TICKS):
        started = time.perf_counter()
        result = enrollments_advance()
        times.append((time.perf_counter() - started) * 1000)
        assert result.due == 0, result
    with CaptureQueriesContext(connection) as captured:
        enrollments_advance()
    due_select = next(q["sql"] for q in captured.captured_queries if "SKIP LOCKED" in q["sql"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {due_select}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return times, len(captured.captured_queries), plan


def run() -> str:
    from django.db import connection

    from campaigns.models import Enrollment

    started = time.perf_counter()
    sequence = ensure_data()
    setup = time.perf_counter() - started
    rows = []
    for attempt in range(1, ROUNDS + 1):
        due = make_due(sequence)
        started = time.perf_counter()
        calls, advanced, written = advance_all()
        ours = time.perf_counter() - started
        assert advanced == written == due, (advanced, written, due)

        assert make_due(sequence) == due
        started = time.perf_counter()
        assert baseline(sequence) == due
        base = time.perf_counter() - started
        rows.append((attempt, due, calls, ours, base))
        print(f"round {attempt}: ours {ours:.2f} s ({calls} calls), baseline {base:.2f} s", flush=True)

    make_due(sequence)
    wall, statements, profiled = profile_batch()
    advance_all()  # the rest, so nothing is due for the empty ticks
    # Right after advancing, the due index still holds the entries of the rows just moved (until
    # VACUUM): the tick reads and discards them. Then the same after VACUUM.
    ticks = [("right after advancing, before VACUUM", *empty_ticks())]
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_enrollment")
    ticks.append(("after VACUUM", *empty_ticks()))
    make_due(sequence)
    total = Enrollment.objects.filter(sequence=sequence).count()

    best = min(rows, key=lambda row: row[3])
    rate = best[1] / best[3]
    tick_max = max(max(times) for _, times, _, _ in ticks)
    lines = [
        "| run | due enrollments | `enrollments_advance` loop | enrollments/s | raw INSERT ... SELECT + UPDATE "
        "(baseline) | baseline enrollments/s | ours / baseline |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {due:,} | {ours:.2f} s ({calls} calls) | {due / ours:,.0f} | {base:.2f} s | {due / base:,.0f} | "
        f"{ours / base:.2f}x |"
        for n, due, calls, ours, base in rows
    ]
    lines += [
        "",
        f"| beat tick with nothing due ({total:,} enrollments, {EMPTY_TICKS} ticks) | median | max | statements "
        "| due SELECT uses `campaigns_enrollment_due` |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {when} | {statistics.median(times):.1f} ms | {max(times):.1f} ms | {count} | "
        f"{'yes' if 'campaigns_enrollment_due' in plan else 'NO'} |"
        for when, times, count, plan in ticks
    ]
    lines += [
        "",
        f"Goals: advancing >= {GOAL_RATE:,} enrollments/s: **{rate:,.0f}/s (best run), "
        f"{'met' if rate >= GOAL_RATE else 'missed'}**; a tick with nothing due <= {GOAL_TICK_MS} ms: "
        f"**max {tick_max:.1f} ms, {'met' if tick_max <= GOAL_TICK_MS else 'missed'}**.",
        "",
        f"{total:,} active enrollments of {total:,} subscribed contacts in one three-step email sequence (data",
        "generated with SQL); one in ten, spread over the table, is made due for step 1 (over the last hour) before",
        "each run, the rest are a year away. `enrollments_advance()` runs in a loop, as the beat task",
        "`campaigns.sequences.advance` does, until a call finds nothing due: each call takes up to 10,000 due",
        "enrollments with `SELECT ... FOR UPDATE SKIP LOCKED` and, in the same transaction, checks the contacts",
        "(status, consent, suppressions), writes the step's messages (INSERT ... SELECT, ON CONFLICT DO NOTHING)",
        "and moves the enrollments on (step 2 due two days after the message's planned time). No condition,",
        f"business hours or frequency cap. The baseline writes the same {best[1]:,} messages with one",
        "INSERT ... SELECT (enrollments joined to contacts) and moves the same enrollments with one UPDATE, in one",
        "transaction, from the same state (messages deleted, enrollments reset, VACUUM ANALYZE before each side).",
        "The loop's last call, which finds nothing due, is counted in its time.",
        "",
        f"Where one batch of {profiled:,} goes (a separate call with every statement timed: {wall * 1000:.0f} ms wall;",
        "a statement's time is what Django's cursor measures: psycopg's client-side binding of its parameters, the",
        "round trip and the server's work):",
        "",
        "| statement | count | time |",
        "| --- | ---: | ---: |",
    ]
    sql_total = sum(seconds for _, _, seconds in statements)
    lines += [f"| {label} | {count} | {seconds * 1000:.0f} ms |" for label, count, seconds in statements]
    lines += [
        f"| Python (the rest of the wall time) | | {(wall - sql_total) * 1000:.0f} ms |",
        "",
        "The empty tick's due SELECT, `EXPLAIN (ANALYZE, COSTS OFF)`, right after advancing and after VACUUM:",
        "",
        "```",
        ticks[0][3],
        "```",
        "",
        "```",
        ticks[1][3],
        "```",
        "",
        MEASURED,
        f"Data setup (when missing): {setup:.0f} s.",
    ]
    return "\n".join(lines)
