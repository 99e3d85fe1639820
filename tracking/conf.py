"""Tracking's settings, with the defaults the embedded setup runs on.

TRACKING_BUFFER                 "redis" (a Redis stream, flushed by the `tracking.flush` task) or
                                "sync" (one INSERT per hit, in the request). Default: redis when
                                REDIS_URL is set, else sync.
TRACKING_REDIS_URL              The Redis holding the stream. Default: REDIS_URL.
TRACKING_STREAM                 The stream's key. Default "tracking:events".
TRACKING_FLUSH_BATCH            Entries read, inserted and acknowledged at a time. Default 5000.
TRACKING_FLUSH_SECONDS          How long one flush task keeps draining the stream. Default 20.
TRACKING_RECLAIM_IDLE_SECONDS   Entries read but not acknowledged for this long (their worker died)
                                are taken over by the next flush. Default 60.
TRACKING_GUARD_CACHE_SECONDS    How long a computed complaint-rate verdict is reused (read by
                                campaigns.guard). Default 60.
TRACKING_EVENTS_PER_TOKEN_PER_MINUTE
                                Opens or clicks stored per tracking link per clock minute; more are
                                counted, not stored. 0 turns the cap off. Default 20.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BUFFER_REDIS = "redis"
BUFFER_SYNC = "sync"


def buffer_mode() -> str:
    mode = getattr(settings, "TRACKING_BUFFER", "") or (BUFFER_REDIS if redis_url() else BUFFER_SYNC)
    if mode not in (BUFFER_REDIS, BUFFER_SYNC):
        raise ImproperlyConfigured(f"TRACKING_BUFFER must be {BUFFER_REDIS!r} or {BUFFER_SYNC!r}, got {mode!r}")
    if mode == BUFFER_REDIS and not redis_url():
        raise ImproperlyConfigured("TRACKING_BUFFER=redis needs REDIS_URL (or TRACKING_REDIS_URL)")
    return mode


def redis_url() -> str:
    return getattr(settings, "TRACKING_REDIS_URL", "") or getattr(settings, "REDIS_URL", "")


def stream_key() -> str:
    return getattr(settings, "TRACKING_STREAM", "") or "tracking:events"


def flush_batch() -> int:
    return int(getattr(settings, "TRACKING_FLUSH_BATCH", 5000))


def flush_seconds() -> float:
    return float(getattr(settings, "TRACKING_FLUSH_SECONDS", 20))


def reclaim_idle_seconds() -> float:
    return float(getattr(settings, "TRACKING_RECLAIM_IDLE_SECONDS", 60))


def events_per_token_per_minute() -> int:
    return int(getattr(settings, "TRACKING_EVENTS_PER_TOKEN_PER_MINUTE", 20))
