"""Audience writes: contacts, tags, lists, segments, suppressions, events, imports, erasure."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Func, JSONField, QuerySet, Value
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from config.errors import ConflictError
from contacts import hooks, selectors
from contacts.models import (
    CONSENT_CHANNELS,
    Contact,
    ContactEvent,
    ContactList,
    ContactStatus,
    ContactTag,
    ImportJob,
    ListMembership,
    Segment,
    Suppression,
    SuppressionKind,
    SuppressionReason,
    Tag,
)
from contacts.normalize import (
    InvalidValue,
    address_hash,
    email_domain,
    normalize_domain,
    normalize_email,
    normalize_phone,
    normalize_timezone,
)
from contacts.segments import SegmentRuleError, compile_rules

logger = logging.getLogger(__name__)

CONTACT_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "attributes",
    "status",
    "consent",
)


# --- tags ---------------------------------------------------------------------------------


def tag_create(*, organization: Organization, name: str) -> Tag:
    """Create a tag; names are unique per organization regardless of case."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["This field may not be blank."]})
    if Tag.objects.for_organization(organization).filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"A tag named {name!r} already exists."]})
    return Tag.objects.create(organization=organization, name=name)


def tag_rename(*, tag: Tag, name: str) -> Tag:
    """Rename a tag, keeping names unique per organization."""
    name = name.strip()
    clash = Tag.objects.for_organization(tag.organization_id).filter(name__iexact=name).exclude(pk=tag.pk)
    if clash.exists():
        raise ValidationError({"name": [f"A tag named {name!r} already exists."]})
    tag.name = name
    tag.save(update_fields=["name"])
    return tag


def tags_get_or_create(*, organization_id, names: Iterable[str]) -> list[Tag]:
    """The tags with these names (case-insensitive), created when missing."""
    wanted: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError({"tags": ["Tag names must be non-empty strings."]})
        if len(name.strip()) > 100:
            raise ValidationError({"tags": [f"Tag name {name[:20]!r}... is longer than 100 characters."]})
        wanted.setdefault(name.strip().lower(), name.strip())
    if not wanted:
        return []

    def by_key() -> dict[str, Tag]:
        tags = Tag.objects.filter(organization_id=organization_id).filter(In(Lower("name"), list(wanted)))
        return {t.name.lower(): t for t in tags}

    existing = by_key()
    missing = [Tag(organization_id=organization_id, name=name) for key, name in wanted.items() if key not in existing]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        existing = by_key()
    return [existing[key] for key in wanted]


def tags_add(*, contacts: QuerySet, tags: list[Tag]) -> int:
    """Give every contact in `contacts` the tags (set-based); returns the number of new links."""
    now = timezone.now()
    added = 0
    for tag in tags:
        ids = contacts.exclude(tag_links__tag=tag).values_list("pk", flat=True)
        for chunk in _chunks(ids.iterator(chunk_size=5000), 5000):
            ContactTag.objects.bulk_create(
                [ContactTag(contact_id=pk, tag=tag, created_at=now) for pk in chunk], ignore_conflicts=True
            )
        # Links written now carry this timestamp; links that already existed keep theirs.
        new = ContactTag.objects.filter(tag=tag, created_at=now).count()
        added += new
        if new:
            hooks.emit(
                organization_id=tag.organization_id,
                name=hooks.TAG_ADDED,
                contacts=Contact.objects.filter(tag_links__tag=tag, tag_links__created_at=now),
                properties={"tag": tag.name, "tag_id": str(tag.pk)},
                occurred_at=now,
            )
    return added


def tags_remove(*, contacts: QuerySet, tags: list[Tag]) -> int:
    """Take the tags off every contact in `contacts`."""
    deleted, _ = ContactTag.objects.filter(contact__in=contacts.values("pk"), tag__in=tags).delete()
    return deleted


def _chunks(iterable, size: int):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- contacts --------------------------------------------------------------------------------


