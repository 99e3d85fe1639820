"""Tracking writes: event ingestion, unsubscribes, bounces, complaints and replies.

`event_ingest_batch` is the one way events reach the database, from the buffer's flush,
from the synchronous fallback, and from the unsubscribe page. It is set-based and
idempotent, in one transaction:

1. resolve the records' messages (by our id, or by the provider's message id) in two queries;
2. flag machine opens and clicks, anonymize IPs by organization setting, mark each message's
   first human open and click;
3. INSERT ... ON CONFLICT DO NOTHING RETURNING: only rows that were not there before count
   from here on, so a provider's retry or a replayed buffer entry changes nothing;
4. move message statuses forward with one UPDATE per target status (`tracking.rules` decides,
   `campaigns.services.messages_advance_status` writes);
5. hard bounces and complaints suppress the address and mark the contact; soft bounces and
   deferrals do once an address reached the organization's limit; provider unsubscribes
   unsubscribe the contact; planned and queued messages to such contacts are skipped;
6. tell `contacts.hooks` receivers (drips) about replies, unsubscribes, bounces and complaints.

`phone_inbound_receive` handles what contacts text back on SMS and WhatsApp (STOP, START, replies).

Tracking writes only its own tables: contacts, suppressions and messages change through the
contacts and campaigns services, each one set-based statement per batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import Campaign, Message, MessageStatus
from contacts import hooks
from contacts import services as contact_services
from contacts.models import Contact, ContactList, ContactStatus, Suppression, SuppressionKind, SuppressionReason
from contacts.normalize import InvalidValue, normalize_phone
from tracking import buffer, machine, rules
from tracking.models import EventType, MessageEvent, TrackingSettings
from tracking.records import EventRecord, anonymize_ip, digest_key
from tracking.selectors import provider_id_variants

logger = logging.getLogger(__name__)

M = MessageStatus
INSERT_CHUNK = 500  # rows per multi-row VALUES statement (SQLite)
INSERT_CHUNK_POSTGRESQL = 10_000
LOOKUP_CHUNK = 5000
SOFT_BOUNCE_WINDOW = timedelta(days=30)

# Names sent through contacts.hooks (drip sequences listen there).
HOOK_REPLIED = hooks.MESSAGE_REPLIED
HOOK_UNSUBSCRIBED = hooks.UNSUBSCRIBED
HOOK_BOUNCED = hooks.BOUNCED
HOOK_COMPLAINED = hooks.COMPLAINED

_MESSAGE_FIELDS = ("id", "organization_id", "campaign_id", "contact_id", "sent_at", "to_address", "provider_message_id")


class UnsubscribeScope:
    LIST = "list"
    ALL = "all"
    CHOICES = (LIST, ALL)


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0


# --- settings -------------------------------------------------------------------------------------


def tracking_settings_get(*, organization_id) -> TrackingSettings:
    """The organization's tracking settings, created with the defaults when it has none yet."""
    found, _ = TrackingSettings.objects.get_or_create(organization_id=organization_id)
    return found


def _settings_for(organization_ids: set) -> dict[Any, TrackingSettings]:
    found = {row.organization_id: row for row in TrackingSettings.objects.filter(organization_id__in=organization_ids)}
    missing = [pk for pk in organization_ids if pk not in found]
    if missing:
        TrackingSettings.objects.bulk_create(
            [TrackingSettings(organization_id=pk) for pk in missing], ignore_conflicts=True
        )
        found.update({row.organization_id: row for row in TrackingSettings.objects.filter(organization_id__in=missing)})
    return found


