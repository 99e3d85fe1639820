"""Analytics background work: the incremental rollup and the pruning of old raw events."""

from __future__ import annotations

from celery import shared_task

from analytics import rollup


@shared_task(name="analytics.rollup", acks_late=True, time_limit=900, soft_time_limit=840)
def rollup_task(**_kwargs) -> dict:
    """Rewrite the daily rollup slices touched since the last run and move the watermarks."""
    return rollup.rollup_incremental()


@shared_task(name="analytics.prune", acks_late=True, time_limit=3600, soft_time_limit=3500)
def prune_task(**_kwargs) -> dict[str, int]:
    """Delete raw message events past the retention that are already rolled up."""
    return {"deleted": rollup.prune_events()}
