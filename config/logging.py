"""Structured logging: one JSON object per line, carrying the request or task id."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) in (None, "-"):
            record.request_id = request_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        # Fields passed with `extra=` are kept as structured fields.
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


# Lines a worker with embedded beat writes for every periodic task, every few seconds: beat sending
# it, the worker receiving it and reporting it done. Dropped at INFO; warnings and errors stay.
PERIODIC_NOISE = ("Scheduler: Sending due task",)
TASK_LIFECYCLE_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def _periodic_task_names() -> frozenset[str]:
    try:
        from config.celery import app
    except ImportError:
        return frozenset()
    return frozenset(entry["task"] for entry in (app.conf.beat_schedule or {}).values())


class PeriodicTaskNoiseFilter(logging.Filter):
    """Drops the INFO lines of periodic tasks (beat's "Sending due task", the worker's "received"
    and "succeeded" for a beat task); everything else, and anything at WARNING or above, passes."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.periodic = _periodic_task_names()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        if record.name == "celery.beat":
            return not str(record.msg).startswith(PERIODIC_NOISE)
        if record.name in TASK_LIFECYCLE_LOGGERS:
            data = record.args if isinstance(record.args, dict) else getattr(record, "data", None) or {}
            name = data.get("name") if isinstance(data, dict) else None
            if name is None:
                text = record.getMessage()
                return not any(text.startswith(f"Task {task}[") for task in self.periodic)
            return name not in self.periodic
        return True


def keep_django_logging_in_celery(**_kwargs) -> None:
    """Celery's `setup_logging` hook: with a receiver connected, Celery leaves logging as Django's
    LOGGING set it (one JSON object per line), instead of its own text format; the worker's
    handlers drop the periodic-task noise unless LOG_PERIODIC_TASKS is on (tests that wait for a
    beat task's "succeeded" line turn it on)."""
    from django.conf import settings

    if getattr(settings, "LOG_PERIODIC_TASKS", False):
        return
    noise = PeriodicTaskNoiseFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(noise)


def _connect_celery() -> None:
    try:
        from celery.signals import setup_logging
    except ImportError:  # the web process works without Celery installed
        return
    setup_logging.connect(keep_django_logging_in_celery, weak=False, dispatch_uid="config.logging")


_connect_celery()


try:
    from gunicorn.glogging import Logger as _GunicornBaseLogger
except ImportError:  # gunicorn serves production; tests and runserver do without
    _GunicornBaseLogger = None


def _response_request_id(resp) -> str:
    """The request id the app answered with (config's middleware sets X-Request-ID)."""
    for name, value in getattr(resp, "headers", None) or []:
        if str(name).lower() == "x-request-id":
            return str(value)
    return ""


if _GunicornBaseLogger is not None:

    class GunicornLogger(_GunicornBaseLogger):
        """Gunicorn's logger (``--logger-class config.logging.GunicornLogger``) writing its error log
        and access log as JSON lines like the rest: one object per request with method, path,
        status, duration and the request id."""

        def setup(self, cfg):
            super().setup(cfg)
            formatter = JSONFormatter()
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter)
                    handler.addFilter(RequestIDFilter())

        def access(self, resp, req, environ, request_time):
            if not any(getattr(self.cfg, name, None) for name in ("accesslog", "logconfig", "logconfig_dict")):
                return
            status = str(resp.status).split(None, 1)[0]
            self.access_log.info(
                "%s %s %s",
                req.method,
                req.path,
                status,
                extra={
                    "method": req.method,
                    "path": req.path,
                    "status": int(status) if status.isdigit() else status,
                    "duration_ms": round(request_time.total_seconds() * 1000, 1),
                    "remote_addr": environ.get("REMOTE_ADDR", ""),
                    "request_id": _response_request_id(resp) or environ.get("HTTP_X_REQUEST_ID", "-"),
                },
            )
