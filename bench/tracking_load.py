"""Open pixel, click redirect and provider webhooks under load, against gunicorn on this machine.

Two gunicorn servers run in turn on 127.0.0.1, the same settings apart from TRACKING_BUFFER:
"redis" (a hit is one XADD to a Redis stream; `tracking.flush` bulk-inserts later) and "sync"
(the baseline: one INSERT transaction per hit, in the request). A standard-library load
generator (bench/tracking_loadgen.py, a child process) keeps CONCURRENCY keep-alive connections
busy for SECONDS per phase and counts every request it sent. After each phase the stream is
flushed with the same code the task runs, and the events stored are compared with the requests
answered: zero lost means equal. Webhooks: SparkPost posts of BATCH events each (batched), and
Postmark posts of one event each, both through Anymail's views with basic auth.

    python -m bench tracking          (once bench/__main__.py lists it; records docs/BENCHMARKS.md)
    python -m bench.tracking_load     (prints the same section)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

TITLE = "Tracking endpoints and provider webhooks under load (gunicorn, 2 cores)"
SLUG = "bench-tracking"
ROOT = Path(__file__).resolve().parent.parent
# Flushed between phases: a database of its own (BENCH_REDIS_URL to choose another).
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/12"
MESSAGES = 5_000
SECONDS = 10.0
CONCURRENCY = 32
BATCH = 500
BATCH_POSTS = 60
SINGLE_POSTS = 6_000
WEBHOOK_AUTH = ("bench", "bench-webhook-secret")
# One sync worker per core: measured here it answers more hits than the Dockerfile's gthread 3x4 pool,
# whose keep-alive connections pile onto one worker. The same options serve both buffer modes.
GUNICORN_OPTIONS = ["--workers", "2"]
WRK_THREADS = 2
WRK_SCRIPT = Path(__file__).resolve().with_name("tracking_wrk.lua")
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


# --- data --------------------------------------------------------------------------------------------


def prepare() -> list[tuple[int, str]]:
    """A running campaign with MESSAGES sent messages; returns (id, provider id) pairs."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Organization
    from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus

    for org in Organization.objects.filter(slug=SLUG):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM tracking_messageevent WHERE organization_id = %s", [org.pk])
            cursor.execute("DELETE FROM campaigns_message WHERE organization_id = %s", [org.pk])
        org.delete()
    org = Organization.objects.create(name="Bench tracking", slug=SLUG, default_from_email="news@mail.example.com")
    campaign = Campaign.objects.create(organization=org, name="Bench tracking", status=CampaignStatus.RUNNING)
    sent_at = timezone.now() - timedelta(hours=1)
    Message.objects.bulk_create(
        Message(
            organization=org,
            campaign=campaign,
            contact_id=10_000_000 + n,  # opens and deliveries never touch the contact row
            to_address=f"reader{n}@example.com",
            status=MessageStatus.SENT,
            sent_at=sent_at,
            sending_domain="mail.example.com",
            provider_message_id=f"bench-{uuid.uuid4()}",
        )
        for n in range(MESSAGES)
    )
    return list(Message.objects.filter(campaign=campaign).order_by("id").values_list("id", "provider_message_id"))


def stored(event_type: str) -> int:
    from tracking.models import MessageEvent

    return MessageEvent.objects.filter(organization__slug=SLUG, type=event_type).count()


# --- servers and load --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_status(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            return int(sock.recv(64).split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def gunicorn(mode: str, esp: str) -> Iterator[int]:
    """A server for one buffer mode; only the configured provider's webhooks are mounted."""
    from django.conf import settings

    port = free_port()
    with tempfile.TemporaryDirectory() as var_dir:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.tracking_settings",
            "DATABASE_URL": os.environ["DATABASE_URL"],
            "REDIS_URL": REDIS_URL,
            "TRACKING_BUFFER": mode,
            "DEBUG": "0",
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "VAR_DIR": var_dir,
            "ANYMAIL_WEBHOOK_SECRET": ":".join(WEBHOOK_AUTH),
            "ANYMAIL_ESP_NAME": esp,
        }
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            *GUNICORN_OPTIONS,
            "--log-level",
            "warning",
        ]
        # The log goes to a file: a pipe nobody reads would fill up and stall the workers.
        log_path = Path(var_dir) / "gunicorn.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while _get_status(port, "/health") not in (200, 503):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def get_request(path: str) -> str:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER}\r\nAccept: */*\r\n\r\n"


