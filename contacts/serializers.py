from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.tenancy import TenantRelatedField
from config.schema import JSON_OBJECT, SEGMENT_RULE
from config.validation import BoundedDateTimeField, BoundedJSONField
from contacts import hooks
from contacts.models import (
    CONSENT_CHANNELS,
    EVENT_NAME_HELP,
    EVENT_NAME_PATTERN,
    SEGMENT_RULES_MAX_KEYS,
    Contact,
    ContactList,
    ContactStatus,
    ImportJob,
    Segment,
    Suppression,
    SuppressionKind,
    SuppressionReason,
    Tag,
    validate_event_name,
)
from contacts.services import consent_clean

MAX_IDS_PER_CALL = 10_000


@extend_schema_field(JSON_OBJECT)
class JSONObjectField(BoundedJSONField):
    """A bounded JSON object (attributes, properties); other JSON values are refused by the serializer."""


@extend_schema_field(SEGMENT_RULE)
class SegmentRulesField(BoundedJSONField):
    """Segment rules (contacts.segments), bounded in size; compiled and checked by the service."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_keys", SEGMENT_RULES_MAX_KEYS)
        super().__init__(**kwargs)


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]


class TagNamesField(serializers.ListField):
    """The contact's tag names, read from the prefetched tag links."""

    child = serializers.CharField(max_length=100)

    def get_attribute(self, instance):
        return sorted(link.tag.name for link in instance.tag_links.all())


@extend_schema_field(
    {
        "type": "object",
        "properties": {channel: {"type": "boolean", "nullable": True} for channel in CONSENT_CHANNELS},
        "additionalProperties": False,
    }
)
class ConsentField(serializers.Field):
    """Consent per channel: `{email, sms, whatsapp}`, each true, false or null (no answer: the channel
    follows the contact's status, unless the organization requires explicit SMS/WhatsApp consent).
    Writing changes the channels given and keeps the others; null clears an answer."""

    def to_representation(self, value):
        return {channel: (value or {}).get(channel) for channel in CONSENT_CHANNELS}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object of channel: true or false.")
        return data


