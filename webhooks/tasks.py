"""Webhook background work, on the `webhooks` queue: fan-out from the other apps' rows and delivery."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from webhooks import delivery, fanout


@shared_task(name="webhooks.fanout", acks_late=True, ignore_result=True, time_limit=120, soft_time_limit=100)
def fanout_task(**_kwargs) -> dict[str, int]:
    """Create the deliveries for what happened since the last run; deliver them if there are any."""
    created = fanout.fanout_run(max_seconds=settings.WEBHOOKS_FANOUT_SECONDS)
    if any(created.values()):
        deliver_task.delay()
    return created


@shared_task(name="webhooks.deliver", acks_late=True, ignore_result=True, time_limit=180, soft_time_limit=150)
def deliver_task(**_kwargs) -> dict[str, int]:
    """POST the due deliveries, batch after batch, for at most WEBHOOKS_DELIVER_SECONDS."""
    return delivery.deliver_due(max_seconds=settings.WEBHOOKS_DELIVER_SECONDS)