def post_request(path: str, body: str) -> str:
    import base64

    auth = base64.b64encode(":".join(WEBHOOK_AUTH).encode()).decode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {auth}\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
    )


def load(
    port: int, requests: list[str], *, seconds: float = SECONDS, concurrency: int = CONCURRENCY, once: bool = False
) -> dict:
    """Run the load generator; with `once`, each request is sent at most once (webhook bodies are
    deduplicated, so repeating one would measure nothing)."""
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "requests": requests,
        "concurrency": concurrency,
        "seconds": seconds,
        "max_requests": len(requests) if once else 0,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        child = subprocess.run(
            [sys.executable, "-m", "bench.tracking_loadgen", handle.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(handle.name)
    return json.loads(child.stdout.strip().splitlines()[-1])


def wrk_binary() -> str | None:
    """wrk, installed from Debian's packages when missing and possible; None to use the Python generator."""
    found = shutil.which("wrk")
    apt = shutil.which("apt-get")
    if found or os.geteuid() != 0 or not apt:
        return found
    subprocess.run([apt, "install", "-y", "-q", "wrk"], capture_output=True, check=False, timeout=300)
    return shutil.which("wrk")


def endpoint_load(port: int, paths: list[str], *, seconds: float = SECONDS) -> dict:
    """GET the paths in turn for `seconds`: wrk when available (it leaves the cores to gunicorn),
    else bench/tracking_loadgen.py. `sent` counts every request written."""
    wrk = wrk_binary()
    if wrk is None:
        result = load(port, [get_request(path) for path in paths], seconds=seconds)
        result["generator"] = "bench/tracking_loadgen.py"
        return result
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(paths))
    try:
        command = [
            wrk,
            f"-t{WRK_THREADS}",
            f"-c{CONCURRENCY}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "5s",
            "-s",
            str(WRK_SCRIPT),
            f"http://127.0.0.1:{port}",
            "--",
            handle.name,
        ]
        child = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    finally:
        os.unlink(handle.name)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["rate"] = result["answered"] / result["seconds"]
    result["generator"] = "wrk"
    return result


def drain() -> tuple[int, float]:
    """Flush the stream into the database as `tracking.flush` does; (events stored, seconds)."""
    from django.test.utils import override_settings

    from tracking import buffer

    total = 0
    started = time.perf_counter()
    with override_settings(REDIS_URL=REDIS_URL, TRACKING_REDIS_URL=REDIS_URL, TRACKING_BUFFER="redis"):
        while buffer.backlog():
            total += buffer.flush(max_seconds=30).stored
        dead = buffer.client().xlen(buffer.dead_letter_key())
    if dead:
        raise AssertionError(f"{dead} entries went to the dead-letter stream")
    return total, time.perf_counter() - started


def reset_stream() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- phases --------------------------------------------------------------------------------------------


def warm_up(port: int, mode: str, opens: list[str]) -> None:
    """A short burst that loads every worker's code and connections; its events are flushed before
    the phases count theirs."""
    load(port, [get_request(path) for path in opens[:500]], seconds=1.5, concurrency=8)
    if mode == "redis":
        drain()


def settle(mode: str, event_type: str) -> None:
    """Wait until the server has finished the requests still in flight when the generator stopped
    (a count that has not moved for a second), so they are counted in this phase."""
    from django.test.utils import override_settings

    from tracking import buffer

    def count() -> int:
        if mode != "redis":
            return stored(event_type)
        with override_settings(REDIS_URL=REDIS_URL, TRACKING_REDIS_URL=REDIS_URL):
            return buffer.backlog()

    deadline = time.monotonic() + 20
    last = count()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = count()
        if now == last:
            return
        last = now


def endpoint_phase(port: int, mode: str, name: str, event_type: str, paths: list[str], ok_status: str) -> dict:
    before = stored(event_type)
    result = endpoint_load(port, paths)
    settle(mode, event_type)
    flush_rate = None
    if mode == "redis":
        flushed, flush_seconds = drain()
        flush_rate = flushed / flush_seconds if flush_seconds else None
    events = stored(event_type) - before
    ok = result["statuses"].get(ok_status, 0)
    return {"name": name, "mode": mode, **result, "ok": ok, "events": events, "flush_rate": flush_rate}


def webhook_phase(port: int, mode: str, name: str, requests: list[str], events_per_request: int) -> dict:
    from tracking.models import MessageEvent

    before = MessageEvent.objects.filter(organization__slug=SLUG).count()
    result = load(port, requests, seconds=25, concurrency=8 if events_per_request > 1 else CONCURRENCY, once=True)
    flush_rate = None
    if mode == "redis":
        flushed, flush_seconds = drain()
        flush_rate = flushed / flush_seconds if flush_seconds else None
    events = MessageEvent.objects.filter(organization__slug=SLUG).count() - before
    ok = result["statuses"].get("200", 0)
    return {
        "name": name,
        "mode": mode,
        **result,
        "ok": ok,
        "posted_events": ok * events_per_request,
        "events": events,
        "event_rate": ok * events_per_request / result["seconds"],
        "flush_rate": flush_rate,
    }


def sparkpost_posts(messages: list[tuple[int, str]], posts: int) -> list[str]:
    bodies = []
    now = str(int(time.time()))
    for post in range(posts):
        events = []
        for n in range(BATCH):
            _id, provider_id = messages[(post * BATCH + n) % len(messages)]
            kind = "open" if n % 2 else "delivery"
            event = {
                "type": kind,
                "event_id": uuid.uuid4().hex,
                "timestamp": now,
                "transmission_id": provider_id,
                "raw_rcpt_to": f"reader{n}@example.com",
                "rcpt_to": f"reader{n}@example.com",
                "campaign_id": "bench",
            }
            if kind == "open":
                event.update(user_agent=BROWSER, ip_address="192.0.2.1")
            events.append({"msys": {"track_event" if kind == "open" else "message_event": event}})
        bodies.append(post_request("/anymail/sparkpost/tracking/", json.dumps(events)))
    return bodies


def postmark_posts(messages: list[tuple[int, str]], posts: int) -> list[str]:
    from django.utils import timezone

    bodies = []
    for post in range(posts):
        _id, provider_id = messages[post % len(messages)]
        body = {
            "RecordType": "Delivery",
            "ServerID": 23,
            "MessageStream": "outbound",
            "MessageID": provider_id,
            "Recipient": f"reader{post}@example.com",
            "Tag": "bench",
            "DeliveredAt": (timezone.now() + timedelta(microseconds=post)).isoformat(),
            "Details": "smtp;250 2.0.0 OK",
            "Metadata": {},
        }
        bodies.append(post_request("/anymail/postmark/tracking/", json.dumps(body)))
    return bodies


# --- report --------------------------------------------------------------------------------------------


def _endpoint_row(row: dict) -> str:
    lost = row["sent"] - row["events"]
    mode = "Redis stream + flush" if row["mode"] == "redis" else "sync INSERT per hit (baseline)"
    flush = f"{row['flush_rate']:,.0f}" if row["flush_rate"] else "-"
    failed = row["errors"] + row["answered"] - row["ok"]
    return (
        f"| {row['name']} | {mode} | {row['sent']:,} | {row['ok']:,} | {row['rate']:,.0f} | {row['p50_ms']:.1f} ms "
        f"| {row['p99_ms']:.1f} ms | {failed:,} | {row['events']:,} | {lost:,} | {flush} |"
    )


def _webhook_row(row: dict) -> str:
    lost = row["posted_events"] - row["events"]
    mode = "Redis stream + flush" if row["mode"] == "redis" else "sync ingest per post"
    flush = f"{row['flush_rate']:,.0f}" if row["flush_rate"] else "-"
    return (
        f"| {row['name']} | {mode} | {row['sent']:,} | {row['rate']:,.0f} | {row['event_rate']:,.0f} "
        f"| {row['p99_ms']:.1f} ms | {row['sent'] - row['ok']:,} | {row['events']:,} | {lost:,} | {flush} |"
    )


def run() -> str:
    from django.test.utils import override_settings

    from tracking import tokens

    with override_settings(PUBLIC_BASE_URL=""):
        messages = prepare()
        opens = [tokens.open_url(pk) for pk, _ in messages]
        clicks = [tokens.click_url(pk, 0, f"https://shop.example.com/item/{pk}") for pk, _ in messages]
    endpoints: list[dict] = []
    webhooks: list[dict] = []
    for mode in ("redis", "sync"):
        reset_stream()
        with gunicorn(mode, "sparkpost") as port:
            warm_up(port, mode, opens)
            endpoints.append(endpoint_phase(port, mode, "open pixel `/t/o/<token>.gif`", "opened", opens, "200"))
            endpoints.append(endpoint_phase(port, mode, "click redirect `/t/c/<token>`", "clicked", clicks, "302"))
            webhooks.append(
                webhook_phase(
                    port, mode, f"SparkPost, {BATCH} events per post", sparkpost_posts(messages, BATCH_POSTS), BATCH
                )
            )
        # One provider per installation: Postmark's webhooks are mounted on a server configured for it.
        with gunicorn(mode, "postmark") as port:
            warm_up(port, mode, opens)
            webhooks.append(
                webhook_phase(port, mode, "Postmark, 1 event per post", postmark_posts(messages, SINGLE_POSTS), 1)
            )
    lines = [
        "| endpoint | mode | requests sent | answered 200/302 | req/s | p50 | p99 | errors | events stored "
        "| lost (sent - stored) | flush events/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(_endpoint_row(row) for row in endpoints),
        "",
        "| webhook | mode | posts | posts/s | events/s | p99 | failed posts | events stored | lost | flush events/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(_webhook_row(row) for row in webhooks),
        "",
        f"gunicorn `{' '.join(GUNICORN_OPTIONS)}`, DEBUG=0, no access log, on 127.0.0.1, the same options for both",
        f"buffer modes. Endpoints: {endpoints[0]['generator']}, {CONCURRENCY} connections, {SECONDS:.0f} s a phase,",
        f"on the same 2 cores; webhooks: bench/tracking_loadgen.py, each body posted once. {MESSAGES:,} sent",
        'messages; every hit carries a valid signed token. "events stored" is counted in PostgreSQL after the',
        'flush; "lost" = requests sent (including those still in flight when the generator stopped) minus events',
        'stored. "flush events/s" is `tracking.buffer.flush` draining the stream (XREADGROUP, set-based ingest,',
        "XACK) after the phase, one process. Goals: pixel and redirect >= 1,500 req/s with p99 < 50 ms and zero",
        "lost; webhooks >= 5,000 events/s batched and >= 300 req/s one event per request.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    # Prints the section; `python -m bench tracking` also records it in docs/BENCHMARKS.md.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from bench.__main__ import DEFAULT_DATABASE_URL, ensure_database, machine_description

    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    ensure_database(os.environ["DATABASE_URL"])
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()
    print(f"== tracking: {TITLE}\non: {machine_description()}", flush=True)
    print(run(), flush=True)
