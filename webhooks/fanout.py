"""Fan-out: turn what happened in the other apps into deliveries for the endpoints subscribed to it.

Nothing here runs on the tracking or sending path. A beat task reads the other apps' rows behind
watermarks kept in `FanoutState`, the way analytics rolls up:

* append-only logs by id: tracking's `MessageEvent` (delivered, human opens and clicks, bounces,
  complaints, unsubscribes, replies) and the audit trail (campaign launches);
* rows that change by time: messages by `sent_at` and failed messages by when they were due
  (campaigns), campaigns by `completed_at`, enrollments by `exited_at`, callback requests by
  `created_at` and `closed_at`.

Ids are handed out and times stamped before their transactions commit, so each source is read
again a little behind its watermark; a delivery's unique (event_id, endpoint) makes the second
reading insert nothing. Contacts come through the contacts hook instead (`on_contact_event`),
after the writer's commit, set-based per emission.

Each event gets a deterministic id (a UUID derived from its source row), so every reading of the
same row names the same event. An endpoint gets the events of its types that happened from its
creation on; an organization without an enabled endpoint costs one query per run.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import AuditEvent
from callbacks.models import CallbackRequest, CallbackStatus
from campaigns.models import Campaign, CampaignStatus, Enrollment, EnrollmentStatus, Message, MessageStatus, Sequence
from contacts import hooks
from contacts.models import Contact
from tracking.models import EventType, MessageEvent
from webhooks import events as E
from webhooks.models import Delivery, Endpoint, FanoutState

logger = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("5b0c3a8e-6f1d-4c5e-9a7b-2d4e6f8a1c3e")
# Rows stamped this long before their transaction committed are still picked up.
COMMIT_MARGIN = timedelta(minutes=2)
# Ids below the watermark stored since shortly before the previous run may have committed after it.
ID_LOOKBACK = 5_000
# A message fails when its last retry fails, minutes (or, in a backlog, hours) after it was due.
FAILURE_LOOKBACK = timedelta(hours=6)
CHUNK = 2_000
INSERT_BATCH = 1_000

MESSAGE_EVENT_TYPES = {
    EventType.DELIVERED: E.MESSAGE_DELIVERED,
    EventType.OPENED: E.MESSAGE_OPENED,
    EventType.CLICKED: E.MESSAGE_CLICKED,
    EventType.BOUNCED: E.MESSAGE_BOUNCED,
    EventType.COMPLAINED: E.MESSAGE_COMPLAINED,
    EventType.UNSUBSCRIBED: E.MESSAGE_UNSUBSCRIBED,
    EventType.REPLIED: E.MESSAGE_REPLIED,
}
# Opens and clicks by privacy proxies and link scanners are not people: they are left out.
HUMAN_ONLY = (EventType.OPENED, EventType.CLICKED)
AUDITED = {"campaign.launched": E.CAMPAIGN_LAUNCHED}
SENT_STATUSES = (MessageStatus.SENT, MessageStatus.COMPLAINED)  # the range from sent up to complained


@dataclass
class Event:
    key: str  # names the source row; the event id derives from it
    type: str
    organization_id: uuid.UUID
    at: datetime  # the payload's timestamp
    data: dict[str, Any]
    # Endpoints created after this time do not get the event (default: `at`).
    since: datetime | None = None

    @property
    def id(self) -> str:
        return "evt_" + uuid.uuid5(NAMESPACE, self.key).hex

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "timestamp": iso(self.at),
            "organization": str(self.organization_id),
            "data": self.data,
        }


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _str(value) -> str | None:
    return None if value is None else str(value)


# --- subscriptions and inserting deliveries --------------------------------------------------------------


@dataclass
class Subscriptions:
    """The enabled endpoints, by organization and event type."""

    by_org_type: dict[tuple[uuid.UUID, str], list[Endpoint]] = field(default_factory=dict)

    @classmethod
    def load(cls, *, organization_id=None) -> Subscriptions:
        endpoints = Endpoint.objects.filter(enabled=True).only("id", "organization_id", "events", "created_at")
        if organization_id is not None:
            endpoints = endpoints.filter(organization_id=organization_id)
        found: dict[tuple[uuid.UUID, str], list[Endpoint]] = defaultdict(list)
        for endpoint in endpoints:
            for event_type in endpoint.events or []:
                found[(endpoint.organization_id, event_type)].append(endpoint)
        return cls(dict(found))

    def organizations(self, *types: str) -> set[uuid.UUID]:
        return {org for org, event_type in self.by_org_type if event_type in types}

    def endpoints(self, organization_id, event_type: str) -> list[Endpoint]:
        return self.by_org_type.get((organization_id, event_type), [])


def deliveries_create(events: Iterable[Event], subscriptions: Subscriptions, *, now: datetime | None = None) -> int:
    """Insert a pending delivery per (event, subscribed endpoint) not made yet; returns how many."""
    now = now or timezone.now()
    wanted: dict[tuple[str, uuid.UUID], Delivery] = {}
    for event in events:
        since = event.since or event.at
        for endpoint in subscriptions.endpoints(event.organization_id, event.type):
            if endpoint.created_at > since:
                continue
            wanted[(event.id, endpoint.pk)] = Delivery(
                endpoint_id=endpoint.pk,
                event_id=event.id,
                type=event.type,
                payload=event.payload(),
                next_attempt_at=now,
                created_at=now,
            )
    if not wanted:
        return 0
    event_ids = list({event_id for event_id, _ in wanted})
    existing = set()
    for start in range(0, len(event_ids), INSERT_BATCH):
        existing.update(
            Delivery.objects.filter(event_id__in=event_ids[start : start + INSERT_BATCH]).values_list(
                "event_id", "endpoint_id"
            )
        )
    new = [delivery for pair, delivery in wanted.items() if pair not in existing]
    # A concurrent run may insert the same rows: the unique constraint keeps one.
    Delivery.objects.bulk_create(new, batch_size=INSERT_BATCH, ignore_conflicts=True)
    return len(new)


# --- the contacts hook ----------------------------------------------------------------------------------

CONTACT_HOOKS = {hooks.CONTACT_CREATED: E.CONTACT_CREATED, hooks.UNSUBSCRIBED: E.CONTACT_UNSUBSCRIBED}
CONTACT_FIELDS = ("public_id", "email", "phone", "first_name", "last_name", "status", "created_at")


def on_contact_event(*, organization_id, name: str, contacts, properties: dict, occurred_at: datetime, **_kwargs):
    """contact.created / contact.unsubscribed for an emission, in one INSERT per chunk of contacts."""
    event_type = CONTACT_HOOKS.get(name)
    if event_type is None:
        return
    subscriptions = Subscriptions.load(organization_id=organization_id)
    if not subscriptions.endpoints(organization_id, event_type):
        return
    source = properties.get("source") or ""
    created = 0
    for chunk in _chunked(contacts.order_by().values(*CONTACT_FIELDS).iterator(chunk_size=CHUNK)):
        batch = []
        for row in chunk:
            key = f"{event_type}:{row['public_id']}"
            if event_type == E.CONTACT_UNSUBSCRIBED:
                key += f":{iso(occurred_at)}"  # a contact may opt out again after opting back in
            batch.append(
                Event(
                    key=key,
                    type=event_type,
                    organization_id=organization_id,
                    at=occurred_at,
                    data={
                        "contact": str(row["public_id"]),
                        "email": row["email"],
                        "phone": row["phone"],
                        "first_name": row["first_name"],
                        "last_name": row["last_name"],
                        "status": row["status"],
                        "created_at": iso(row["created_at"]),
                        "source": source,
                    },
                )
            )
        with transaction.atomic():
            created += deliveries_create(batch, subscriptions)
    if created:
        logger.info("webhook deliveries created", extra={"type": event_type, "deliveries": created})


def _chunked(rows: Iterator, size: int = CHUNK) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- reading the sources ---------------------------------------------------------------------------------


def _public_ids(contact_ids: Iterable[int]) -> dict[int, str]:
    ids = {pk for pk in contact_ids if pk is not None}
    if not ids:
        return {}
    return {pk: str(public_id) for pk, public_id in Contact.objects.filter(pk__in=ids).values_list("pk", "public_id")}


def _channels(campaign_ids: Iterable) -> dict:
    ids = {pk for pk in campaign_ids if pk is not None}
    return dict(Campaign.objects.filter(pk__in=ids).values_list("pk", "channel")) if ids else {}


def message_event_events(rows: list[dict]) -> list[Event]:
    contacts = _public_ids(row["contact_id"] for row in rows)
    channels = _channels(row["campaign_id"] for row in rows)
    found = []
    for row in rows:
        data = {
            "message": _str(row["message_id"]),
            "campaign": _str(row["campaign_id"]),
            "contact": contacts.get(row["contact_id"]),
            "channel": channels.get(row["campaign_id"]),
            "recipient": row["recipient"],
            "occurred_at": iso(row["occurred_at"]),
        }
        if row["type"] in HUMAN_ONLY:
            data["first"] = row["is_unique"]
        if row["type"] == EventType.CLICKED:
            data["url"] = row["url"]
        if row["detail"]:
            data["detail"] = row["detail"]
        if row["esp"]:
            data["provider"] = row["esp"]
        found.append(
            Event(
                key=f"message_event:{row['id']}",
                type=MESSAGE_EVENT_TYPES[row["type"]],
                organization_id=row["organization_id"],
                at=row["occurred_at"],
                # A provider's event may carry an earlier time than when we stored it.
                since=max(row["occurred_at"], row["received_at"]),
                data=data,
            )
        )
    return found


def campaign_data(campaign_ids: Iterable) -> dict:
    fields = ("id", "name", "kind", "channel", "status", "recipients", "starts_at", "launched_at", "completed_at")
    return {
        row["id"]: {
            "campaign": str(row["id"]),
            "name": row["name"],
            "kind": row["kind"],
            "channel": row["channel"],
            "status": row["status"],
            "recipients": row["recipients"],
            "starts_at": iso(row["starts_at"]),
            "launched_at": iso(row["launched_at"]),
            "completed_at": iso(row["completed_at"]),
        }
        for row in Campaign.objects.filter(pk__in=set(campaign_ids)).values(*fields)
    }


def audit_events(rows: list[dict]) -> list[Event]:
    campaign_ids = []
    for row in rows:
        try:
            campaign_ids.append(uuid.UUID(row["object_id"]))
        except ValueError:
            continue
    campaigns = campaign_data(campaign_ids)
    found = []
    for row in rows:
        data = campaigns.get(_uuid_or_none(row["object_id"]))
        data = data or {"campaign": row["object_id"], "name": row["object_repr"]}
        found.append(
            Event(
                key=f"audit:{row['id']}",
                type=AUDITED[row["action"]],
                organization_id=row["organization_id"],
                at=row["created_at"],
                data={**data, "by": row["actor_email"] or None},
            )
        )
    return found


def _uuid_or_none(value: str):
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _message_data(row: dict, contacts: dict, channels: dict) -> dict:
    return {
        "message": str(row["id"]),
        "campaign": str(row["campaign_id"]),
        "contact": contacts.get(row["contact_id"]),
        "channel": channels.get(row["campaign_id"]),
        "to": row["to_address"],
        "step": row["step"],
        "sent_at": iso(row["sent_at"]),
        "provider_message_id": row["provider_message_id"],
    }


def sent_events(rows: list[dict]) -> list[Event]:
    contacts = _public_ids(row["contact_id"] for row in rows)
    channels = _channels(row["campaign_id"] for row in rows)
    return [
        Event(
            key=f"message.sent:{row['id']}:{iso(row['sent_at'])}",
            type=E.MESSAGE_SENT,
            organization_id=row["organization_id"],
            at=row["sent_at"],
            data=_message_data(row, contacts, channels),
        )
        for row in rows
    ]


def failed_events(rows: list[dict], *, now: datetime) -> list[Event]:
    contacts = _public_ids(row["contact_id"] for row in rows)
    channels = _channels(row["campaign_id"] for row in rows)
    found = []
    for row in rows:
        due = row["scheduled_at"] or row["created_at"]
        data = _message_data(row, contacts, channels)
        data.update(error=row["last_error"][:500], attempts=row["attempts"])
        found.append(
            Event(
                key=f"message.failed:{row['id']}:{row['attempts']}:{iso(due)}",
                type=E.MESSAGE_FAILED,
                organization_id=row["organization_id"],
                at=now,  # failures carry no time of their own: the time we saw it
                since=due,
                data=data,
            )
        )
    return found


def completed_campaign_events(rows: list[dict]) -> list[Event]:
    campaigns = campaign_data(row["id"] for row in rows)
    return [
        Event(
            key=f"campaign.completed:{row['id']}:{iso(row['completed_at'])}",
            type=E.CAMPAIGN_COMPLETED,
            organization_id=row["organization_id"],
            at=row["completed_at"],
            data=campaigns.get(row["id"], {"campaign": str(row["id"])}),
        )
        for row in rows
    ]


def completed_enrollment_events(rows: list[dict]) -> list[Event]:
    contacts = _public_ids(row["contact_id"] for row in rows)
    names = dict(Sequence.objects.filter(pk__in={row["sequence_id"] for row in rows}).values_list("pk", "name"))
    return [
        Event(
            key=f"enrollment.completed:{row['id']}",
            type=E.ENROLLMENT_COMPLETED,
            organization_id=row["organization_id"],
            at=row["exited_at"],
            data={
                "enrollment": str(row["id"]),
                "sequence": str(row["sequence_id"]),
                "sequence_name": names.get(row["sequence_id"]),
                "contact": contacts.get(row["contact_id"]),
                "entry": row["entry"],
                "entered_at": iso(row["entered_at"]),
                "exited_at": iso(row["exited_at"]),
            },
        )
        for row in rows
    ]


def _callback_data(row: dict, contacts: dict) -> dict:
    return {
        "callback": str(row["id"]),
        "contact": contacts.get(row["contact_id"]),
        "campaign": _str(row["campaign_id"]),
        "source": row["source"],
        "phone": row["phone"],
        "reason": row["reason"],
        "priority": row["priority"],
        "priority_score": row["priority_score"],
        "status": row["status"],
        "sla_due_at": iso(row["sla_due_at"]),
        "assigned_to": _str(row["assigned_to_id"]),
        "created_at": iso(row["created_at"]),
        "closed_at": iso(row["closed_at"]),
        "resolution": row["resolution"],
    }


def callback_events(rows: list[dict], *, event_type: str) -> list[Event]:
    contacts = _public_ids(row["contact_id"] for row in rows)
    created = event_type == E.CALLBACK_CREATED
    return [
        Event(
            key=f"{event_type}:{row['id']}" + ("" if created else f":{iso(row['closed_at'])}"),
            type=event_type,
            organization_id=row["organization_id"],
            at=row["created_at"] if created else row["closed_at"],
            data=_callback_data(row, contacts),
        )
        for row in rows
    ]


MESSAGE_FIELDS = (
    "id",
    "organization_id",
    "campaign_id",
    "contact_id",
    "to_address",
    "step",
    "sent_at",
    "provider_message_id",
)
CALLBACK_FIELDS = (
    "id",
    "organization_id",
    "contact_id",
    "campaign_id",
    "source",
    "phone",
    "reason",
    "priority",
    "priority_score",
    "status",
    "sla_due_at",
    "assigned_to_id",
    "created_at",
    "closed_at",
    "resolution",
)


@dataclass(frozen=True)
class IdSource:
    """An append-only table read by id."""

    name: str
    types: tuple[str, ...]
    model: type
    stored: str  # the column stamped when the row was stored (for the lookback)
    rows: Callable[[set], Any]  # organizations -> queryset of the rows that make events
    fields: tuple[str, ...]
    build: Callable[[list[dict]], list[Event]]


@dataclass(frozen=True)
class TimeSource:
    """Rows that change, read by a time column."""

    name: str
    types: tuple[str, ...]
    column: str
    lookback: timedelta
    rows: Callable[[set, datetime], Any]  # (organizations, since) -> queryset
    fields: tuple[str, ...]
    build: Callable[..., list[Event]]


def _message_events(organizations: set):
    kept = [t for t in MESSAGE_EVENT_TYPES if t not in HUMAN_ONLY]
    return MessageEvent.objects.filter(organization_id__in=organizations).filter(
        Q(type__in=kept) | Q(type__in=HUMAN_ONLY, machine=False)
    )


ID_SOURCES = (
    IdSource(
        name="message_events",
        types=tuple(MESSAGE_EVENT_TYPES.values()),
        model=MessageEvent,
        stored="received_at",
        rows=_message_events,
        fields=(
            "id",
            "type",
            "organization_id",
            "campaign_id",
            "message_id",
            "contact_id",
            "recipient",
            "occurred_at",
            "received_at",
            "is_unique",
            "url",
            "detail",
            "esp",
        ),
        build=message_event_events,
    ),
    IdSource(
        name="audit",
        types=tuple(AUDITED.values()),
        model=AuditEvent,
        stored="created_at",
        rows=lambda orgs: AuditEvent.objects.filter(organization_id__in=orgs, action__in=list(AUDITED)),
        fields=("id", "organization_id", "action", "object_id", "object_repr", "actor_email", "created_at"),
        build=audit_events,
    ),
)


def _failed_messages(orgs: set, since: datetime):
    # Spelled out (not a COALESCE) so PostgreSQL reads the partial index of failed messages.
    return Message.objects.filter(organization_id__in=orgs, status=MessageStatus.FAILED).filter(
        Q(scheduled_at__gte=since) | Q(scheduled_at__isnull=True, created_at__gte=since)
    )


TIME_SOURCES = (
    TimeSource(
        name="messages_sent",
        types=(E.MESSAGE_SENT,),
        column="sent_at",
        lookback=COMMIT_MARGIN,
        rows=lambda orgs, since: Message.objects.filter(
            organization_id__in=orgs, sent_at__gte=since, status__gte=SENT_STATUSES[0], status__lte=SENT_STATUSES[1]
        ),
        fields=MESSAGE_FIELDS,
        build=sent_events,
    ),
    TimeSource(
        name="messages_failed",
        types=(E.MESSAGE_FAILED,),
        column="",  # read whole: failures are few, and their time is when they were due
        lookback=FAILURE_LOOKBACK,
        rows=_failed_messages,
        fields=(*MESSAGE_FIELDS, "scheduled_at", "created_at", "last_error", "attempts"),
        build=failed_events,
    ),
    TimeSource(
        name="campaigns_completed",
        types=(E.CAMPAIGN_COMPLETED,),
        column="completed_at",
        lookback=COMMIT_MARGIN,
        rows=lambda orgs, since: Campaign.objects.filter(
            organization_id__in=orgs, status=CampaignStatus.COMPLETED, completed_at__gte=since
        ),
        fields=("id", "organization_id", "completed_at"),
        build=completed_campaign_events,
    ),
    TimeSource(
        name="enrollments_completed",
        types=(E.ENROLLMENT_COMPLETED,),
        column="exited_at",
        lookback=COMMIT_MARGIN,
        rows=lambda orgs, since: Enrollment.objects.filter(
            organization_id__in=orgs, status=EnrollmentStatus.COMPLETED, exited_at__gte=since
        ),
        fields=("id", "organization_id", "sequence_id", "contact_id", "entry", "entered_at", "exited_at"),
        build=completed_enrollment_events,
    ),
    TimeSource(
        name="callbacks_created",
        types=(E.CALLBACK_CREATED,),
        column="created_at",
        lookback=COMMIT_MARGIN,
        rows=lambda orgs, since: CallbackRequest.objects.filter(organization_id__in=orgs, created_at__gte=since),
        fields=CALLBACK_FIELDS,
        build=lambda rows: callback_events(rows, event_type=E.CALLBACK_CREATED),
    ),
    TimeSource(
        name="callbacks_completed",
        types=(E.CALLBACK_COMPLETED,),
        column="closed_at",
        lookback=COMMIT_MARGIN,
        rows=lambda orgs, since: CallbackRequest.objects.filter(
            organization_id__in=orgs, status=CallbackStatus.COMPLETED, closed_at__gte=since
        ),
        fields=CALLBACK_FIELDS,
        build=lambda rows: callback_events(rows, event_type=E.CALLBACK_COMPLETED),
    ),
)
SOURCE_NAMES = tuple(source.name for source in (*ID_SOURCES, *TIME_SOURCES))


# --- one run ---------------------------------------------------------------------------------------------


def _state(name: str, *, now: datetime, top_id: int) -> FanoutState | None:
    """The source's watermark row, locked; None when another run holds it. A new source starts now:
    history before the first run is never fanned out."""
    FanoutState.objects.bulk_create(
        [FanoutState(source=name, last_id=top_id, last_at=now, updated_at=now)], ignore_conflicts=True
    )
    return FanoutState.objects.select_for_update(skip_locked=True).filter(source=name).first()


def _run_id_source(source: IdSource, subscriptions: Subscriptions, *, now: datetime, deadline: float) -> int:
    created = 0
    with transaction.atomic():
        top = source.model.objects.aggregate(top=Max("id"))["top"] or 0
        state = _state(source.name, now=now, top_id=top)
        if state is None:
            return 0
        orgs = subscriptions.organizations(*source.types)
        reached = top
        if orgs:
            since = state.last_id
            rows = source.rows(orgs).filter(id__lte=top)
            # Ids just below the watermark stored since the last run may have committed after it.
            late = rows.filter(
                id__gt=max(0, since - ID_LOOKBACK),
                id__lte=since,
                **{f"{source.stored}__gte": state.updated_at - COMMIT_MARGIN},
            )
            created += deliveries_create(source.build(list(late.values(*source.fields))), subscriptions, now=now)
            cursor = since
            while True:
                chunk = list(rows.filter(id__gt=cursor).order_by("id").values(*source.fields)[:CHUNK])
                if not chunk:
                    break
                created += deliveries_create(source.build(chunk), subscriptions, now=now)
                cursor = chunk[-1]["id"]
                if time.monotonic() > deadline:
                    reached = cursor
                    break
        state.last_id = max(state.last_id, reached)
        state.updated_at = now
        state.save(update_fields=["last_id", "updated_at"])
    return created


def _run_time_source(source: TimeSource, subscriptions: Subscriptions, *, now: datetime, deadline: float) -> int:
    created = 0
    with transaction.atomic():
        state = _state(source.name, now=now, top_id=0)
        if state is None:
            return 0
        orgs = subscriptions.organizations(*source.types)
        reached = now
        if orgs:
            since = (state.last_at or now) - source.lookback
            rows = source.rows(orgs, since)
            build = (lambda chunk: source.build(chunk, now=now)) if source.name == "messages_failed" else source.build
            if source.column:
                rows = rows.filter(**{f"{source.column}__lte": now})
                order = (source.column, "id")
            else:
                order = ("id",)
            last = None
            while True:
                page = rows
                if last is not None:
                    if source.column:
                        at, pk = last[source.column], last["id"]
                        page = page.filter(Q(**{f"{source.column}__gt": at}) | Q(**{source.column: at, "id__gt": pk}))
                    else:
                        page = page.filter(id__gt=last["id"])
                chunk = list(page.order_by(*order).values(*source.fields)[:CHUNK])
                if not chunk:
                    break
                created += deliveries_create(build(chunk), subscriptions, now=now)
                last = chunk[-1]
                if time.monotonic() > deadline and source.column:
                    reached = last[source.column]
                    break
        state.last_at = max(state.last_at or reached, reached) if source.column else now
        state.updated_at = now
        state.save(update_fields=["last_at", "updated_at"])
    return created


def fanout_run(*, now: datetime | None = None, max_seconds: float = 30.0) -> dict[str, int]:
    """Read every source behind its watermark and create the deliveries; returns them per source."""
    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds
    subscriptions = Subscriptions.load()
    result = {}
    for source in ID_SOURCES:
        result[source.name] = _run_id_source(source, subscriptions, now=now, deadline=deadline)
    for source in TIME_SOURCES:
        result[source.name] = _run_time_source(source, subscriptions, now=now, deadline=deadline)
    total = sum(result.values())
    if total:
        logger.info("webhook deliveries created", extra={"deliveries": total, **result})
    return result
