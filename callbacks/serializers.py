from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from callbacks.models import (
    MAX_HOLIDAYS,
    CallbackActivity,
    CallbackRequest,
    CallbackSettings,
    CallbackSource,
    CallbackStatus,
    CallbackUrgency,
)
from config.schema import JSON_OBJECT
from config.validation import BoundedDateField, check_date


def _local_isoformat(value: datetime | None, tz_name: str) -> str | None:
    """`value` in the contact's zone; a value that cannot be shifted (a bad zone name, a time at
    the edge of the years Python knows) is shown in UTC rather than failing the whole page."""
    if value is None:
        return None
    try:
        return value.astimezone(ZoneInfo(tz_name)).isoformat()
    except (OverflowError, ValueError, ZoneInfoNotFoundError):
        return value.astimezone(UTC).isoformat()


class PreferredTimeSerializer(serializers.Serializer):
    """A window in the contact's time zone. Times without an offset are read in it."""

    start = serializers.CharField(help_text='e.g. "2025-03-03T14:00" (contact\'s time) or with an offset.')
    end = serializers.CharField(help_text='e.g. "2025-03-03T16:00".')
    timezone = serializers.CharField(read_only=True, help_text="The contact's time zone.")


@extend_schema_field(PreferredTimeSerializer)
class PreferredTimeField(serializers.Field):
    """`{start, end}`; accepted as local (naive) or offset times, shown in the contact's zone."""

    default_error_messages = {
        "invalid": 'Expected an object {{"start": "2025-03-03T14:00", "end": "2025-03-03T16:00"}}.',
        "datetime": "{field}: not an ISO 8601 date and time.",
        "range": "{field}: {reason}",
    }

    def get_attribute(self, instance):
        return instance

    def to_representation(self, instance: CallbackRequest):
        if instance.preferred_start is None and instance.preferred_end is None:
            return None
        return {
            "start": _local_isoformat(instance.preferred_start, instance.timezone),
            "end": _local_isoformat(instance.preferred_end, instance.timezone),
            "timezone": instance.timezone,
        }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        parsed = {}
        for key in ("start", "end"):
            value = data.get(key)
            try:
                parsed[key] = parse_datetime(value) if isinstance(value, str) else None
            except ValueError:
                parsed[key] = None
            if parsed[key] is None:
                self.fail("datetime", field=key)
            try:
                check_date(parsed[key])
            except DjangoValidationError as exc:
                self.fail("range", field=key, reason=" ".join(exc.messages))
        return parsed


class CallbackSerializer(serializers.ModelSerializer):
    """A callback request. Score, priority and SLA are computed; status moves through the actions."""

    contact = serializers.UUIDField(source="contact.public_id", read_only=True, help_text="The contact's id.")
    contact_name = serializers.CharField(source="contact.full_name", read_only=True)
    campaign = serializers.UUIDField(source="campaign_id", read_only=True, allow_null=True)
    preferred_time = PreferredTimeField(read_only=True, allow_null=True)
    agent = serializers.UUIDField(source="assigned_to_id", read_only=True, allow_null=True, help_text="User id.")
    agent_email = serializers.EmailField(source="assigned_to.email", read_only=True, allow_null=True, default=None)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)

    class Meta:
        model = CallbackRequest
        fields = [
            "id",
            "contact",
            "contact_name",
            "campaign",
            "source",
            "phone",
            "reason",
            "urgency",
            "preferred_time",
            "priority_score",
            "priority",
            "sla_due_at",
            "overdue",
            "status",
            "attempts",
            "agent",
            "agent_email",
            "assigned_at",
            "first_contact_at",
            "closed_at",
            "resolution",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CallbackCreateSerializer(serializers.Serializer):
    contact = serializers.UUIDField(help_text="The contact's id.")
    campaign = serializers.UUIDField(required=False, allow_null=True, help_text="The campaign it came from.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    preferred_time = PreferredTimeField(required=False, allow_null=True, default=None)
    phone = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=40, help_text="E.164; default: the contact's."
    )
    urgency = serializers.ChoiceField(choices=CallbackUrgency.choices, default=CallbackUrgency.ANYTIME)
    source = serializers.ChoiceField(
        choices=[c for c in CallbackSource.choices if c[0] != CallbackSource.PUBLIC_FORM],
        default=CallbackSource.API,
    )


class AssignSerializer(serializers.Serializer):
    agent = serializers.UUIDField(help_text="User id of a member with the agent role.")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CallbackStatus.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    resolution = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, help_text="Required for completed."
    )


class CompleteSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=2000)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000)


@extend_schema_field(JSON_OBJECT)
class ActivityDataField(serializers.JSONField):
    pass


class ActivitySerializer(serializers.ModelSerializer):
    actor = serializers.UUIDField(source="actor_id", read_only=True, allow_null=True)
    actor_email = serializers.EmailField(source="actor.email", read_only=True, allow_null=True, default=None)
    agent = serializers.UUIDField(source="agent_id", read_only=True, allow_null=True)
    data = ActivityDataField(read_only=True)

    class Meta:
        model = CallbackActivity
        fields = [
            "id",
            "action",
            "actor",
            "actor_email",
            "from_status",
            "to_status",
            "agent",
            "note",
            "data",
            "created_at",
        ]
        read_only_fields = fields


MAX_ENGAGEMENT_EVENTS = 50


class CallbackSettingsSerializer(serializers.ModelSerializer):
    working_days = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6), allow_empty=False)
    holidays = serializers.ListField(child=BoundedDateField(), required=False, max_length=MAX_HOLIDAYS)
    engagement_events = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=MAX_ENGAGEMENT_EVENTS
    )

    class Meta:
        model = CallbackSettings
        fields = [
            "working_days",
            "opens_at",
            "closes_at",
            "holidays",
            "sla_urgent_hours",
            "sla_high_hours",
            "sla_normal_hours",
            "sla_low_hours",
            "value_attribute",
            "value_scale",
            "engagement_events",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "holidays" in values:
            values["holidays"] = [d.isoformat() for d in values["holidays"]]
        return values


class MetricsQuerySerializer(serializers.Serializer):
    date_from = BoundedDateField(required=False)
    date_to = BoundedDateField(required=False)
    agent = serializers.UUIDField(required=False)


class AgentDaySerializer(serializers.Serializer):
    agent = serializers.UUIDField()
    agent_email = serializers.EmailField()
    date = serializers.DateField()
    first_contacts = serializers.IntegerField()
    avg_time_to_first_contact = serializers.FloatField(allow_null=True, help_text="Seconds.")
    median_time_to_first_contact = serializers.FloatField(allow_null=True, help_text="Seconds.")
    handled = serializers.IntegerField(help_text="Requests completed that day.")
    avg_time_to_resolution = serializers.FloatField(allow_null=True, help_text="Seconds.")
