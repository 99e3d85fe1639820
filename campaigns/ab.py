"""A/B tests with a winner: hold the rest, decide, send the winner to the rest (writes).

The settings and the statistics are in `campaigns.abtest` (pure). Here:

* `campaign_ab_hold` runs after expansion and before planning: in each variant a random
  `test_fraction` of its messages stays `planned` (the test), the rest becomes `held` (no variant,
  skipped by dispatch and never planned). One UPDATE with a window function.
* `ab_decide_due` (beat) decides for running campaigns whose test is out and whose wait is over:
  per variant the metric over messages sent minus bounced (statuses only move to opened or clicked
  for people, never for machine opens and clicks), then `abtest.decide`.
* `campaign_ab_decide` records the decision (automatic, or a marketer's pick) and gives every held
  message the winner (or, with no significant winner and `on_no_winner: "split"`, the weights' split)
  in one UPDATE, then plans them through the campaign's planner settings from now.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts.models import User
from campaigns import abtest
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus
from config.errors import ConflictError

logger = logging.getLogger(__name__)

M = MessageStatus
TEST_PENDING = (M.PLANNED, M.QUEUED, M.CLAIMED, M.SENDING)
SENT = Q(status__gte=M.SENT, status__lte=M.COMPLAINED)
SUCCESS = {"open_rate": Q(status__in=[M.OPENED, M.CLICKED]), "click_rate": Q(status=M.CLICKED)}


def _param(value):
    if connection.vendor == "sqlite" and hasattr(value, "hex"):
        return value.hex
    return value


def campaign_ab_hold(*, campaign: Campaign) -> int:
    """Hold all but a random `test_fraction` of each variant's planned messages; returns how many are
    held. Does nothing for a campaign without a test, or whose rest is held already (a rerun)."""
    settings = campaign.ab_test or {}
    if not settings:
        return 0
    with transaction.atomic():
        # Under the campaign's lock, which a decision takes too: once a test is decided (by hand, just
        # after expansion) nothing is held for a decision already made; everyone keeps their variant.
        locked = Campaign.objects.select_for_update().only("ab_result").get(pk=campaign.pk)
        if locked.ab_result or Message.objects.filter(campaign=campaign, status=M.HELD).exists():
            return 0
        held = _hold_rest(campaign, float(settings["test_fraction"]))
    logger.info("a/b test rest held", extra={"campaign_id": str(campaign.pk), "held": held})
    return held


def _hold_rest(campaign: Campaign, test_fraction: float) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_message SET status = %s, variant_id = NULL
            WHERE id IN (
                SELECT id FROM (
                    SELECT id,
                           row_number() OVER (PARTITION BY variant_id ORDER BY random()) AS position,
                           count(*) OVER (PARTITION BY variant_id) AS size
                    FROM campaigns_message
                    WHERE campaign_id = %s AND step = 0 AND status = %s
                ) AS ranked
                WHERE ranked.position > ranked.size * %s
            )
            """,
            [M.HELD, _param(campaign.pk), M.PLANNED, test_fraction],
        )
        return max(cursor.rowcount, 0)


def per_variant(campaign: Campaign) -> list[dict[str, Any]]:
    """Per variant (in name order) of the test: sent, bounced, unique opens and clicks, and the rate of
    the test's metric over sent minus bounced."""
    metric = (campaign.ab_test or {}).get("metric", "open_rate")
    rows = {
        row["variant_id"]: row
        for row in Message.objects.filter(campaign=campaign, step=0, variant__isnull=False)
        .exclude(status=M.HELD)
        .values("variant_id")
        .annotate(
            sent=Count("id", filter=SENT),
            bounced=Count("id", filter=Q(status=M.BOUNCED)),
            opened=Count("id", filter=SUCCESS["open_rate"]),
            clicked=Count("id", filter=SUCCESS["click_rate"]),
        )
        .order_by()
    }
    figures = []
    for variant in campaign.variants.order_by("name"):
        row = rows.get(variant.pk, {})
        sent, bounced = row.get("sent", 0), row.get("bounced", 0)
        successes = row.get("opened" if metric == "open_rate" else "clicked", 0)
        trials = sent - bounced
        figures.append(
            {
                "variant": variant.name,
                "sent": sent,
                "bounced": bounced,
                "opened": row.get("opened", 0),
                "clicked": row.get("clicked", 0),
                "rate": round(successes / trials, 4) if trials else 0.0,
            }
        )
    return figures


def variant_results(figures: list[dict[str, Any]], metric: str) -> list[abtest.VariantResult]:
    successes = "opened" if metric == "open_rate" else "clicked"
    return [abtest.VariantResult(f["variant"], f["sent"] - f["bounced"], f[successes]) for f in figures]


def _test_messages(campaign: Campaign):
    return Message.objects.filter(campaign=campaign, step=0).exclude(status__in=[M.HELD, M.CANCELLED, M.SKIPPED])


def decision_due_at(campaign: Campaign) -> datetime | None:
    """When the test's wait is over: `wait_hours` after its last send (None while any test message is
    still to go out, or before expansion)."""
    settings = campaign.ab_test or {}
    if not settings or campaign.ab_result or not campaign.expanded_at:
        return None
    messages = _test_messages(campaign)
    if messages.filter(status__in=TEST_PENDING).exists():
        return None
    last = messages.aggregate(last=Max("sent_at"))["last"] or campaign.starts_at or campaign.launched_at
    return last + timedelta(hours=float(settings["wait_hours"])) if last else None


