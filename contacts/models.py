"""Audience data. Every row belongs to one organization (accounts.TenantModel).

Contacts are the big table (a million per organization is normal): they get a
bigint key for cheap joins from messages, a UUID `public_id` the API shows as
`id`, and emails stored lower-cased so one plain unique index serves both
lookups and INSERT ... ON CONFLICT upserts.
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils.timezone import now

from accounts.models import TenantModel
from config.ids import uuid7
from config.validation import JSONValidator, check_json
from contacts import hooks

# A segment may hold segments.MAX_CONDITIONS conditions of up to four keys each, in groups.
SEGMENT_RULES_MAX_KEYS = 2000


class Tag(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="contacts_tag_org_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class ContactStatus(models.TextChoices):
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"


CONSENT_CHANNELS = ("email", "sms", "whatsapp")


def check_consent(value) -> None:
    """Consent is an object of channel -> boolean; a channel left out follows the contact's status."""
    if not isinstance(value, dict):
        raise ValidationError("Must be an object.", code="invalid")
    for key, answer in value.items():
        if key not in CONSENT_CHANNELS:
            raise ValidationError(f"{key!r} is not a channel (use {', '.join(CONSENT_CHANNELS)}).", code="invalid")
        if not isinstance(answer, bool):
            raise ValidationError(f"The answer for {key} must be true or false.", code="invalid")


class ContactQuerySet(models.QuerySet):
    def for_organization(self, organization):
        return self.filter(organization=organization)

    def active(self):
        """Contacts that were not erased (erased rows stay, anonymized, for aggregate counts)."""
        return self.filter(erased_at__isnull=True)


class Contact(TenantModel):
    id = models.BigAutoField(primary_key=True)
    # Indexed through (organization, email) below; a second index would only slow imports.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    public_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    # NULL, not "", for a missing address or number: NULLs never collide in the unique index.
    email = models.CharField(max_length=254, null=True, blank=True)  # noqa: DJ001
    email_domain = models.CharField(max_length=253, blank=True, default="")
    phone = models.CharField(max_length=20, null=True, blank=True, help_text="E.164, e.g. +31612345678")  # noqa: DJ001
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    timezone = models.CharField(max_length=64, blank=True, default="", help_text="Empty: the organization's.")
    locale = models.CharField(max_length=16, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True, validators=[check_json])
    status = models.CharField(max_length=16, choices=ContactStatus.choices, default=ContactStatus.SUBSCRIBED)
    # A database default as well, so set-based inserts that leave the column out get an empty object.
    consent = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        validators=[check_consent],
        help_text='Consent per channel, e.g. {"sms": true}; a channel left out follows status.',
    )
    consent_source = models.CharField(max_length=100, blank=True, default="")
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    last_contacted_at = models.DateTimeField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, through="ContactTag", related_name="contacts", blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ContactQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # NULL emails (phone-only contacts) do not collide.
            models.UniqueConstraint(fields=["organization", "email"], name="contacts_contact_org_email_unique"),
        ]
        # Few indexes on purpose: every one is paid for on each imported row. Segment and
        # audience queries scan the organization's contacts through (organization, email).
        # Phone lookups are for a number, so contacts without one stay out of that index.
        indexes = [
            models.Index(
                fields=["organization", "phone"],
                name="contacts_contact_org_phone",
                condition=models.Q(phone__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return self.email or self.phone or f"contact {self.public_id}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ContactTag(models.Model):
    """A contact carries a tag; `created_at` says since when (drip triggers use it)."""

    id = models.BigAutoField(primary_key=True)
    # The two indexes below serve both directions; no extra FK indexes. No database-level
    # FK checks either: imports write millions of links and Django cascades deletes itself.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="tag_links", db_index=False, db_constraint=False
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, related_name="contact_links", db_index=False, db_constraint=False
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "tag"], name="contacts_contacttag_unique")]
        indexes = [models.Index(fields=["tag", "contact"], name="contacts_contacttag_tag")]

    def __str__(self) -> str:
        return f"{self.contact} tagged {self.tag}"


