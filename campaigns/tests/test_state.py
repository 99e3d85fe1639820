import pytest

from campaigns.models import Campaign, CampaignStatus
from campaigns.state import ALLOWED, IllegalTransition, can_transition, transition

S = CampaignStatus
LEGAL = {
    (S.DRAFT, S.SCHEDULED),
    (S.DRAFT, S.RUNNING),
    (S.DRAFT, S.CANCELLED),
    (S.SCHEDULED, S.RUNNING),
    (S.SCHEDULED, S.PAUSED),
    (S.SCHEDULED, S.CANCELLED),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.CANCELLED),
    (S.PAUSED, S.RUNNING),
    (S.PAUSED, S.SCHEDULED),
    (S.PAUSED, S.CANCELLED),
    (S.COMPLETED, S.RUNNING),  # reopened by a resend
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("to", list(S))
def test_every_transition(current, to):
    campaign = Campaign(status=current)
    if (current, to) in LEGAL:
        transition(campaign, to=to)
        assert campaign.status == to
    else:
        with pytest.raises(IllegalTransition):
            transition(campaign, to=to)
        assert campaign.status == current


def test_matrix_and_finals():
    assert {(a, b) for a, targets in ALLOWED.items() for b in targets} == LEGAL
    assert can_transition(S.COMPLETED, S.RUNNING)
    assert not can_transition(S.COMPLETED, S.PAUSED)
    assert not ALLOWED[S.CANCELLED]
