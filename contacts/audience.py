"""The audience resolver the campaign engine uses.

Audience = (on any of the lists) or (carries any of the tags) or (matches the segment),
minus contacts that cannot or may not be messaged, each counted under the first
reason that applies, in this order:

    no_email              email: no email address
    no_phone              sms, whatsapp: no phone number
    invalid_phone         sms, whatsapp: a phone number that is not E.164
    unsubscribed, bounced, complained   the contact's status (sms, whatsapp: only without an
                          answer for the channel in `consent`)
    no_consent            consent.<channel> is false; or, for sms and whatsapp when the organization
                          requires explicit consent, there is no answer for the channel
    suppressed            the address, number or email domain is on the suppression list
    excluded_tag          carries one of the exclude tags
    recently_contacted    messaged within the last `exclude_recent_days` days

`Audience.queryset` is a plain Contact queryset (one SQL query, fit for
INSERT ... SELECT); `Audience.excluded()` counts the exclusions in one GROUP BY.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Case, CharField, Count, Exists, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone

from accounts.models import Organization
from contacts.models import (
    Contact,
    ContactList,
    ContactStatus,
    ContactTag,
    ListMembership,
    Segment,
    Suppression,
    Tag,
)
from contacts.segments import SegmentRuleError, compile_rules

EXCLUSION_ORDER = [
    "no_email",
    "no_phone",
    "invalid_phone",
    ContactStatus.UNSUBSCRIBED.value,
    ContactStatus.BOUNCED.value,
    ContactStatus.COMPLAINED.value,
    "no_consent",
    "suppressed",
    "excluded_tag",
    "recently_contacted",
]


@dataclass(frozen=True)
class AudienceSpec:
    lists: list[uuid.UUID] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    segment: uuid.UUID | None = None
    exclude_tags: list[str] = field(default_factory=list)
    exclude_recent_days: int | None = None

    @classmethod
    def from_dict(cls, data: dict | None, *, prefix: str = "audience") -> AudienceSpec:
        """Parse the API's audience object; raises ValidationError naming the field."""
        data = data or {}
        if not isinstance(data, dict):
            raise ValidationError({prefix: ["Must be an object."]})
        unknown = set(data) - {"lists", "tags", "segment", "exclude_tags", "exclude_recent_days"}
        if unknown:
            raise ValidationError({prefix: [f"Unknown key(s): {', '.join(sorted(unknown))}."]})

        def id_list(key: str) -> list[uuid.UUID]:
            values = data.get(key) or []
            if not isinstance(values, list):
                raise ValidationError({f"{prefix}.{key}": ["Must be a list of ids."]})
            try:
                return [uuid.UUID(str(v)) for v in values]
            except ValueError:
                raise ValidationError({f"{prefix}.{key}": ["Every item must be an id."]}) from None

        def name_list(key: str) -> list[str]:
            values = data.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
                raise ValidationError({f"{prefix}.{key}": ["Must be a list of tag names."]})
            return [v.strip() for v in values]

        segment = data.get("segment")
        if segment is not None:
            try:
                segment = uuid.UUID(str(segment))
            except ValueError:
                raise ValidationError({f"{prefix}.segment": ["Must be a segment id."]}) from None
        recent = data.get("exclude_recent_days")
        if recent is not None and (isinstance(recent, bool) or not isinstance(recent, int) or not 0 < recent <= 3650):
            raise ValidationError({f"{prefix}.exclude_recent_days": ["Must be a whole number of days from 1 to 3650."]})
        return cls(
            lists=id_list("lists"),
            tags=name_list("tags"),
            segment=segment,
            exclude_tags=name_list("exclude_tags"),
            exclude_recent_days=recent,
        )

    @property
    def is_empty(self) -> bool:
        return not (self.lists or self.tags or self.segment)


@dataclass
class Audience:
    candidates: QuerySet  # everyone the lists, tags and segment select
    reason: Case  # why a candidate is excluded, NULL when they are not

    @property
    def queryset(self) -> QuerySet:
        """The contacts to message."""
        return self.candidates.alias(exclusion=self.reason).filter(exclusion__isnull=True)

    def excluded(self) -> dict[str, int]:
        """Excluded contacts by reason (one query)."""
        rows = (
            self.candidates.annotate(exclusion=self.reason)
            .filter(exclusion__isnull=False)
            .values("exclusion")
            .annotate(n=Count("id"))
            .order_by()
        )
        counts = {row["exclusion"]: row["n"] for row in rows}
        return {reason: counts[reason] for reason in EXCLUSION_ORDER if counts.get(reason)}


