import time

import pytest
from django.core.cache import cache

from config.celery import app as celery_app
from config.celery import heartbeat_task

pytestmark = pytest.mark.django_db


def test_health_is_200_when_database_and_broker_are_up(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "broker": "ok",
        "workers": "unknown",  # a fresh start: no heartbeat yet
        "worker_heartbeat_age_seconds": None,
    }


def test_health_is_503_when_the_broker_points_nowhere(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/health")
    assert response.status_code == 503
    assert {key: response.json()[key] for key in ("database", "broker")} == {"database": "ok", "broker": "unavailable"}


def test_health_is_503_when_the_filesystem_broker_folder_is_missing(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    missing = str(tmp_path / "nowhere")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": missing,
        "data_folder_out": missing,
        "control_folder": missing,
    }
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["broker"] == "unavailable"


def test_health_is_503_when_the_database_is_down(client, monkeypatch):
    from django.db import connection
    from django.db.utils import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_every_response_carries_a_request_id(client):
    response = client.get("/health", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = client.get("/health", HTTP_X_REQUEST_ID="bad id with spaces")
    assert generated["X-Request-ID"] != "bad id with spaces"
    assert len(generated["X-Request-ID"]) == 32


# --- workers: beat's heartbeat task ----------------------------------------------------------------


def test_workers_are_ok_after_a_heartbeat(client, settings):
    settings.HEALTH_WORKER_MAX_AGE_SECONDS = 300
    heartbeat_task.delay()  # eager in tests: runs here, as a worker would
    for path in ("/health", "/health?detail=1"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json()["workers"] == "ok"
        assert 0 <= response.json()["worker_heartbeat_age_seconds"] <= 5


def test_stale_workers_keep_health_200_for_the_load_balancer_but_detail_answers_503(client, settings):
    heartbeat_task.delay()
    time.sleep(0.01)
    settings.HEALTH_WORKER_MAX_AGE_SECONDS = 0  # the heartbeat above is now older than allowed

    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["workers"] == "stale"
    assert response.json()["worker_heartbeat_age_seconds"] == 0

    detail = client.get("/health?detail=1")
    assert detail.status_code == 503
    assert detail.json()["workers"] == "stale"

    heartbeat_task.delay()  # a worker runs beat's tasks again
    settings.HEALTH_WORKER_MAX_AGE_SECONDS = 300
    assert client.get("/health?detail=1").status_code == 200


def test_no_heartbeat_is_unknown_at_first_then_stale(client, settings):
    settings.HEALTH_WORKER_MAX_AGE_SECONDS = 1
    first = client.get("/health?detail=1")
    assert first.status_code == 200
    assert first.json()["workers"] == "unknown"

    time.sleep(1.1)  # still no worker has ever run the heartbeat
    response = client.get("/health?detail=1")
    assert response.status_code == 503
    assert response.json()["workers"] == "stale"
    assert response.json()["worker_heartbeat_age_seconds"] is None
    assert client.get("/health").status_code == 200


def test_a_cache_outage_leaves_workers_unknown_and_health_200(client, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    response = client.get("/health?detail=1")
    assert response.status_code == 200
    assert response.json()["workers"] == "unknown"


def test_beat_runs_the_heartbeat_on_the_queue_every_worker_consumes():
    entry = celery_app.conf.beat_schedule["config.heartbeat"]
    assert entry["task"] == heartbeat_task.name == "config.heartbeat"
    assert entry["schedule"] <= 60
    route = celery_app.amqp.router.route({}, "config.heartbeat")
    assert route["queue"].name == "default"


@pytest.mark.e2e
def test_a_real_worker_records_the_heartbeat(client, start_worker):
    worker = start_worker()
    assert client.get("/health").json()["workers"] == "unknown"
    heartbeat_task.delay()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get("/health?detail=1").json()["workers"] == "ok":
            break
        time.sleep(0.2)
    assert client.get("/health?detail=1").json()["workers"] == "ok", worker.log
