"""Delivering: claim due deliveries, POST them signed, record what came back.

A run claims a batch of due pending deliveries with SELECT … FOR UPDATE SKIP LOCKED and pushes
their `next_attempt_at` a lease ahead (counting the attempt) in the same short transaction, so
several workers never take the same rows. The POSTs then run in a small thread pool, outside any
transaction, and the outcomes are written in one statement per batch. A delivery is marked only
after its POST returned: a worker that dies in between leaves the row pending, and once the lease
has passed it is sent again (at least once; receivers dedupe on `webhook-id`).

2xx is delivered. Anything else (another status, a timeout, a refused connection, an address
that is no longer allowed) is retried on `RETRY_DELAYS` (about 27 hours in all), then failed. An
endpoint that has answered nothing but failures for WEBHOOKS_DISABLE_AFTER_HOURS (or
WEBHOOKS_DISABLE_AFTER_FAILURES attempts in a row, when set) is disabled with the reason, and its
pending deliveries fail with it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from webhooks import services, signing, targets
from webhooks.models import Delivery, DeliveryStatus, Endpoint

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd, ... failed attempt; after the last one the delivery has failed.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
ERROR_CHARS = 500


def next_attempt_after(attempts: int, failed_at: datetime) -> datetime | None:
    """When to try again after `attempts` attempts all failed; None when there are no tries left."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return failed_at + RETRY_DELAYS[max(attempts, 1) - 1]


def body_of(payload: dict) -> bytes:
    """The exact bytes sent (and signed) for a payload: the same on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Outcome:
    delivery_id: int
    endpoint_id: object
    ok: bool
    finished_at: datetime
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""


def claim(*, limit: int, now: datetime | None = None) -> list[Delivery]:
    """Take up to `limit` due deliveries of enabled endpoints and lease them to this run."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING).update(
            next_attempt_at=lease_until, attempts=F("attempts") + 1
        )
    return list(Delivery.objects.filter(pk__in=ids).select_related("endpoint").order_by("id"))


def attempt(delivery: Delivery) -> Outcome:
    """POST one delivery to its endpoint; never raises."""
    body = body_of(delivery.payload)
    headers = signing.headers(delivery.endpoint.secret, delivery.event_id, body)
    try:
        reply = targets.post(delivery.endpoint.url, body, headers, timeout=float(settings.WEBHOOKS_TIMEOUT_SECONDS))
    except targets.UnsafeTarget as exc:
        return Outcome(delivery.pk, delivery.endpoint_id, False, timezone.now(), error=str(exc)[:ERROR_CHARS])
    except Exception as exc:  # every transport error is a failed attempt, recorded on the row
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        return Outcome(delivery.pk, delivery.endpoint_id, False, timezone.now(), error=error)
    ok = 200 <= reply.status < 300
    return Outcome(
        delivery.pk,
        delivery.endpoint_id,
        ok,
        timezone.now(),
        status_code=reply.status,
        excerpt=reply.excerpt,
        error="" if ok else f"HTTP {reply.status}",
    )


def record(deliveries: list[Delivery], outcomes: list[Outcome]) -> dict[str, int]:
    """Write the outcomes (one UPDATE per batch) and the endpoints' failure streaks."""
    by_id = {delivery.pk: delivery for delivery in deliveries}
    changed = []
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for outcome in outcomes:
        delivery = by_id[outcome.delivery_id]
        delivery.last_response_code = outcome.status_code
        delivery.last_response_body = outcome.excerpt[:1024]
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = outcome.finished_at
            delivery.next_attempt_at = None
            counts["delivered"] += 1
        else:
            retry_at = next_attempt_after(delivery.attempts, outcome.finished_at)
            delivery.next_attempt_at = retry_at
            delivery.status = DeliveryStatus.PENDING if retry_at else DeliveryStatus.FAILED
            counts["retrying" if retry_at else "failed"] += 1
        changed.append(delivery)
    with transaction.atomic():
        Delivery.objects.bulk_update(
            changed,
            [
                "status",
                "next_attempt_at",
                "delivered_at",
                "last_response_code",
                "last_response_body",
                "last_error",
            ],
        )
        _record_streaks(outcomes)
    return counts


def _record_streaks(outcomes: list[Outcome]) -> None:
    by_endpoint: dict[object, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_endpoint[outcome.endpoint_id].append(outcome)
    for endpoint_id, results in by_endpoint.items():
        results.sort(key=lambda outcome: outcome.finished_at)
        last_ok = max((i for i, outcome in enumerate(results) if outcome.ok), default=None)
        failures = results if last_ok is None else results[last_ok + 1 :]
        first_failure = failures[0].finished_at if failures else None
        endpoint = Endpoint.objects.filter(pk=endpoint_id)
        if last_ok is not None:
            endpoint.update(failure_streak=len(failures), failing_since=first_failure)
        else:
            endpoint.update(
                failure_streak=F("failure_streak") + len(failures),
                failing_since=Coalesce(F("failing_since"), first_failure),
            )
            _disable_if_failing(endpoint_id, now=results[-1].finished_at)


def _disable_if_failing(endpoint_id, *, now: datetime) -> None:
    hours = settings.WEBHOOKS_DISABLE_AFTER_HOURS
    streak = settings.WEBHOOKS_DISABLE_AFTER_FAILURES
    endpoint = Endpoint.objects.select_for_update().filter(pk=endpoint_id, enabled=True).first()
    if endpoint is None or endpoint.failing_since is None:
        return
    if hours and endpoint.failing_since <= now - timedelta(hours=hours):
        reason = f"Every delivery failed for {hours} hours (since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC)."
    elif streak and endpoint.failure_streak >= streak:
        reason = f"{endpoint.failure_streak} delivery attempts in a row failed."
    else:
        return
    services.endpoint_disable(endpoint=endpoint, reason=reason, by=None, now=now)
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": str(endpoint.pk), "reason": reason})


def deliver_due(*, max_seconds: float = 45.0, now: datetime | None = None) -> dict[str, int]:
    """Deliver due batches until none is left or the time is up; returns the counts."""
    deadline = time.monotonic() + max_seconds
    totals = {"delivered": 0, "retrying": 0, "failed": 0}
    workers = max(1, settings.WEBHOOKS_CONCURRENCY)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
        while time.monotonic() < deadline:
            batch = claim(limit=settings.WEBHOOKS_DELIVERY_BATCH, now=now)
            if not batch:
                break
            outcomes = list(pool.map(attempt, batch))
            for key, value in record(batch, outcomes).items():
                totals[key] += value
    return totals