class ContactList(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="contacts_list_org_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class ListMembership(models.Model):
    """A contact on a list. Unsubscribing from the list keeps the row with `unsubscribed_at` set."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by the unique constraint and the index below, in both directions.
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="list_memberships", db_index=False)
    subscribed_at = models.DateTimeField(default=now)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact_list", "contact"], name="contacts_listmembership_unique"),
        ]
        indexes = [models.Index(fields=["contact", "contact_list"], name="contacts_listmember_contact")]

    def __str__(self) -> str:
        return f"{self.contact} on {self.contact_list}"


class Segment(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    rules = models.JSONField(
        validators=[JSONValidator(max_keys=SEGMENT_RULES_MAX_KEYS)],
        help_text="Nested all/any/not conditions; see contacts/segments.py.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SuppressionKind(models.TextChoices):
    EMAIL = "email", "Email address"
    PHONE = "phone", "Phone number"
    DOMAIN = "domain", "Email domain"
    EMAIL_HASH = "email_hash", "Erased email address (SHA-256)"
    PHONE_HASH = "phone_hash", "Erased phone number (SHA-256)"


class SuppressionReason(models.TextChoices):
    MANUAL = "manual", "Added by hand"
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    SOFT_BOUNCE = "soft_bounce", "Repeated soft bounces"
    COMPLAINT = "complaint", "Spam complaint"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    ERASED = "erased", "Personal data erased"


class Suppression(TenantModel):
    """Never send to this address, number or domain, whatever the contact's status says."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=SuppressionKind.choices)
    value = models.CharField(max_length=254, help_text="Lower-cased address or domain, E.164 phone, or hash.")
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices, default=SuppressionReason.MANUAL)
    source = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "value"], name="contacts_suppression_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class ContactEvent(TenantModel):
    """Something a contact did (`purchase`, `webinar_attended`, ...); segments and drips read these."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events", db_index=False)
    name = models.CharField(max_length=100)
    properties = models.JSONField(default=dict, blank=True, validators=[check_json])
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["contact", "name", "occurred_at"], name="contacts_event_contact_name"),
            models.Index(fields=["organization", "name", "occurred_at"], name="contacts_event_org_name"),
        ]


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Importing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


# The names a custom event may have, wherever one is recorded (the events API, imports).
EVENT_NAME_PATTERN = r"^[A-Za-z0-9_.:\-]{1,100}\Z"
EVENT_NAME_HELP = "Letters, digits, _ . : - (max 100)."


def validate_event_name(value: str) -> None:
    """A custom event name: the allowed characters, and none of the names the system itself reports."""
    if not re.match(EVENT_NAME_PATTERN, value):
        raise ValidationError("Use only letters, digits, _ . : - (max 100).", code="invalid")
    if value in hooks.BUILT_IN:
        raise ValidationError(f'"{value}" is a built-in event name; choose another.', code="built_in")


def import_upload_to(instance: ImportJob, filename: str) -> str:
    return f"imports/{instance.organization_id}/{instance.id}.csv"


class ImportJob(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    file = models.FileField(upload_to=import_upload_to, max_length=300)
    original_filename = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    tag_names = models.JSONField(
        default=list, blank=True, validators=[check_json], help_text="Tags given to every imported contact."
    )
    contact_list = models.ForeignKey(ContactList, null=True, blank=True, on_delete=models.SET_NULL)
    event_name = models.CharField(
        "event",
        max_length=100,
        blank=True,
        default="",
        validators=[validate_event_name],
        help_text="A custom event recorded for every contact in the file (created or updated); sequences "
        f"triggered by this event start for them. {EVENT_NAME_HELP} Leave empty for none.",
    )
    encoding = models.CharField(max_length=20, blank=True, default="")
    delimiter = models.CharField(max_length=4, blank=True, default="")
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.original_filename or self.id} ({self.status})"


class ImportRowError(models.Model):
    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors", db_index=False)
    line = models.PositiveIntegerField()
    reason = models.CharField(max_length=500)

    class Meta:
        ordering = ["line", "id"]
        indexes = [models.Index(fields=["job", "line"], name="contacts_importerror_job_line")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"
