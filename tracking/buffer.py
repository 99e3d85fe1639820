"""The event buffer between the public endpoints and the database.

With Redis (`TRACKING_BUFFER=redis`, the default when REDIS_URL is set) a hit costs one
XADD to a stream and no database transaction. The `tracking.flush` task (beat, every
couple of seconds, on the `events` queue) reads the stream through a consumer group
(XREADGROUP), ingests a batch with set-based SQL in one transaction, and only then
acknowledges and deletes the entries (XACK + XDEL). A worker that dies between the read
and the acknowledgement leaves its entries pending; the next flush takes them over with
XAUTOCLAIM once they have been idle for TRACKING_RECLAIM_IDLE_SECONDS and ingests them
again. Ingestion is idempotent (every entry carries a unique dedupe key, inserted with
ON CONFLICT DO NOTHING, and the status rule only moves forward), so a replay stores
nothing twice. One flush runs at a time (a Redis lock with a TTL) so two flushes never
update the same messages in different orders.

Without Redis (`TRACKING_BUFFER=sync`, the embedded SQLite setup) every hit is ingested
in its own transaction before the response: nothing is buffered, so nothing can be lost,
at SQLite's write speed. The same happens, with a warning in the log, when Redis cannot
be reached: a hit is never dropped because the buffer is down.

Anymail webhook posts are collected per request (`collecting`): the events of one post
go to the buffer together, after Anymail has verified and parsed the whole post.

Hits on one tracking link are capped (`push_hit`): at most TRACKING_EVENTS_PER_TOKEN_PER_MINUTE
are stored per link per clock minute, so a client replaying a pixel or a link cannot flood the
table. With Redis the count, the cap and the XADD are one Lua call (one round trip, as before);
in sync mode the count lives in Django's cache (atomic add/incr). Hits over the cap are counted
under `<stream>:capped` (`capped_count`) and logged once per link and minute. A provider's
events (webhooks) are not hits and are never capped.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponseForbidden

from tracking import conf
from tracking.records import EventRecord

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("django.security.tracking")

GROUP = "tracking-flush"
FIELD = b"e"
LOCK_SECONDS = 60

_collector: contextvars.ContextVar[list[EventRecord] | None] = contextvars.ContextVar(
    "tracking_collector", default=None
)
_clients: dict[str, object] = {}


def client():
    """The process's Redis client for the buffer (a connection pool, safe across forks)."""
    url = conf.redis_url()
    found = _clients.get(url)
    if found is None:
        import redis

        found = _clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return found


def dead_letter_key() -> str:
    return f"{conf.stream_key()}:dead"


# --- writing ------------------------------------------------------------------------------------


def push(records: Sequence[EventRecord]) -> None:
    """Hand records to the buffer; when this returns they are durable (in Redis or in the database)."""
    if not records:
        return
    collected = _collector.get()
    if collected is not None:
        collected.extend(records)
        return
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        try:
            _append(records)
            return
        except Exception:  # any Redis failure: store synchronously instead of losing the hit
            logger.warning("tracking buffer unavailable; storing events directly", exc_info=True)
    _ingest(records)


# KEYS: the link's counter for this minute, the stream, the capped total.
# ARGV: the record's JSON, the cap, the counter's lifetime in seconds.
# Returns 1 when stored, 0 when over the cap, -1 for the first hit over it (logged once).
_CAP_SCRIPT = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if hits > tonumber(ARGV[2]) then
    redis.call('INCR', KEYS[3])
    if hits == tonumber(ARGV[2]) + 1 then return -1 end
    return 0