# --- ingestion ------------------------------------------------------------------------------------


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _resolve_messages(records: Sequence[EventRecord]) -> tuple[dict[int, dict], dict[str, dict]]:
    ids = sorted({r.message_id for r in records if r.message_id})
    wanted = {r.provider_message_id for r in records if not r.message_id and r.provider_message_id}
    by_id: dict[int, dict] = {}
    by_provider: dict[str, dict] = {}
    for chunk in _chunks(ids, LOOKUP_CHUNK):
        by_id.update({row["id"]: row for row in Message.objects.filter(id__in=chunk).values(*_MESSAGE_FIELDS)})

    def look_up(values: Sequence[str]) -> None:
        for chunk in _chunks(values, LOOKUP_CHUNK):
            for row in Message.objects.filter(provider_message_id__in=chunk).values(*_MESSAGE_FIELDS):
                by_id[row["id"]] = row
                for variant in provider_id_variants(row["provider_message_id"]):
                    by_provider[variant] = row

    # Usually the provider quotes the id as its backend returned it; the other spellings only for misses.
    look_up(sorted(wanted))
    missing = {variant for value in wanted if value not in by_provider for variant in provider_id_variants(value)}
    look_up(sorted(missing - set(by_provider)))
    return by_id, by_provider


def _is_machine(record: EventRecord, message: dict | None, window: int) -> bool:
    if record.type not in (EventType.OPENED, EventType.CLICKED):
        return False
    sent_at = message["sent_at"] if message else None
    if record.esp:
        # A provider's own tracking: its machine hints, a known scanner or proxy, or the timing.
        hinted = isinstance(record.payload, dict) and bool(record.payload.get("sg_machine_open"))
        named = bool(record.user_agent) and machine.names_machine(record.user_agent)
        return hinted or named or machine.within_window(record.occurred_at, sent_at, window)
    if record.type == EventType.OPENED:
        return machine.is_machine_open(
            user_agent=record.user_agent,
            ip=record.ip,
            occurred_at=record.occurred_at,
            sent_at=sent_at,
            window_seconds=window,
        )
    return machine.is_machine_click(
        user_agent=record.user_agent,
        method=record.method,
        occurred_at=record.occurred_at,
        sent_at=sent_at,
        window_seconds=window,
    )


def _build_rows(
    records: Sequence[EventRecord], by_id: dict[int, dict], by_provider: dict[str, dict]
) -> tuple[list[tuple[EventRecord, MessageEvent, dict | None]], int]:
    matched: list[tuple[EventRecord, dict | None]] = []
    for record in records:
        message = by_id.get(record.message_id) if record.message_id else None
        if message is None and not record.message_id and record.provider_message_id:
            message = next(
                (by_provider[v] for v in provider_id_variants(record.provider_message_id) if v in by_provider), None
            )
        matched.append((record, message))
    settings_by_org = _settings_for({m["organization_id"] for _, m in matched if m})
    defaults = TrackingSettings()
    now = timezone.now()
    rows: list[tuple[EventRecord, MessageEvent, dict | None]] = []
    seen: set[str] = set()
    first: dict[tuple[int, str], MessageEvent] = {}
    unmatched = 0
    for record, message in matched:
        if record.dedupe_key in seen:
            continue
        seen.add(record.dedupe_key)
        unmatched += message is None
        org_settings = settings_by_org.get(message["organization_id"]) if message else None
        window = org_settings.machine_window_seconds if org_settings else defaults.machine_window_seconds
        anonymize = org_settings.anonymize_ips if org_settings else defaults.anonymize_ips
        row = MessageEvent(
            type=record.type,
            occurred_at=record.occurred_at,
            received_at=now,
            organization_id=message["organization_id"] if message else None,
            campaign_id=message["campaign_id"] if message else None,
            message_id=message["id"] if message else record.message_id,
            contact_id=message["contact_id"] if message else None,
            machine=_is_machine(record, message, window),
            ip=anonymize_ip(record.ip) if anonymize else record.ip,
            user_agent=record.user_agent[:512],
            url=record.url[:2048],
            link_index=record.link_index,
            esp=record.esp[:32],
            provider_message_id=(record.provider_message_id or (message or {}).get("provider_message_id") or "")[:255],
            recipient=(record.recipient or (message or {}).get("to_address") or "")[:254],
            detail=record.detail[:1000],
            payload=record.payload,
            dedupe_key=record.dedupe_key[:64],
        )
        if message and not row.machine and row.type in (EventType.OPENED, EventType.CLICKED):
            key = (message["id"], row.type)
            if key not in first or row.occurred_at < first[key].occurred_at:
                first[key] = row
        rows.append((record, row, message))
    for row in first.values():
        row.is_unique = True
    return rows, unmatched