class ContactSerializer(serializers.ModelSerializer):
    """A contact. `tags` are names; writing them replaces the contact's tags. A contact needs an
    email address or a phone number (or both)."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    email = serializers.CharField(max_length=254, required=False, allow_null=True, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_null=True, allow_blank=True)
    tags = TagNamesField(required=False, max_length=200)
    status = serializers.ChoiceField(choices=ContactStatus.choices, required=False)
    attributes = JSONObjectField(required=False)
    consent = ConsentField(required=False)

    class Meta:
        model = Contact
        fields = [
            "id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "timezone",
            "locale",
            "attributes",
            "tags",
            "status",
            "consent",
            "consent_source",
            "consent_at",
            "last_contacted_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["consent_source", "consent_at", "last_contacted_at", "created_at", "updated_at"]

    def validate_attributes(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value

    def validate(self, attrs):
        if "consent" in attrs:
            _consent, problems = consent_clean(attrs["consent"])
            if problems:
                raise serializers.ValidationError(problems)
        return attrs


class ContactListSerializer(serializers.ModelSerializer):
    subscribers = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = ContactList
        fields = ["id", "name", "description", "subscribers", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class ContactIdsSerializer(serializers.Serializer):
    contact_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=False, max_length=MAX_IDS_PER_CALL)


class MembersChangedSerializer(serializers.Serializer):
    changed = serializers.IntegerField()


class SegmentSerializer(serializers.ModelSerializer):
    rules = SegmentRulesField()

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rules", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class SegmentRulesSerializer(serializers.Serializer):
    rules = SegmentRulesField()


class ContactSampleSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Contact
        fields = ["id", "email", "phone", "first_name", "last_name", "status"]


class SegmentPreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = ContactSampleSerializer(many=True)


class SuppressionSerializer(serializers.ModelSerializer):
    """Give exactly one of email, phone or domain."""

    email = serializers.CharField(write_only=True, required=False, max_length=254)
    phone = serializers.CharField(write_only=True, required=False, max_length=40)
    domain = serializers.CharField(write_only=True, required=False, max_length=253)
    reason = serializers.ChoiceField(choices=SuppressionReason.choices, default=SuppressionReason.MANUAL)

    class Meta:
        model = Suppression
        fields = ["id", "kind", "value", "email", "phone", "domain", "reason", "source", "created_at"]
        read_only_fields = ["id", "kind", "value", "source", "created_at"]

    def validate(self, attrs):
        given = [kind for kind in ("email", "phone", "domain") if attrs.get(kind)]
        if len(given) != 1:
            raise serializers.ValidationError({"non_field_errors": ["Give exactly one of email, phone or domain."]})
        attrs["kind"] = SuppressionKind(given[0])
        attrs["value"] = attrs.pop(given[0])
        return attrs


class EventSerializer(serializers.Serializer):
    contact = serializers.CharField(help_text="The contact's id or email address.", max_length=254)
    name = serializers.RegexField(EVENT_NAME_PATTERN, help_text=EVENT_NAME_HELP)
    properties = JSONObjectField(required=False, default=dict)
    occurred_at = BoundedDateTimeField(required=False)

    def validate_name(self, value):
        # The built-in names are what the system itself reports (opt-outs stop drip sequences).
        if value in hooks.BUILT_IN:
            raise serializers.ValidationError(f'"{value}" is a built-in event name; choose another.')
        return value

    def validate_properties(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value


class EventAcceptedSerializer(serializers.Serializer):
    id = serializers.CharField()
    contact = serializers.UUIDField()
    name = serializers.CharField()
    occurred_at = serializers.DateTimeField()


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV with a header row and an email or a phone column (or both).")
    tags = serializers.CharField(required=False, allow_blank=True, help_text="Tags for every contact, comma-separated.")
    list = TenantRelatedField(queryset=ContactList.objects.all(), required=False, allow_null=True)
    event = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        validators=[validate_event_name],
        help_text="A custom event recorded for every contact in the file (created or updated); sequences "
        f"triggered by it start for them. {EVENT_NAME_HELP}",
    )

    def validate_file(self, value):
        limit = settings.IMPORT_MAX_BYTES
        if value.size > limit:
            raise serializers.ValidationError(f"The file is larger than {limit // (1024 * 1024)} MB.")
        return value

    def validate_tags(self, value):
        names = [name.strip() for name in value.split(",") if name.strip()]
        for name in names:
            if len(name) > 100:
                raise serializers.ValidationError(f"Tag name {name[:20]!r}... is longer than 100 characters.")
        return names


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class ImportJobSerializer(serializers.ModelSerializer):
    errors = serializers.SerializerMethodField(help_text="The first 100 bad lines; all of them at errors/.")
    progress = serializers.SerializerMethodField(help_text="Percent of rows read (0-100).")
    tags = serializers.ListField(
        child=serializers.CharField(), source="tag_names", read_only=True, help_text="Tags given to every contact."
    )
    list = serializers.UUIDField(source="contact_list_id", read_only=True, allow_null=True)
    event = serializers.CharField(source="event_name", read_only=True, help_text="Empty when the import records none.")

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "status",
            "original_filename",
            "total_rows",
            "processed_rows",
            "progress",
            "created",
            "updated",
            "failed",
            "errors",
            "failure_reason",
            "encoding",
            "delimiter",
            "tags",
            "list",
            "event",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ImportErrorSerializer(many=True))
    def get_errors(self, job):
        return [{"line": e.line, "reason": e.reason} for e in job.row_errors.all()[:100]]

    def get_progress(self, job) -> int:
        if job.status == "completed":
            return 100
        if not job.total_rows:
            return 0
        return min(99, int(job.processed_rows * 100 / job.total_rows))
