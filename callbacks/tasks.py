"""Callback background work: the periodic sweep and emails to agents."""

from __future__ import annotations

from celery import shared_task

from callbacks import notifications, services


@shared_task(name="callbacks.sweep", acks_late=True, time_limit=300, soft_time_limit=270)
def sweep_task(**_kwargs) -> dict[str, int]:
    """Mark breached SLAs overdue (emailing the agents) and re-score waiting requests."""
    result = services.callbacks_sweep()
    return {"marked_overdue": result.marked_overdue, "rescored": result.rescored, "reprioritized": result.reprioritized}


@shared_task(
    name="callbacks.notify_assignment",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=60,
    max_retries=3,
    time_limit=120,
    soft_time_limit=100,
)
def notify_assignment_task(*, agent_id: str, callback_ids: list[str], **_kwargs) -> None:
    """Email an agent the callbacks just assigned to them."""
    notifications.assignment_send(agent_id=agent_id, callback_ids=callback_ids)


@shared_task(
    name="callbacks.notify_breach",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=60,
    max_retries=3,
    time_limit=120,
    soft_time_limit=100,
)
def notify_breach_task(*, agent_id: str, callback_ids: list[str], **_kwargs) -> None:
    """Email an agent that callbacks assigned to them passed their SLA."""
    notifications.breach_send(agent_id=agent_id, callback_ids=callback_ids)
