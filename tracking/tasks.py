"""Tracking background work, on the `events` queue (task names `tracking.*`)."""

from __future__ import annotations

from celery import shared_task

from tracking import buffer


@shared_task(name="tracking.flush", acks_late=True, time_limit=120, soft_time_limit=100, ignore_result=True)
def flush_task(**_kwargs) -> dict:
    """Move buffered events into the database (beat runs this every couple of seconds)."""
    result = buffer.flush()
    return {"read": result.read, "stored": result.stored, "reclaimed": result.reclaimed, "dead": result.dead}