_EVENT_FIELDS = [field for field in MessageEvent._meta.concrete_fields if not field.primary_key]


def _insert_statement(values: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _EVENT_FIELDS)
    # Identifiers come from the model and every value is a bound parameter.
    return (
        f"INSERT INTO {quote(MessageEvent._meta.db_table)} ({columns}) {values} "
        f"ON CONFLICT DO NOTHING RETURNING {quote('dedupe_key')}"
    )


def _insert_postgresql(rows: Sequence[MessageEvent]) -> set[str]:
    """One statement for the whole batch: a column array per field, unnested (no per-row SQL text)."""
    import psycopg
    from psycopg.types.json import Jsonb

    # Binary parameters on a server-side binding cursor: no array literals to build and quote.
    arrays = ", ".join(f"%b::{field.db_type(connection)}[]" for field in _EVENT_FIELDS)
    params = []
    for field in _EVENT_FIELDS:
        values = [getattr(row, field.attname) for row in rows]
        if field.name == "payload":
            values = [None if value is None else Jsonb(value) for value in values]
        params.append(values)
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_insert_statement(f"SELECT * FROM unnest({arrays})"), params)  # noqa: S608
        return {key for (key,) in cursor.fetchall()}


def _insert_rows(rows: Sequence[MessageEvent]) -> set[str]:
    placeholders = "(" + ", ".join(["%s"] * len(_EVENT_FIELDS)) + ")"
    sql = _insert_statement("VALUES " + ", ".join([placeholders] * len(rows)))
    params = [
        field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows for field in _EVENT_FIELDS
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {key for (key,) in cursor.fetchall()}


def _insert(rows: Sequence[MessageEvent]) -> set[str]:
    """Insert what is new (by dedupe key, and at most one first open/click per message); the keys stored."""
    stored: set[str] = set()
    postgresql = connection.vendor == "postgresql"
    for chunk in _chunks(rows, INSERT_CHUNK_POSTGRESQL if postgresql else INSERT_CHUNK):
        stored |= _insert_postgresql(chunk) if postgresql else _insert_rows(chunk)
    return stored


def _insert_events(rows: Sequence[MessageEvent]) -> set[str]:
    stored = _insert(rows)
    # A first open/click that lost to an earlier one (another batch, or a racing ingestion)
    # is still an event: store it again as an ordinary one. A replayed one conflicts on its key.
    lost = [row for row in rows if row.is_unique and row.dedupe_key not in stored]
    for row in lost:
        row.is_unique = False
    if lost:
        stored |= _insert(lost)
    return stored


def _apply_statuses(new: Sequence[tuple[EventRecord, MessageEvent, dict | None]]) -> int:
    targets: dict[int, list] = defaultdict(list)
    for _record, row, message in new:
        if message is not None:
            targets[message["id"]].append(rules.event_target(row.type, machine=row.machine))
    groups: dict[int, list[int]] = defaultdict(list)
    for message_id, message_targets in targets.items():
        target = rules.combined_target(message_targets)
        if target is not None:
            groups[target].append(message_id)
    return sum(
        campaign_services.messages_advance_status(message_ids=ids, to=target, from_statuses=rules.movable_from(target))
        for target, ids in sorted(groups.items())
    )


def event_ingest_batch(*, records: Sequence[EventRecord], opt_out_applied: bool = False) -> IngestResult:
    """Store a batch of events and apply what they mean (statuses, suppressions); idempotent.

    `opt_out_applied`: the caller applied the batch's unsubscribes itself (an SMS or WhatsApp STOP
    opts out of one channel), so they do not unsubscribe the contacts from everything."""
    result = IngestResult(received=len(records))
    if not records:
        return result
    with transaction.atomic():
        by_id, by_provider = _resolve_messages(records)
        rows, result.unmatched = _build_rows(records, by_id, by_provider)
        stored = _insert_events([row for _record, row, _message in rows])
        new = [item for item in rows if item[1].dedupe_key in stored]
        result.stored = len(new)
        result.duplicates = result.received - result.stored
        if new:
            _apply_statuses(new)
            _apply_contact_effects(new, opt_out_applied=opt_out_applied)
    return result


# --- bounces, complaints, provider unsubscribes, replies ------------------------------------------


def _apply_contact_effects(
    new: Sequence[tuple[EventRecord, MessageEvent, dict | None]], *, opt_out_applied: bool = False
) -> None:
    hard: list[dict] = []
    complained: list[dict] = []
    unsubscribed: list[dict] = []
    soft: list[dict] = []
    replies: list[dict] = []
    for record, row, message in new:
        if message is None:
            continue  # an unknown message: the event is kept, but there is no contact to act on
        if row.type == EventType.BOUNCED:
            hard.append(message)
        elif row.type == EventType.COMPLAINED:
            complained.append(message)
        elif row.type == EventType.UNSUBSCRIBED and record.esp and not opt_out_applied:
            unsubscribed.append(message)  # our own page applies its scope itself (message_unsubscribe)
        elif row.type in (EventType.SOFT_BOUNCED, EventType.DEFERRED):
            soft.append(message)
        elif row.type == EventType.REPLIED:
            replies.append(message)
    worn_out = _soft_bounce_limit_reached(soft) if soft else []
    _suppress(hard, reason=SuppressionReason.HARD_BOUNCE)
    _suppress(worn_out, reason=SuppressionReason.SOFT_BOUNCE)
    _suppress(complained, reason=SuppressionReason.COMPLAINT)
    _set_contact_status(
        complained, to=ContactStatus.COMPLAINED, hook=HOOK_COMPLAINED, reason="The recipient complained."
    )
    _set_contact_status(
        [*hard, *worn_out], to=ContactStatus.BOUNCED, hook=HOOK_BOUNCED, reason="The recipient's address bounced."
    )
    _set_contact_status(
        unsubscribed, to=ContactStatus.UNSUBSCRIBED, hook=HOOK_UNSUBSCRIBED, reason="The recipient unsubscribed."
    )
    for message in replies:
        hooks.emit(
            organization_id=message["organization_id"],
            name=HOOK_REPLIED,
            contacts=Contact.objects.filter(pk=message["contact_id"]),
            properties={"message_id": str(message["id"]), "campaign_id": str(message["campaign_id"])},
        )


def _soft_bounce_limit_reached(messages: Sequence[dict]) -> list[dict]:
    """The messages whose contacts reached their organization's soft-bounce limit: distinct messages
    that soft-bounced or were deferred in the last 30 days and were not delivered since."""
    by_contact = {m["contact_id"]: m for m in messages}
    counts = (
        MessageEvent.objects.filter(
            type__in=[EventType.SOFT_BOUNCED, EventType.DEFERRED],
            occurred_at__gte=timezone.now() - SOFT_BOUNCE_WINDOW,
            message__contact_id__in=list(by_contact),
            message__status__in=[M.SENT, M.UNKNOWN],
        )
        .values("message__contact_id")
        .annotate(messages=Count("message_id", distinct=True))
    )
    limits = {
        pk: found.soft_bounce_limit for pk, found in _settings_for({m["organization_id"] for m in messages}).items()
    }
    return [
        by_contact[row["message__contact_id"]]
        for row in counts
        if row["messages"] >= limits[by_contact[row["message__contact_id"]]["organization_id"]]
    ]


def _suppress(messages: Iterable[dict], *, reason: str) -> int:
    """Put the messages' addresses on their organizations' suppression lists (bulk, idempotent)."""
    return contact_services.suppressions_add_bulk(
        addresses=[(message["organization_id"], message["to_address"]) for message in messages],
        reason=reason,
        source="tracking",
    )


def _set_contact_status(messages: Sequence[dict], *, to: str, hook: str, reason: str) -> None:
    by_org: dict[Any, set[int]] = defaultdict(set)
    for message in messages:
        by_org[message["organization_id"]].add(message["contact_id"])
    for organization_id, contact_ids in by_org.items():
        campaign_services.messages_skip_pending(contact_ids=sorted(contact_ids), reason=reason)
        contact_services.contacts_set_status(
            organization_id=organization_id, contact_ids=contact_ids, status=to, hook=hook
        )


# --- unsubscribe ---------------------------------------------------------------------------------


def campaign_lists(*, campaign: Campaign) -> list[ContactList]:
    """The lists a campaign was sent to (its audience's lists), the "this list only" choice."""
    ids = [str(pk) for pk in (campaign.audience or {}).get("lists") or []]
    if not ids:
        return []
    return list(ContactList.objects.filter(organization_id=campaign.organization_id, pk__in=ids).order_by("name"))


def message_unsubscribe(
    *, message: Message, scope: str = UnsubscribeScope.ALL, ip: str | None = None, user_agent: str = ""
) -> str:
    """Unsubscribe the message's contact from the campaign's lists ("list") or from everything ("all");
    idempotent. A campaign without lists has only "all". Returns the scope applied."""
    lists = campaign_lists(campaign=message.campaign) if scope == UnsubscribeScope.LIST else []
    if not lists:
        scope = UnsubscribeScope.ALL
    now = timezone.now()
    with transaction.atomic():
        if scope == UnsubscribeScope.LIST:
            contact_services.contact_unsubscribe_from_lists(
                contact_id=message.contact_id, list_ids=[contact_list.pk for contact_list in lists], at=now
            )
            detail = "lists: " + ", ".join(contact_list.name for contact_list in lists)
        else:
            detail = "everything"
            _set_contact_status(
                [{"organization_id": message.organization_id, "contact_id": message.contact_id}],
                to=ContactStatus.UNSUBSCRIBED,
                hook=HOOK_UNSUBSCRIBED,
                reason="The recipient unsubscribed.",
            )
        event_ingest_batch(
            records=[
                EventRecord(
                    type=EventType.UNSUBSCRIBED,
                    occurred_at=now,
                    dedupe_key=f"unsubscribe:{message.pk}:{scope}",
                    message_id=message.pk,
                    ip=ip,
                    user_agent=user_agent,
                    method="POST",
                    detail=detail[:1000],
                )
            ]
        )
    logger.info("unsubscribed", extra={"message_id": message.pk, "scope": scope})
    return scope


# --- SMS and WhatsApp inbound ---------------------------------------------------------------------

# Carriers' and Twilio's standard opt-out words; START opts back in. Matched on the whole text,
# trimmed and case-insensitive ("stop " is STOP, "stop sending me this" is a reply).
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_KEYWORDS = frozenset({"START"})


class InboundOutcome:
    STOPPED = "stopped"
    STARTED = "started"
    REPLIED = "replied"
    UNMATCHED = "unmatched"


def inbound_keyword(text: str) -> str:
    """The inbound text as a keyword candidate: trimmed, inner spaces collapsed, upper case."""
    return " ".join((text or "").split()).upper()


def phone_latest_message(*, phone: str, channel: str) -> dict | None:
    """The last message of `channel` we sent to this E.164 number, in any organization (None if none).

    An inbound SMS or WhatsApp message names only the sender's number, and one number may be a
    contact of several organizations: the message it last received from us decides whose contact
    is answering (and whose STOP it is)."""
    contact_ids = list(Contact.objects.filter(phone=phone).values_list("pk", flat=True)[:LOOKUP_CHUNK])
    if not contact_ids:
        return None
    return (
        Message.objects.filter(
            contact_id__in=contact_ids, to_address=phone, campaign__channel=channel, sent_at__isnull=False
        )
        .order_by("-sent_at", "-id")
        .values(*_MESSAGE_FIELDS)
        .first()
    )


def phone_inbound_receive(
    *,
    channel: str,
    esp: str,
    phone: str,
    text: str,
    provider_message_id: str,
    occurred_at,
    payload: Any = None,
) -> str:
    """An SMS or WhatsApp message from a contact, matched to the message that number last got from us.

    STOP (and STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) suppresses the number in that organization and
    records the contacts' no for that channel (consent.<channel> false; their pending messages on the
    channel skipped; their email status untouched); START lifts the opt-out suppression and records
    a yes for the channel; any other text is a `replied` event on that message (drips with
    stop-on-reply stop). Idempotent per provider message id.
    Returns an `InboundOutcome`."""
    try:
        number = normalize_phone(phone)
    except InvalidValue:
        logger.info("inbound message from an invalid number", extra={"esp": esp})
        return InboundOutcome.UNMATCHED
    message = phone_latest_message(phone=number, channel=channel)
    if message is None:
        logger.info("inbound message from a number we never messaged", extra={"esp": esp, "channel": channel})
        return InboundOutcome.UNMATCHED
    keyword = inbound_keyword(text)
    record = EventRecord(
        type=EventType.REPLIED,
        occurred_at=occurred_at,
        dedupe_key=digest_key("inbound", esp, provider_message_id or payload),
        message_id=message["id"],
        esp=esp,
        recipient=number,
        detail=(text or "")[:1000],
        payload=payload,
    )
    organization_id = message["organization_id"]
    if keyword in STOP_KEYWORDS:
        record.type = EventType.UNSUBSCRIBED
        with transaction.atomic():
            contact_services.suppressions_add_bulk(
                addresses=[(organization_id, number)],
                reason=SuppressionReason.UNSUBSCRIBED,
                source=f"{esp} {keyword}",
                kind=SuppressionKind.PHONE,
            )
            # The opt-out is from this channel: consent.<channel> becomes false and the channel's
            # pending messages are skipped; the contact's status (their email) stays as it is.
            contact_ids = contact_services.contacts_set_consent_by_phone(
                organization_id=organization_id, phone=number, channel=channel, consent=False
            )
            campaign_services.messages_skip_pending(
                contact_ids=contact_ids, channel=channel, reason=f"The recipient sent {keyword}."
            )
            event_ingest_batch(records=[record], opt_out_applied=True)
        logger.info("inbound opt-out", extra={"message_id": message["id"], "esp": esp, "channel": channel})
        return InboundOutcome.STOPPED
    if keyword in START_KEYWORDS:
        record.type = EventType.SUBSCRIBED
        with transaction.atomic():
            # Only the opt-out is lifted: a suppression an operator added, or a bounce, stays.
            for suppression in Suppression.objects.filter(
                organization_id=organization_id,
                kind=SuppressionKind.PHONE,
                value=number,
                reason=SuppressionReason.UNSUBSCRIBED,
            ):
                contact_services.suppression_remove(suppression=suppression)
            contact_services.contacts_set_consent_by_phone(
                organization_id=organization_id, phone=number, channel=channel, consent=True
            )
            event_ingest_batch(records=[record])
        logger.info("inbound opt-in", extra={"message_id": message["id"], "esp": esp, "channel": channel})
        return InboundOutcome.STARTED
    buffer.push([record])
    return InboundOutcome.REPLIED