def audience_resolve(
    *,
    organization_id,
    spec: AudienceSpec,
    channel: str = "email",
    now: datetime | None = None,
    id_range: tuple[int, int] | None = None,
) -> Audience:
    """Resolve an audience for `channel`; raises ValidationError for lists or segments not in the organization.

    `id_range` (low, high) limits it to contacts with low <= id < high, inside the EXISTS checks too,
    so a chunked expansion reads only its chunk of the link tables."""
    now = now or timezone.now()
    contacts = Contact.objects.active().filter(organization_id=organization_id)
    links = {}
    if id_range is not None:
        contacts = contacts.filter(id__gte=id_range[0], id__lt=id_range[1])
        links = {"contact_id__gte": id_range[0], "contact_id__lt": id_range[1]}
    selected = Q(pk__in=[])
    if spec.lists:
        found = set(
            ContactList.objects.filter(organization_id=organization_id, pk__in=spec.lists).values_list("pk", flat=True)
        )
        missing = [str(pk) for pk in spec.lists if pk not in found]
        if missing:
            raise ValidationError({"audience.lists": [f"Unknown list id(s): {', '.join(missing)}."]})
        selected |= Q(
            Exists(
                ListMembership.objects.filter(
                    contact_id=OuterRef("pk"), contact_list_id__in=spec.lists, unsubscribed_at__isnull=True, **links
                )
            )
        )
    if spec.tags:
        selected |= Q(Exists(_tag_links(organization_id, spec.tags, links)))
    if spec.segment:
        segment = Segment.objects.filter(organization_id=organization_id, pk=spec.segment).first()
        if segment is None:
            raise ValidationError({"audience.segment": ["Unknown segment id."]})
        try:
            selected |= compile_rules(segment.rules, now=now)
        except SegmentRuleError as exc:
            raise ValidationError({"audience.segment": [f"The segment's rules are invalid: {exc}"]}) from None
    candidates = contacts.filter(selected).order_by()
    return Audience(candidates=candidates, reason=_exclusion_reason(organization_id, spec, channel, now, links))


def contacts_reachable(*, organization_id, contacts: QuerySet | list, channel: str = "email", now=None) -> Audience:
    """The same exclusions as an audience (no address, status, suppression) over a given set of
    contacts (a queryset, or a list of ids: a primary-key lookup whatever the organization's size):
    `.queryset` are those who may be messaged on `channel`, `.excluded()` why the others not.
    Drip sequences use it at enrollment and before each step."""
    ids = contacts if isinstance(contacts, list) else contacts.values("pk")
    candidates = Contact.objects.active().filter(organization_id=organization_id, pk__in=ids).order_by()
    reason = _exclusion_reason(organization_id, AudienceSpec(), channel, now or timezone.now(), {})
    return Audience(candidates=candidates, reason=reason)


def _tag_links(organization_id, names: list[str], links: dict) -> QuerySet:
    # Tag ids are looked up once, so the per-contact check is a probe of the (contact, tag) index.
    tag_ids = list(
        Tag.objects.filter(organization_id=organization_id)
        .filter(In(Lower("name"), [n.lower() for n in names]))
        .values_list("id", flat=True)
    )
    return ContactTag.objects.filter(contact_id=OuterRef("pk"), tag_id__in=tag_ids, **links)


# What a phone number must look like to be sent to: E.164 (normalize_phone stores nothing else, but
# rows written before that rule, or by hand in the database, may hold anything).
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"


def _consent_refused(channel: str) -> Q:
    """The contact said no to `channel` (consent.<channel> is false)."""
    return Q(**{f"consent__{channel}": False})


def _consent_missing(channel: str) -> Q:
    """The contact gave no answer for `channel`."""
    return ~Q(consent__has_key=channel)


def _exclusion_reason(organization_id, spec: AudienceSpec, channel: str, now: datetime, links: dict) -> Case:
    suppressions = Suppression.objects.filter(organization_id=organization_id)
    statuses = (ContactStatus.UNSUBSCRIBED, ContactStatus.BOUNCED, ContactStatus.COMPLAINED)
    if channel == "email":
        # The status is the email address's own state (an unsubscribe link, a bounce, a complaint),
        # and consent.email false excludes as well.
        whens = [When(Q(email__isnull=True) | Q(email=""), then=Value("no_email"))]
        whens += [When(status=status, then=Value(status)) for status in statuses]
        whens.append(When(_consent_refused("email"), then=Value("no_consent")))
        suppressed = Exists(suppressions.filter(kind="email", value=OuterRef("email"))) | Exists(
            suppressions.filter(kind="domain", value=OuterRef("email_domain"))
        )
    else:
        # SMS and WhatsApp: an answer for the channel decides; without one the contact follows their
        # status, unless the organization requires explicit consent (read in the same statement).
        explicit = Exists(Organization.objects.filter(pk=organization_id, require_explicit_consent=True))
        missing = _consent_missing(channel)
        whens = [
            When(Q(phone__isnull=True) | Q(phone=""), then=Value("no_phone")),
            When(~Q(phone__regex=E164_PATTERN), then=Value("invalid_phone")),
            When(_consent_refused(channel), then=Value("no_consent")),
            When(missing & Q(explicit), then=Value("no_consent")),
        ]
        whens += [When(missing & Q(status=status), then=Value(status)) for status in statuses]
        suppressed = Exists(suppressions.filter(kind="phone", value=OuterRef("phone")))
    whens.append(When(suppressed, then=Value("suppressed")))
    if spec.exclude_tags:
        whens.append(When(Exists(_tag_links(organization_id, spec.exclude_tags, links)), then=Value("excluded_tag")))
    if spec.exclude_recent_days:
        since = now - timedelta(days=spec.exclude_recent_days)
        whens.append(When(last_contacted_at__gte=since, then=Value("recently_contacted")))
    return Case(*whens, default=None, output_field=CharField())