def _clean_contact_data(data: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        try:
            if key == "email":
                cleaned["email"] = normalize_email(value) if value else None
                cleaned["email_domain"] = email_domain(cleaned["email"]) if cleaned["email"] else ""
            elif key == "phone":
                cleaned["phone"] = normalize_phone(value) if value else None
            elif key == "timezone":
                cleaned["timezone"] = normalize_timezone(value or "")
            elif key == "attributes":
                if not isinstance(value, dict):
                    raise InvalidValue("must be an object")
                cleaned["attributes"] = value
            elif key == "consent":
                consent, problems = consent_clean(value)
                errors.update(problems)
                if not problems:
                    cleaned["consent"] = consent
            elif key == "status":
                if value not in ContactStatus.values:
                    raise InvalidValue(f"{value!r} is not a valid status")
                cleaned["status"] = value
            else:
                cleaned[key] = (value or "").strip() if isinstance(value, str) or value is None else value
        except InvalidValue as exc:
            errors[key] = [str(exc)]
    if errors:
        raise ValidationError(errors)
    return cleaned


def consent_clean(value: Any) -> tuple[dict[str, bool | None], dict[str, list[str]]]:
    """Consent answers by channel ({"sms": true, ...}) and the problems, keyed `consent.<channel>`.

    None for a channel clears its answer (it follows the contact's status again)."""
    if not isinstance(value, dict):
        return {}, {"consent": ["Must be an object of channel: true or false."]}
    consent: dict[str, bool | None] = {}
    errors: dict[str, list[str]] = {}
    for key, answer in value.items():
        if key not in CONSENT_CHANNELS:
            errors[f"consent.{key}"] = [f"Unknown channel; use {', '.join(CONSENT_CHANNELS)}."]
        elif answer is not None and not isinstance(answer, bool):
            errors[f"consent.{key}"] = ["Must be true or false."]
        else:
            consent[key] = answer
    return consent, errors


def _consent_merged(current: dict, changes: dict[str, bool | None]) -> dict[str, bool]:
    merged = {**(current or {}), **changes}
    return {key: merged[key] for key in CONSENT_CHANNELS if merged.get(key) is not None}


def contact_normalize(*, data: dict[str, Any]) -> dict[str, Any]:
    """The contact fields in `data` as create and update store them (normalized email, E.164 phone,
    known time zone and status); raises ValidationError naming each bad field."""
    return _clean_contact_data({k: v for k, v in data.items() if k in CONTACT_FIELDS})


def contact_create(
    *,
    organization_id,
    data: dict[str, Any],
    tags: list[str] | None = None,
    consent_source: str = "api",
    consent_ip: str | None = None,
) -> Contact:
    """Create a contact (email or phone required); a duplicate email is a ValidationError."""
    cleaned = _clean_contact_data({k: v for k, v in data.items() if k in CONTACT_FIELDS})
    if not cleaned.get("email") and not cleaned.get("phone"):
        raise ValidationError({"email": ["An email address or a phone number is required."]})
    if "consent" in cleaned:
        cleaned["consent"] = _consent_merged({}, cleaned["consent"])
    now = timezone.now()
    contact = Contact(
        organization_id=organization_id,
        consent_source=consent_source,
        consent_at=now,
        consent_ip=consent_ip,
        created_at=now,
        updated_at=now,
        **cleaned,
    )
    with transaction.atomic():
        if contact.email and Contact.objects.filter(organization_id=organization_id, email=contact.email).exists():
            raise ValidationError({"email": ["A contact with this email address already exists."]})
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:
            raise ValidationError({"email": ["A contact with this email address already exists."]}) from None
        if contact.email:
            _suppress_if_erased(organization_id=organization_id, email=contact.email, source=consent_source)
        hooks.emit(
            organization_id=organization_id,
            name=hooks.CONTACT_CREATED,
            contacts=Contact.objects.filter(pk=contact.pk),
            properties={"source": consent_source},
            occurred_at=now,
        )
        if tags:
            tags_add(
                contacts=Contact.objects.filter(pk=contact.pk),
                tags=tags_get_or_create(organization_id=organization_id, names=tags),
            )
    return contact


def contact_update(*, contact: Contact, data: dict[str, Any], tags: list[str] | None = None) -> Contact:
    """Change a contact's fields; `tags` (when given) replaces its tags."""
    cleaned = _clean_contact_data({k: v for k, v in data.items() if k in CONTACT_FIELDS})
    new_email = cleaned.get("email")
    if new_email and new_email != contact.email:
        taken = Contact.objects.filter(organization_id=contact.organization_id, email=new_email).exclude(pk=contact.pk)
        if taken.exists():
            raise ValidationError({"email": ["A contact with this email address already exists."]})
    previous_email = contact.email
    if "consent" in cleaned:
        # Answers for the channels given change; the others stay as they were.
        cleaned["consent"] = _consent_merged(contact.consent, cleaned["consent"])
    with transaction.atomic():
        for key, value in cleaned.items():
            setattr(contact, key, value)
        if not contact.email and not contact.phone:
            raise ValidationError({"email": ["An email address or a phone number is required."]})
        contact.updated_at = timezone.now()
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:
            raise ValidationError({"email": ["A contact with this email address already exists."]}) from None
        if new_email and new_email != previous_email:
            _suppress_if_erased(organization_id=contact.organization_id, email=new_email, source="contact update")
        if tags is not None:
            wanted = tags_get_or_create(organization_id=contact.organization_id, names=tags)
            ContactTag.objects.filter(contact=contact).exclude(tag__in=wanted).delete()
            tags_add(contacts=Contact.objects.filter(pk=contact.pk), tags=wanted)
    return contact


def _contact_label(contact: Contact) -> str:
    # The trail outlives an erasure, so it names a contact by its id, never by its address.
    return f"contact {contact.public_id}"


def contact_erase(*, contact: Contact, by: User | None = None) -> Contact:
    """GDPR erasure: remove personal data, keep the row for aggregate counts, and keep a
    hashed suppression so the address is never mailed again."""
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        if contact.erased_at:
            return contact
        audit_record(
            organization=contact.organization_id,
            by=by,
            action="contact.erased",
            obj=contact,
            object_repr=_contact_label(contact),
            changes={"before": {"status": contact.status}, "after": {"status": ContactStatus.UNSUBSCRIBED}},
        )
        hashes = [
            Suppression(
                organization_id=contact.organization_id,
                kind=kind,
                value=address_hash(value),
                reason=SuppressionReason.ERASED,
                source="erasure",
            )
            for kind, value in (
                (SuppressionKind.EMAIL_HASH, contact.email),
                (SuppressionKind.PHONE_HASH, contact.phone),
            )
            if value
        ]
        Suppression.objects.bulk_create(hashes, ignore_conflicts=True)
        # Plain-text suppressions of this address are personal data too; the hash replaces them.
        Suppression.objects.filter(
            organization_id=contact.organization_id,
            kind__in=[SuppressionKind.EMAIL, SuppressionKind.PHONE],
            value__in=[v for v in (contact.email, contact.phone) if v],
        ).delete()
        ContactTag.objects.filter(contact=contact).delete()
        ListMembership.objects.filter(contact=contact).delete()
        ContactEvent.objects.filter(contact=contact).update(properties={})
        now = timezone.now()
        Contact.objects.filter(pk=contact.pk).update(
            email=None,
            email_domain="",
            phone=None,
            first_name="",
            last_name="",
            timezone="",
            locale="",
            attributes={},
            consent={},
            consent_source="",
            consent_ip=None,
            status=ContactStatus.UNSUBSCRIBED,
            erased_at=now,
            updated_at=now,
        )
        # Erasure is the strongest opt-out: receivers end whatever still runs for the contact.
        hooks.emit(
            organization_id=contact.organization_id,
            name=hooks.UNSUBSCRIBED,
            contacts=Contact.objects.filter(pk=contact.pk),
            properties={"source": "erasure"},
        )
    logger.info("contact erased", extra={"contact_id": contact.pk})
    contact.refresh_from_db()
    return contact


def contact_export(*, contact: Contact, by: User | None) -> dict[str, Any]:
    """Everything stored about one contact (a GDPR access request), recorded in the audit trail."""
    with transaction.atomic():
        data = selectors.contact_export_data(contact=contact)
        audit_record(
            organization=contact.organization_id,
            by=by,
            action="contact.exported",
            obj=contact,
            object_repr=_contact_label(contact),
        )
    return data


def contacts_export(*, contacts: QuerySet, by: User | None, file_format: str = "csv") -> QuerySet:
    """Record a bulk export of `contacts` (one audit event per organization, with the count) and
    return them in a stable order for streaming."""
    per_organization = contacts.order_by().values("organization_id").annotate(n=Count("pk"))
    with transaction.atomic():
        for row in per_organization:
            audit_record(
                organization=row["organization_id"],
                by=by,
                action="contacts.exported",
                object_type="contact",
                changes={"after": {"count": row["n"], "format": file_format}},
            )
    return contacts.order_by("pk")


def _suppress_if_erased(*, organization_id, email: str, source: str) -> None:
    erased = Suppression.objects.filter(
        organization_id=organization_id, kind=SuppressionKind.EMAIL_HASH, value=address_hash(email)
    ).exists()
    if erased:
        Suppression.objects.get_or_create(
            organization_id=organization_id,
            kind=SuppressionKind.EMAIL,
            value=email,
            defaults={"reason": SuppressionReason.ERASED, "source": source},
        )


# --- bulk changes from tracking and sending ----------------------------------------------------------

# Which statuses each new contact status may replace: a complaint outranks a bounce, both
# outrank an unsubscribe; nothing goes back to subscribed.
STATUS_REPLACES = {
    ContactStatus.COMPLAINED: (ContactStatus.SUBSCRIBED, ContactStatus.UNSUBSCRIBED, ContactStatus.BOUNCED),
    ContactStatus.BOUNCED: (ContactStatus.SUBSCRIBED, ContactStatus.UNSUBSCRIBED),
    ContactStatus.UNSUBSCRIBED: (ContactStatus.SUBSCRIBED,),
}


def contacts_set_status(
    *, organization_id, contact_ids: Iterable[int], status: str, hook: str, source: str = "tracking"
) -> list[int]:
    """Move the contacts to a bounced, complained or unsubscribed status where it outranks theirs
    (`STATUS_REPLACES`), in one UPDATE, and tell `hooks` receivers about those that changed under
    `hook`. Returns the ids that changed."""
    replaces = STATUS_REPLACES[status]
    ids = sorted(set(contact_ids))
    # No savepoint inside a caller's transaction (event ingestion): nothing here is undone alone.
    with transaction.atomic(savepoint=False):
        changing = list(Contact.objects.filter(pk__in=ids, status__in=replaces).values_list("pk", flat=True))
        if not changing:
            return []
        Contact.objects.filter(pk__in=changing, status__in=replaces).update(status=status, updated_at=timezone.now())
        hooks.emit(
            organization_id=organization_id,
            name=hook,
            contacts=Contact.objects.filter(pk__in=changing),
            properties={"source": source},
        )
    return changing


class _ConsentMerge(Func):
    """The stored consent with some answers replaced, in SQL (jsonb `||`; SQLite's json_patch)."""

    arity = 2
    function = "json_patch"
    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" || ", **extra)


