"""Liveness of what the back office needs: the database and the Celery broker."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


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


@never_cache
@require_GET
def health(request):
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)