def ab_decide_due(*, now: datetime | None = None) -> int:
    """Decide every running test whose wait is over (beat). A paused campaign decides once resumed."""
    now = now or timezone.now()
    decided = 0
    candidates = Campaign.objects.filter(status=CampaignStatus.RUNNING, ab_result={}).exclude(ab_test={})
    for campaign in candidates.select_related("organization"):
        due = decision_due_at(campaign)
        if due is not None and due <= now:
            try:
                campaign_ab_decide(campaign=campaign, now=now)
                decided += 1
            except ConflictError:
                continue  # decided meanwhile (by hand, or by another worker)
    return decided


def campaign_ab_decide(
    *, campaign: Campaign, variant: CampaignVariant | None = None, by: User | None = None, now: datetime | None = None
) -> Campaign:
    """Record the decision (the statistics' winner, or `variant` picked by a marketer) and send the
    held rest: one UPDATE gives them their variant, then they are planned from now."""
    from accounts.audit import audit_record
    from campaigns import services

    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().select_related("organization").get(pk=campaign.pk)
        if not campaign.ab_test:
            raise ConflictError("This campaign has no A/B test.")
        if campaign.ab_result:
            raise ConflictError("The A/B test is decided already.")
        if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.CANCELLED, CampaignStatus.COMPLETED):
            raise ConflictError(f"A {campaign.status} campaign's test cannot be decided.")
        if not campaign.expanded_at:
            raise ConflictError("The test has not started yet: the audience is still being prepared.")
        figures = per_variant(campaign)
        decision = abtest.decide(variant_results(figures, campaign.ab_test["metric"]))
        variants = {v.name: v for v in campaign.variants.all()}
        test_size = _test_size(campaign)  # before the rest gets a variant too
        if variant is not None:
            winner, decided_by = variant, "manual"
        elif decision.significant:
            winner, decided_by = variants[decision.best], "auto"
        elif campaign.ab_test.get("on_no_winner") == "split":
            winner, decided_by = None, "auto"
        else:
            winner, decided_by = variants[min(variants)], "auto"
        campaign.ab_result = {
            "winner": winner.name if winner else None,
            "best": decision.best,
            "significant": decision.significant,
            "z": decision.z,
            "p_value": decision.p_value,
            "decided_at": now.isoformat(),
            "decided_by": decided_by,
            "test_size": test_size,
            "per_variant": figures,
        }
        campaign.save(update_fields=["ab_result", "updated_at"])
        released = _release_held(campaign, winner)
        audit_record(
            organization=campaign.organization_id,
            by=by,
            action="campaign.ab_decided",
            obj=campaign,
            changes={"after": {**{k: v for k, v in campaign.ab_result.items() if k != "per_variant"}}},
        )
    # Planned after the commit, as a launch's expansion is: the planner streams and writes in batches.
    settings = dataclasses.replace(services.plan_settings(campaign, now=now), start_at=now)
    services._plan_with(campaign, settings)
    logger.info("a/b test decided", extra={"campaign_id": str(campaign.pk), "released": released})
    return campaign


def _release_held(campaign: Campaign, winner: CampaignVariant | None) -> int:
    """Held -> planned with the winner (or the weights' split), one UPDATE."""
    from campaigns import services

    if winner is not None:
        return Message.objects.filter(campaign=campaign, status=M.HELD).update(status=M.PLANNED, variant=winner)
    split_sql, split_params = services._variant_split(campaign, contact_column="contact_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE campaigns_message SET status = %s, variant_id = {split_sql} "  # noqa: S608 - fixed SQL
            "WHERE campaign_id = %s AND status = %s",
            [M.PLANNED, *split_params, _param(campaign.pk), M.HELD],
        )
        return max(cursor.rowcount, 0)


def _test_size(campaign: Campaign) -> int:
    """Messages in the test: those with a variant (the held rest has none until the decision)."""
    return (
        Message.objects.filter(campaign=campaign, step=0, variant__isnull=False)
        .exclude(status__in=[M.CANCELLED, M.SKIPPED])
        .count()
    )


def campaign_ab_state(campaign: Campaign, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The `ab_test` part of the campaign's stats (None without a test)."""
    settings = campaign.ab_test or {}
    if not settings:
        return None
    result = campaign.ab_result or {}
    metric = settings.get("metric", "open_rate")
    counts = Message.objects.filter(campaign=campaign, step=0).aggregate(
        held=Count("id", filter=Q(status=M.HELD)),
        test=Count("id", filter=Q(variant__isnull=False) & ~Q(status__in=[M.CANCELLED, M.SKIPPED])),
    )
    # Once decided every message has a variant: the test's size is the one recorded at the decision.
    test_size = result.get("test_size", counts["test"]) if result else counts["test"]
    if result:
        status, figures, live = "decided", result["per_variant"], None
    else:
        figures = per_variant(campaign)
        live = abtest.decide(variant_results(figures, metric))
        status = "waiting" if decision_due_at(campaign) is not None else "testing"
    return {
        "status": status,
        "metric": metric,
        "test_fraction": settings.get("test_fraction"),
        "wait_hours": settings.get("wait_hours"),
        "on_no_winner": settings.get("on_no_winner"),
        "test_size": test_size,
        "held": counts["held"],
        "decision_due_at": (decision_due_at(campaign).isoformat() if status == "waiting" else None),
        "winner": result.get("winner"),
        "leader": result.get("best") if result else live.best,
        "p_value": result.get("p_value") if result else live.p_value,
        "z": result.get("z") if result else live.z,
        "significant": result.get("significant") if result else live.significant,
        "decided_at": result.get("decided_at"),
        "decided_by": result.get("decided_by"),
        "per_variant": figures,
    }