def contacts_set_consent_by_phone(*, organization_id, phone: str, channel: str, consent: bool) -> list[int]:
    """Record a yes or no for `channel` on every contact of the organization with this E.164 number
    (an SMS or WhatsApp STOP/START speaks for the number), in one UPDATE. Returns the contacts' ids."""
    if channel not in CONSENT_CHANNELS:
        raise ValueError(f"Unknown channel {channel!r}")
    contacts = Contact.objects.active().filter(organization_id=organization_id, phone=phone)
    with transaction.atomic(savepoint=False):
        ids = list(contacts.values_list("pk", flat=True))
        if ids:
            answer = Value({channel: consent}, output_field=JSONField())
            Contact.objects.filter(pk__in=ids).update(
                consent=_ConsentMerge(F("consent"), answer), updated_at=timezone.now()
            )
    return ids


def suppressions_add_bulk(
    *, addresses: Iterable[tuple[Any, str]], reason: str, source: str, kind: str = SuppressionKind.EMAIL
) -> int:
    """Suppress (organization id, address) pairs in one INSERT, idempotent (an existing suppression
    is kept as it is). Addresses that do not normalize are skipped, and so are addresses erased on
    request: their hash suppresses them already, and storing them in plain text again would undo the
    erasure. Returns how many pairs were offered to the INSERT. Not audited: the system's own record
    of bounces and complaints is the event stream."""
    normalize = {SuppressionKind.EMAIL: normalize_email, SuppressionKind.PHONE: normalize_phone}[kind]
    hashed_kind = {SuppressionKind.EMAIL: SuppressionKind.EMAIL_HASH, SuppressionKind.PHONE: SuppressionKind.PHONE_HASH}
    values: dict[tuple[Any, str], str] = {}
    for organization_id, address in addresses:
        try:
            value = normalize(address)
        except InvalidValue:
            continue
        values[(organization_id, value)] = address_hash(value)
    if not values:
        return 0
    erased = set(
        Suppression.objects.filter(
            organization_id__in={organization_id for organization_id, _ in values},
            kind=hashed_kind[kind],
            value__in=set(values.values()),
        ).values_list("organization_id", "value")
    )
    rows = [
        Suppression(organization_id=organization_id, kind=kind, value=value, reason=reason, source=source)
        for (organization_id, value), hashed in values.items()
        if (organization_id, hashed) not in erased
    ]
    if rows:
        Suppression.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def contacts_mark_contacted(*, contact_ids: Iterable[int], at: datetime) -> int:
    """Record that the contacts were messaged at `at` (what "recently contacted" audiences exclude);
    one UPDATE."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return Contact.objects.filter(pk__in=ids).update(last_contacted_at=at)


def contacts_mark_contacted_sql(*, contact_ids_query: str) -> str:
    """`contacts_mark_contacted` as SQL for a statement that finds the ids itself (a CTE of sent
    messages): one round trip instead of two on the send path. Takes one parameter, the time."""
    return f"UPDATE contacts_contact SET last_contacted_at = %s WHERE id IN ({contact_ids_query})"  # noqa: S608


def contact_unsubscribe_from_lists(*, contact_id: int, list_ids: Iterable, at: datetime | None = None) -> int:
    """Unsubscribe one contact from these lists (the memberships stay, with unsubscribed_at)."""
    return ListMembership.objects.filter(
        contact_id=contact_id, contact_list_id__in=list(list_ids), unsubscribed_at__isnull=True
    ).update(unsubscribed_at=at or timezone.now())


# --- lists --------------------------------------------------------------------------------------


def list_create(*, organization: Organization, name: str, description: str = "") -> ContactList:
    """Create a contact list; names are unique per organization regardless of case."""
    name = name.strip()
    if ContactList.objects.filter(organization=organization, name__iexact=name).exists():
        raise ValidationError({"name": [f"A list named {name!r} already exists."]})
    return ContactList.objects.create(organization=organization, name=name, description=description)


def list_add_members(*, contact_list: ContactList, contacts: QuerySet) -> int:
    """Subscribe contacts to the list; people who unsubscribed from it stay unsubscribed.
    Returns how many were added."""
    now = timezone.now()
    ids = contacts.filter(organization_id=contact_list.organization_id).values_list("pk", flat=True)
    for chunk in _chunks(ids.iterator(chunk_size=5000), 5000):
        ListMembership.objects.bulk_create(
            [ListMembership(contact_list=contact_list, contact_id=pk, subscribed_at=now) for pk in chunk],
            ignore_conflicts=True,
        )
    return ListMembership.objects.filter(contact_list=contact_list, subscribed_at=now).count()


def list_remove_members(*, contact_list: ContactList, contacts: QuerySet) -> int:
    """Unsubscribe contacts from the list (the membership is kept, with unsubscribed_at)."""
    return ListMembership.objects.filter(
        contact_list=contact_list, contact__in=contacts.values("pk"), unsubscribed_at__isnull=True
    ).update(unsubscribed_at=timezone.now())


# --- segments -------------------------------------------------------------------------------------


def segment_validate_rules(rules: Any) -> None:
    try:
        compile_rules(rules)
    except SegmentRuleError as exc:
        raise ValidationError({"rules": [str(exc)]}) from None


def segment_save(*, segment: Segment) -> Segment:
    """Validate the rules and save the segment."""
    segment_validate_rules(segment.rules)
    segment.save()
    return segment


# --- suppressions ----------------------------------------------------------------------------------


def suppression_normalize(*, kind: str, value: str) -> str:
    """The stored form of a suppression's value; raises ValidationError for a bad value or a kind
    that cannot be added by hand (erasure hashes are written by contact_erase only)."""
    normalize = {
        SuppressionKind.EMAIL: normalize_email,
        SuppressionKind.PHONE: normalize_phone,
        SuppressionKind.DOMAIN: normalize_domain,
    }.get(kind)
    if normalize is None:
        raise ValidationError(f"Cannot add a suppression of kind {kind!r}.")
    try:
        return normalize(value)
    except InvalidValue as exc:
        raise ValidationError(str(exc)) from None


def _suppression_label(suppression: Suppression) -> str:
    # A suppressed address is personal data and the trail outlives an erasure: keep only enough
    # of it to recognize (a domain is kept whole).
    value = suppression.value
    if suppression.kind == SuppressionKind.EMAIL:
        local, _, domain = value.partition("@")
        value = f"{local[:1]}…@{domain}"
    elif suppression.kind == SuppressionKind.PHONE:
        value = f"…{value[-4:]}"
    elif suppression.kind != SuppressionKind.DOMAIN:
        value = value[:12] + "…"
    return f"{suppression.kind}: {value}"


def suppression_add(
    *,
    organization_id,
    kind: str,
    value: str,
    reason: str = SuppressionReason.MANUAL,
    source: str = "api",
    by: User | None = None,
) -> Suppression:
    """Suppress an address, phone number or domain (idempotent; only a new suppression is audited)."""
    if kind not in (SuppressionKind.EMAIL, SuppressionKind.PHONE, SuppressionKind.DOMAIN):
        raise ValidationError({"kind": [f"Cannot add a suppression of kind {kind!r}."]})
    try:
        normalized = suppression_normalize(kind=kind, value=value)
    except ValidationError as exc:
        raise ValidationError({kind: exc.messages}) from None
    if reason not in SuppressionReason.values:
        raise ValidationError({"reason": [f"{reason!r} is not a valid reason."]})
    with transaction.atomic():
        suppression, created = Suppression.objects.get_or_create(
            organization_id=organization_id, kind=kind, value=normalized, defaults={"reason": reason, "source": source}
        )
        if created:
            _audit_suppression(suppression, by=by, action="suppression.added", state="after")
    return suppression


def _audit_suppression(suppression: Suppression, *, by: User | None, action: str, state: str) -> None:
    audit_record(
        organization=suppression.organization_id,
        by=by,
        action=action,
        obj=suppression,
        object_repr=_suppression_label(suppression),
        changes={state: {"kind": suppression.kind, "reason": suppression.reason, "source": suppression.source}},
    )


def suppression_remove(*, suppression: Suppression, by: User | None = None) -> None:
    """Lift a suppression: the address, number or domain may be messaged again."""
    with transaction.atomic():
        suppression = Suppression.objects.select_for_update().filter(pk=suppression.pk).first()
        if suppression is None:
            return  # removed meanwhile
        if suppression.kind in (SuppressionKind.EMAIL_HASH, SuppressionKind.PHONE_HASH):
            # An erased person asked to be forgotten, and that includes never being messaged again.
            raise ConflictError("This suppression keeps an erased contact from being messaged; it cannot be lifted.")
        _audit_suppression(suppression, by=by, action="suppression.removed", state="before")
        suppression.delete()


# --- events ------------------------------------------------------------------------------------------


def event_record(
    *, organization_id, contact: Contact, name: str, properties: dict | None = None, occurred_at: datetime | None = None
) -> ContactEvent:
    """Store a custom event and tell the contact hook (drips listen there)."""
    occurred_at = occurred_at or timezone.now()
    with transaction.atomic():
        event = ContactEvent.objects.create(
            organization_id=organization_id,
            contact=contact,
            name=name,
            properties=properties or {},
            occurred_at=occurred_at,
        )
        hooks.emit(
            organization_id=organization_id,
            name=name,
            contacts=Contact.objects.filter(pk=contact.pk),
            properties=properties or {},
            occurred_at=occurred_at,
        )
    return event


# --- imports ------------------------------------------------------------------------------------------


def import_start(*, job: ImportJob, uploaded_file) -> ImportJob:
    """Store the upload with the (unsaved) job and queue the import."""
    from contacts.tasks import import_contacts_task

    job.original_filename = job.original_filename or (getattr(uploaded_file, "name", "") or "")[:255]
    job.tag_names = [t.strip() for t in job.tag_names if t.strip()]
    if job.contact_list_id and job.contact_list.organization_id != job.organization_id:
        raise ValidationError({"list": ["Unknown list."]})
    with transaction.atomic():
        job.file.save(f"{job.id}.csv", uploaded_file, save=False)
        job.save()
        transaction.on_commit(lambda: import_contacts_task.delay(job_id=str(job.pk)))
    return job
