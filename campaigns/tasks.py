"""Campaign background work."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from campaigns import ab, guard, recurrence, sending, sequences, services
from campaigns.models import Campaign, CampaignStatus


@shared_task(name="campaigns.prepare", acks_late=True, time_limit=3600, soft_time_limit=3540)
def campaign_prepare_task(*, campaign_id: str, **_kwargs) -> None:
    """Expand a launched campaign into messages and plan them; safe to run again."""
    campaign = Campaign.objects.select_related("organization").filter(pk=campaign_id).first()
    if campaign is None or campaign.status in (CampaignStatus.DRAFT, CampaignStatus.CANCELLED):
        return
    services.campaign_expand(campaign=campaign)
    ab.campaign_ab_hold(campaign=campaign)  # an A/B test sends its test portion first; the rest waits
    services.campaign_plan(campaign=campaign)


@shared_task(name="campaigns.dispatch.due", acks_late=True, time_limit=120, soft_time_limit=100, ignore_result=True)
def dispatch_due_task(**_kwargs) -> None:
    """Claim due messages and hand them to send tasks (beat runs this every few seconds)."""
    sending.dispatch_due()


@shared_task(name="campaigns.send.batch", acks_late=True, time_limit=900, soft_time_limit=840)
def send_batch_task(*, message_ids: list[int], lease: str, **_kwargs) -> None:
    """Send one claimed chunk; a late or repeated delivery of the task sends nothing twice."""
    sending.send_batch(message_ids=message_ids, lease=datetime.fromisoformat(lease))


@shared_task(name="campaigns.test_send", acks_late=True, time_limit=120, soft_time_limit=100)
def campaign_test_send_task(*, campaign_id: str, emails: list[str], **_kwargs) -> None:
    """Send the campaign's message, with a sample contact, to the given addresses (not counted)."""
    campaign = Campaign.objects.select_related("template__organization").filter(pk=campaign_id).first()
    if campaign is not None and campaign.template_id:
        services.campaign_test_send(campaign=campaign, emails=emails)


@shared_task(name="campaigns.guard", acks_late=True, time_limit=300, soft_time_limit=270, ignore_result=True)
def guard_task(**_kwargs) -> None:
    """Pause the campaigns of organizations whose complaint rate is above their threshold."""
    guard.guard_enforce()


# The guard's task was named `tracking.guard` before it moved here: tasks already queued under that
# name, and beat rows an operator made for it, still run.
@shared_task(name="tracking.guard", acks_late=True, time_limit=300, soft_time_limit=270, ignore_result=True)
def guard_task_previous_name(**_kwargs) -> None:
    """The complaint-rate guard under its earlier name (see `guard_task`)."""
    guard.guard_enforce()


@shared_task(
    name="campaigns.sequences.advance", acks_late=True, time_limit=300, soft_time_limit=270, ignore_result=True
)
def sequences_advance_task(**_kwargs) -> None:
    """Write the due steps of drip sequences (beat runs this every few seconds); safe in several workers."""
    while sequences.enrollments_advance().due >= sequences.ADVANCE_BATCH:
        pass  # a full batch: more may be due


@shared_task(name="campaigns.recurrence.due", acks_late=True, time_limit=300, soft_time_limit=270, ignore_result=True)
def recurrence_due_task(**_kwargs) -> None:
    """Launch the runs of recurring campaigns whose next occurrence has come (beat runs this every minute)."""
    while recurrence.series_run_due() >= recurrence.RUN_BATCH:
        pass  # a full batch: more may be due


@shared_task(name="campaigns.ab.decide", acks_late=True, time_limit=300, soft_time_limit=270, ignore_result=True)
def ab_decide_task(**_kwargs) -> None:
    """Decide the A/B tests whose wait is over and send their winners to the rest (beat, every minute)."""
    ab.ab_decide_due()