end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[1])
return 1
"""
# A minute's counter outlives its minute, so a clock a little ahead on another host still finds it.
CAP_WINDOW_TTL = 120
_scripts: dict[str, object] = {}


def current_minute() -> int:
    return int(time.time() // 60)


def cap_counter_key(key: str) -> str:
    return f"{conf.stream_key()}:cap:{current_minute()}:{key}"


def capped_total_key() -> str:
    return f"{conf.stream_key()}:capped"


def push_hit(record: EventRecord, *, key: str) -> bool:
    """Buffer one hit on a tracking link unless the link (`key`) already had its cap of hits this
    minute. Returns whether the hit was stored; over the cap it is only counted."""
    limit = conf.events_per_token_per_minute()
    if limit <= 0 or _collector.get() is not None:
        push([record])
        return True
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        try:
            verdict = int(
                _cap_script()(
                    keys=[cap_counter_key(key), conf.stream_key(), capped_total_key()],
                    args=[record.to_json(), limit, CAP_WINDOW_TTL],
                )
            )
        except Exception:  # any Redis failure: store synchronously instead of losing the hit
            logger.warning("tracking buffer unavailable; storing events directly", exc_info=True)
        else:
            if verdict < 0:
                _log_capped(key, limit)
            return verdict == 1
    if _over_cap_in_cache(key, limit):
        return False
    _ingest([record])
    return True


def capped_count() -> int:
    """Hits counted but not stored because their link was over its cap (since the counter began)."""
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        return int(client().get(capped_total_key()) or 0)
    from django.core.cache import cache

    return int(cache.get(capped_total_key()) or 0)


def _cap_script():
    url = conf.redis_url()
    found = _scripts.get(url)
    if found is None:
        # EVALSHA, loading the script once per server (redis-py retries with EVAL on NOSCRIPT).
        found = _scripts[url] = client().register_script(_CAP_SCRIPT)
    return found


def _over_cap_in_cache(key: str, limit: int) -> bool:
    from django.core.cache import cache

    counter = cap_counter_key(key)
    try:
        cache.add(counter, 0, timeout=CAP_WINDOW_TTL)
        try:
            hits = cache.incr(counter)
        except ValueError:  # expired between add and incr
            cache.set(counter, 1, timeout=CAP_WINDOW_TTL)
            hits = 1
        if hits <= limit:
            return False
        cache.add(capped_total_key(), 0, timeout=None)
        cache.incr(capped_total_key())
    except Exception:  # a counter that cannot be kept never costs a hit
        logger.warning("tracking cap counter unavailable; storing the hit", exc_info=True)
        return False
    if hits == limit + 1:
        _log_capped(key, limit)
    return True


def _log_capped(key: str, limit: int) -> None:
    security_logger.warning(
        "tracking link over its cap of %s hits a minute; further hits this minute are counted, not stored",
        limit,
        extra={"link": key},
    )


def _append(records: Sequence[EventRecord]) -> None:
    stream = conf.stream_key()
    if len(records) == 1:
        client().xadd(stream, {FIELD: records[0].to_json()})
        return
    pipe = client().pipeline(transaction=False)
    for record in records:
        pipe.xadd(stream, {FIELD: record.to_json()})
    pipe.execute()


def _ingest(records: Sequence[EventRecord]) -> int:
    from tracking.services import event_ingest_batch

    return event_ingest_batch(records=records).stored


def collecting(view: Callable) -> Callable:
    """Wrap a webhook view: its events reach the buffer together, and only if the view succeeds.
    A post that fails Anymail's verification (basic auth, the provider's signature) is a 403."""
    from anymail.exceptions import AnymailWebhookValidationFailure

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        token = _collector.set([])
        try:
            response = view(request, *args, **kwargs)
            records = _collector.get()
        except AnymailWebhookValidationFailure as exc:
            security_logger.warning("webhook refused: %s", exc, extra={"path": request.path})
            return HttpResponseForbidden("Webhook verification failed.", content_type="text/plain")
        finally:
            _collector.reset(token)
        if response.status_code < 300:
            push(records)  # raises (HTTP 500, the provider retries) rather than answer 200 for lost events
        return response

    return wrapped


# --- flushing -----------------------------------------------------------------------------------


@dataclass
class FlushResult:
    read: int = 0
    stored: int = 0
    reclaimed: int = 0
    dead: int = 0
    skipped: bool = False


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group() -> None:
    import redis

    try:
        client().xgroup_create(conf.stream_key(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def flush(
    *,
    max_seconds: float | None = None,
    batch: int | None = None,
    reclaim_idle_seconds: float | None = None,
    consumer: str | None = None,
) -> FlushResult:
    """Drain the stream into the database, batch by batch, for at most `max_seconds`."""
    result = FlushResult()
    if conf.buffer_mode() != conf.BUFFER_REDIS:
        return result
    import redis.exceptions

    ensure_group()
    lock = client().lock(f"{conf.stream_key()}:flush-lock", timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        result.skipped = True
        return result
    try:
        deadline = time.monotonic() + (conf.flush_seconds() if max_seconds is None else max_seconds)
        size = batch or conf.flush_batch()
        idle_ms = int(1000 * (conf.reclaim_idle_seconds() if reclaim_idle_seconds is None else reclaim_idle_seconds))
        name = consumer or consumer_name()
        reclaim_from: str | bytes | None = "0-0"
        while True:
            entries = []
            if reclaim_from is not None:
                next_id, claimed, *_deleted = client().xautoclaim(
                    conf.stream_key(), GROUP, name, min_idle_time=idle_ms, start_id=reclaim_from, count=size
                )
                reclaim_from = None if next_id in (b"0-0", "0-0") else next_id
                entries = [(entry_id, fields) for entry_id, fields in claimed if fields]
                result.reclaimed += len(entries)
            if not entries and reclaim_from is None:
                response = client().xreadgroup(GROUP, name, {conf.stream_key(): ">"}, count=size)
                entries = response[0][1] if response else []
                if not entries:
                    break
            if entries:
                stored, dead = _ingest_entries(entries)
                result.read += len(entries)
                result.stored += stored
                result.dead += dead
            if time.monotonic() >= deadline:
                break
            lock.reacquire()
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            logger.warning("tracking flush outlived its lock")
    return result


def read_without_ack(*, count: int, consumer: str) -> list[bytes]:
    """Read entries as a flush would and stop there, as a worker killed before its acknowledgement
    would (for tests and the operator's own drills). Returns the entry ids now pending."""
    ensure_group()
    response = client().xreadgroup(GROUP, consumer, {conf.stream_key(): ">"}, count=count)
    return [entry_id for entry_id, _fields in (response[0][1] if response else [])]


def pending_count() -> int:
    ensure_group()
    return int(client().xpending(conf.stream_key(), GROUP)["pending"])


def backlog() -> int:
    """Entries in the stream not yet ingested (new and pending)."""
    return int(client().xlen(conf.stream_key()))


def _ingest_entries(entries: list) -> tuple[int, int]:
    """Ingest, then acknowledge. A batch the database refuses is retried entry by entry, and only the
    entries refused on their own go to the dead-letter stream; when the database is unreachable
    nothing is acknowledged and the entries stay pending for the next flush."""
    records: list[EventRecord] = []
    ids: list[bytes] = []
    dead: list[tuple[bytes, bytes]] = []
    for entry_id, fields in entries:
        raw = fields.get(FIELD, b"")
        try:
            records.append(EventRecord.from_json(raw))
            ids.append(entry_id)
        except (ValueError, TypeError, KeyError):
            dead.append((entry_id, raw))
    stored = 0
    try:
        stored = _ingest(records)
    except (OperationalError, InterfaceError):
        raise
    except DatabaseError:
        logger.exception("tracking batch refused; retrying entry by entry")
        stored = 0
        for entry_id, record in zip(ids, records, strict=True):
            try:
                stored += _ingest([record])
            except (OperationalError, InterfaceError):
                raise
            except DatabaseError:
                logger.exception("tracking event refused", extra={"entry": entry_id.decode()})
                dead.append((entry_id, record.to_json().encode()))
    all_ids = [entry_id for entry_id, _fields in entries]
    pipe = client().pipeline(transaction=True)
    for entry_id, raw in dead:
        pipe.xadd(dead_letter_key(), {FIELD: raw, b"id": entry_id})
    pipe.xack(conf.stream_key(), GROUP, *all_ids)
    pipe.xdel(conf.stream_key(), *all_ids)
    pipe.execute()
    return stored, len(dead)
