"""Liveness of what the back office needs: the database and the Celery broker, and whether workers run.

The status code follows the database and the broker only: a load balancer routes web traffic on it,
and stale workers are no reason to take the web out of rotation. `workers` says whether a worker ran
beat's heartbeat task lately ("ok", "stale", or "unknown" until the first heartbeat); monitoring asks
`GET /health?detail=1`, which also answers 503 when the workers are stale.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2
# Since when /health has been waiting for a first heartbeat: after HEALTH_WORKER_MAX_AGE_SECONDS
# without one, "unknown" becomes "stale" (no worker ever ran, or the heartbeat was lost).
WATCHING_CACHE_KEY = "health:watching-since"


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        logger.warning("health: database unavailable", extra={"error": str(exc)})
        return "unavailable"
    return "ok"


def check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    try:
        if url.startswith("filesystem://"):
            for key in ("data_folder_in", "data_folder_out", "control_folder"):
                folder = Path(options[key])
                if not folder.is_dir() or not os.access(folder, os.W_OK):
                    raise OSError(f"broker folder {folder} is missing or read-only")
        else:
            with Connection(url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options) as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
                _ = conn.default_channel  # opening a channel talks to the server (Redis: PING)
    except Exception as exc:
        logger.warning("health: broker unavailable", extra={"error": str(exc)})
        return "unavailable"
    return "ok"


def check_workers() -> tuple[str, int | None]:
    """("ok" | "stale" | "unknown", seconds since a worker last ran beat's heartbeat task)."""
    from config.celery import HEARTBEAT_CACHE_KEY

    max_age = getattr(settings, "HEALTH_WORKER_MAX_AGE_SECONDS", 300)
    now = time.time()
    try:
        beat = cache.get(HEARTBEAT_CACHE_KEY)
        if beat is None:
            cache.add(WATCHING_CACHE_KEY, now, timeout=None)
            watching_since = cache.get(WATCHING_CACHE_KEY, now)
    except Exception as exc:  # the cache is down: nothing to tell about the workers
        logger.warning("health: cache unavailable", extra={"error": str(exc)})
        return "unknown", None
    if beat is None:
        return ("stale" if now - watching_since > max_age else "unknown"), None
    age = max(now - beat, 0)  # clocks of web and worker hosts may differ a little
    return ("ok" if age <= max_age else "stale"), int(age)


@never_cache
@require_GET
def health(request):
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    workers, age = check_workers()
    if request.GET.get("detail") in ("1", "true") and workers == "stale":
        healthy = False
    body = {**checks, "workers": workers, "worker_heartbeat_age_seconds": age}
    return JsonResponse(body, status=200 if healthy else 503)
