"""Project-wide fixtures: API clients per role, a real Celery worker process, an SMTP sink."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent
WORKER_QUEUES = "default,dispatch,send,events,analytics,webhooks"


def set_tasks_eager(eager: bool) -> None:
    # The app reads Django settings under the CELERY_ namespace, so the namespaced key is the one read.
    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = eager


@pytest.fixture(autouse=True)
def _test_speedups(settings, tmp_path):
    """Cheap password hashing, static files without a collectstatic manifest, uploads in a temp dir."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _isolate_state():
    """Each test starts with an empty cache (throttle counters) and runs tasks in-process,
    except under `start_worker`, where a real worker process runs them."""
    cache.clear()
    set_tasks_eager(True)
    yield
    cache.clear()
    set_tasks_eager(settings.CELERY_TASK_ALWAYS_EAGER)


# --- API clients --------------------------------------------------------------


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def bearer_client(user, organization=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    if organization is not None:
        client.defaults["HTTP_X_ORGANIZATION"] = str(organization.pk)
    return client


@pytest.fixture
def member_client(db) -> Callable:
    """member_client(role, organization=None) -> (client, user, organization)."""
    from accounts.tests.factories import MembershipFactory, OrganizationFactory

    def make(role: str, organization=None):
        organization = organization or OrganizationFactory()
        membership = MembershipFactory(organization=organization, role=role)
        return bearer_client(membership.user, organization), membership.user, organization

    return make


# --- A real browser on the admin ----------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium(monkeypatch):
    """Debian's Chromium driven by Playwright (`make test` installs it). One browser per test: Playwright's
    sync API runs an event loop in this thread while it is open, which Django would take for async code."""
    from playwright.sync_api import sync_playwright

    # The test's own ORM calls stay synchronous; allowed for the browser test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def admin_page(chromium, live_server):
    """admin_page(user, password) -> a Playwright page logged into the admin as that user."""
    contexts = []

    def open_as(user, password: str):
        context = chromium.new_context(base_url=live_server.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto("/admin/login/")
        page.fill("#id_username", user.email)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        return page

    yield open_as
    for context in contexts:
        context.close()


# --- SMTP sink -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SMTPSink:
    port: int
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply, e.g. "451 4.3.0 try later"
    delay: float = 0.0  # seconds per accepted message, to make a campaign take a while
    pipelining: bool = True  # advertise PIPELINING (RFC 2920), as Postfix and providers' relays do
    refuse_sender: str = ""  # a reply to every MAIL FROM, e.g. "550 5.7.1 sender not allowed"
    sessions: int = 0  # EHLOs seen: one per connection
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.sessions += 1
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.refuse_sender:
            return self.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        parsed = message_from_bytes(envelope.original_content or envelope.content)
        with self._lock:
            self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def addresses(self) -> list[str]:
        with self._lock:
            return [address for recipients, _ in self.received for address in recipients]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[list[str], EmailMessage]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"SMTP sink got {len(self.received)} message(s), expected {count} within {timeout}s")


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""
    from aiosmtpd.controller import Controller

    sink = SMTPSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- A real Celery worker ---------------------------------------------------------


def database_url_for_worker() -> str:
    """The URL of the database this test runs on (the test database), for another process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    output: list[str]

    def stop(self, sig: int | None = None) -> None:
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    @property
    def log(self) -> str:
        return "".join(self.output)


def purge_broker_queues() -> None:
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in WORKER_QUEUES.split(","):
            try:
                channel.queue_purge(queue)
            except Exception:  # noqa: S112 - a queue that was never declared has nothing to purge
                continue


@pytest.fixture
def start_worker(transactional_db) -> Iterator[Callable[..., WorkerProcess]]:
    """start_worker(env={...}) runs `celery worker` as a separate process on the configured broker
    and this test's database, and stops it at the end of the test."""
    workers: list[WorkerProcess] = []
    set_tasks_eager(False)
    purge_broker_queues()

    def start(env: dict[str, str] | None = None, ready_timeout: float = 60.0) -> WorkerProcess:
        worker_env = {
            **os.environ,
            "DATABASE_URL": database_url_for_worker(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "SECRET_KEY": settings.SECRET_KEY,
            "LOG_FORMAT": "text",
            "LOG_PERIODIC_TASKS": "1",  # tests wait for beat tasks' "succeeded" lines
            **(env or {}),
        }
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            broker_queue_dir = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
            worker_env["CELERY_BROKER_DIR"] = str(broker_queue_dir.parent)
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool", "solo", "--queues", WORKER_QUEUES, "--loglevel", "INFO",
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=ROOT, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        worker = WorkerProcess(process=process, output=[])
        ready = threading.Event()

        def pump() -> None:
            for line in process.stdout:
                worker.output.append(line)
                if " ready." in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        workers.append(worker)
        if not ready.wait(ready_timeout):
            worker.stop()
            raise AssertionError(f"Celery worker did not start:\n{worker.log}")
        return worker

    yield start
    for worker in workers:
        worker.stop()
    set_tasks_eager(True)
