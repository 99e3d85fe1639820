"""Which message status an event leads to. Pure functions, no database.

Status only moves forward:

* only a message that left us can move: sent, delivered, opened, clicked, and unknown
  (an event proves an `unknown` message did go out); planned to sending, failed,
  bounced, complained, cancelled and skipped never change;
* delivered, opened and clicked move up to the event's status, never down: a late
  `delivered` after `opened` changes nothing, an `opened` after `clicked` neither;
* bounced and complained are terminal, from any status that can move;
* a provider's `rejected` / `failed` marks a message failed only while nothing better
  is known (sent or unknown), never after it was delivered;
* what a machine did (a privacy proxy fetching the pixel, a scanner following links)
  proves delivery but is not an open or a click; so do replies and unsubscribes.

`movable_from(target)` is the same rule seen from the database: the statuses that an
UPDATE ... SET status = target WHERE status IN (...) may change. The service builds its
set-based UPDATEs from it, and a test checks SQL and function agree for every pair.
"""

from __future__ import annotations

from collections.abc import Iterable

from campaigns.models import MessageStatus
from tracking.models import EventType

M = MessageStatus

# Statuses an event can still change.
OPEN_TO_EVENTS = frozenset({M.UNKNOWN, M.SENT, M.DELIVERED, M.OPENED, M.CLICKED})
# Positive evidence beats a provider's failure report received in the same batch.
_EVIDENCE = (M.DELIVERED, M.OPENED, M.CLICKED, M.BOUNCED, M.COMPLAINED)

_TARGETS: dict[str, MessageStatus] = {
    EventType.DELIVERED: M.DELIVERED,
    EventType.OPENED: M.OPENED,
    EventType.CLICKED: M.CLICKED,
    EventType.BOUNCED: M.BOUNCED,
    EventType.COMPLAINED: M.COMPLAINED,
    EventType.REJECTED: M.FAILED,
    EventType.FAILED: M.FAILED,
    # A person (or their mail client) acted on the message: it was delivered.
    EventType.REPLIED: M.DELIVERED,
    EventType.UNSUBSCRIBED: M.DELIVERED,
    EventType.AUTORESPONDED: M.DELIVERED,
}


def event_target(event_type: str, *, machine: bool = False) -> MessageStatus | None:
    """The status an event points to, or None when it says nothing about the message's status."""
    if machine and event_type in (EventType.OPENED, EventType.CLICKED):
        return M.DELIVERED
    return _TARGETS.get(event_type)


def next_status(current: int, target: int | None) -> int:
    """The message's status after an event pointing to `target`."""
    if target is None or current not in OPEN_TO_EVENTS:
        return current
    if target == M.FAILED:
        return M.FAILED if current in (M.SENT, M.UNKNOWN) else current
    return max(current, target)


def movable_from(target: int) -> frozenset[int]:
    """The statuses that `next_status` changes for this target (each one becomes `target`)."""
    return frozenset(status for status in M.values if next_status(status, target) != status)


def combined_target(targets: Iterable[int | None]) -> int | None:
    """One target for several events of one message in a batch: the highest, where a failure
    report counts only when nothing in the batch shows the message arrived."""
    known = [target for target in targets if target is not None]
    if not known:
        return None
    evidence = [target for target in known if target in _EVIDENCE]
    return max(evidence) if evidence else max(known)
