"""The campaign state machine: which status may follow which.

    draft -> scheduled -> running -> completed
                  \\          \\-> paused -> running (resume)
                   \\-> running (start time reached)
    completed -> running (an operator resends a failed or unknown message)
    draft, scheduled, running, paused -> cancelled

Every transition goes through `transition()`; anything else raises IllegalTransition
(HTTP 409). A completed campaign reopens only for a resend: dispatch serves running
campaigns alone, so the resent message goes out, and the campaign completes again when
nothing is left pending. Launch takes only drafts and resume only paused campaigns
(`campaigns.services`), so neither can reopen a completed one. Cancelled is final.
"""

from __future__ import annotations

from campaigns.models import Campaign, CampaignStatus
from config.errors import ConflictError

S = CampaignStatus

ALLOWED: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.RUNNING, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.RUNNING, S.PAUSED, S.CANCELLED}),
    S.RUNNING: frozenset({S.PAUSED, S.COMPLETED, S.CANCELLED}),
    S.PAUSED: frozenset({S.RUNNING, S.SCHEDULED, S.CANCELLED}),
    S.COMPLETED: frozenset({S.RUNNING}),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(ConflictError):
    def __init__(self, current: str, to: str):
        super().__init__(f"A {current} campaign cannot become {to}.")
        self.current = current
        self.to = to


def can_transition(current: str, to: str) -> bool:
    return to in ALLOWED.get(current, frozenset())


def transition(campaign: Campaign, *, to: str) -> None:
    """Move the campaign to `to` in memory; the caller saves it in its transaction."""
    if not can_transition(campaign.status, to):
        raise IllegalTransition(campaign.status, to)
    campaign.status = to
