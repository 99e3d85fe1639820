"""The drip sequence API's shapes.

Reading, the nested objects (trigger, settings, steps, delays, conditions) are typed serializers.
Writing, they are passed on as given to `campaigns.sequences`, which validates them and names a
failing field by its path ("steps.1.delay.value", "trigger.type"); the typed serializers document
the request shape in the schema."""

from __future__ import annotations

from django.conf import settings as django_settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import (
    MAX_STEPS,
    Channel,
    DelayUnit,
    Enrollment,
    EnrollmentStatus,
    Sequence,
    SequenceStatus,
    StopReason,
    TriggerType,
)
from campaigns.sequences import CONDITION_TYPES, DEFAULT_SETTINGS, ENROLL_MAX_IDS, OTHERWISE
from config.schema import SEGMENT_RULE
from config.validation import BoundedJSONField
from contacts.models import SEGMENT_RULES_MAX_KEYS

# --- nested objects ----------------------------------------------------------------------------------------


class SequenceTriggerSerializer(serializers.Serializer):
    schema_closed = True  # unknown keys are refused

    type = serializers.ChoiceField(choices=TriggerType.choices)
    value = serializers.CharField(
        allow_null=True,
        allow_blank=True,
        required=False,
        max_length=200,
        help_text="The tag name (tag_added) or the event name (custom_event); null for the other types.",
    )


class SequenceSettingsSerializer(serializers.Serializer):
    schema_closed = True  # unknown keys are refused

    stop_on_reply = serializers.BooleanField(
        required=False, help_text="A reply stops the contact's enrollment (default true)."
    )
    respect_business_hours = serializers.BooleanField(
        required=False, help_text="Steps go out within the organization's sending-policy window (default false)."
    )
    max_new_per_day = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=10_000_000,
        help_text="New enrollments started per day; the others wait in the order they came (null = no limit).",
    )
    allow_reentry = serializers.BooleanField(
        required=False, help_text="A contact who left the sequence may enter it again (default false)."
    )


class StepDelaySerializer(serializers.Serializer):
    schema_closed = True  # unknown keys are refused

    unit = serializers.ChoiceField(choices=DelayUnit.choices)
    value = serializers.IntegerField(
        min_value=0, help_text="After the previous step (the first step: after enrollment); 0 only on the first."
    )


@extend_schema_field(SEGMENT_RULE)
class SegmentRulesSchemaField(serializers.JSONField):
    """Segment rules in a step's condition (documents the shape; the service validates it)."""


class StepConditionSerializer(serializers.Serializer):
    """Either `type` (about the previous step's message) or `rules` (segment rules on the contact)."""

    schema_closed = True  # unknown keys are refused

    type = serializers.ChoiceField(choices=[(value, value) for value in CONDITION_TYPES], required=False)
    rules = SegmentRulesSchemaField(
        required=False, help_text="Segment rules, as in /segments/, the contact must match."
    )
    otherwise = serializers.ChoiceField(
        choices=[(value, value) for value in OTHERWISE],
        required=False,
        help_text='When the condition does not hold: "skip" the step (default) or "exit" the sequence.',
    )


class SequenceStepSerializer(serializers.Serializer):
    schema_closed = True  # unknown keys are refused

    order = serializers.IntegerField(
        min_value=1, max_value=MAX_STEPS, required=False, help_text="1, 2, 3 ... without gaps."
    )
    delay = StepDelaySerializer(required=False)
    template = serializers.UUIDField(help_text="A template of this organization for the sequence's channel.")
    condition = StepConditionSerializer(required=False, allow_null=True)


# --- sequences ---------------------------------------------------------------------------------------------


class EnrollmentCountsSerializer(serializers.Serializer):
    active = serializers.IntegerField()
    completed = serializers.IntegerField()
    stopped = serializers.IntegerField()
    waiting = serializers.IntegerField(help_text="Active, waiting for admission under max_new_per_day.")


def enrollment_counts_of(sequence: Sequence, context: dict) -> dict[str, int]:
    """The counts a list view computed for its page in one query, else the sequence's own."""
    from campaigns import sequences

    counts = context.get("enrollment_counts")
    if counts is not None:
        return counts.get(sequence.pk, {"active": 0, "completed": 0, "stopped": 0, "waiting": 0})
    return sequences.enrollment_counts(sequence=sequence)


class SequenceSerializer(serializers.ModelSerializer):
    trigger = serializers.SerializerMethodField()
    settings = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=SequenceStatus.choices, read_only=True)
    campaign = serializers.UUIDField(
        source="campaign_id",
        read_only=True,
        help_text="The campaign carrying the sequence's messages (/messages/?campaign=, analytics).",
    )
    enrollments = serializers.SerializerMethodField()

    class Meta:
        model = Sequence
        fields = [
            "id",
            "name",
            "channel",
            "trigger",
            "settings",
            "steps",
            "status",
            "campaign",
            "enrollments",
            "activated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SequenceTriggerSerializer)
    def get_trigger(self, sequence: Sequence) -> dict:
        return {"type": sequence.trigger_type, "value": sequence.trigger_value or None}

    @extend_schema_field(SequenceSettingsSerializer)
    def get_settings(self, sequence: Sequence) -> dict:
        return {**DEFAULT_SETTINGS, **{k: v for k, v in (sequence.settings or {}).items() if k in DEFAULT_SETTINGS}}

    @extend_schema_field(SequenceStepSerializer(many=True))
    def get_steps(self, sequence: Sequence) -> list[dict]:
        # `steps` is prefetched by the views; sorted here so the order never depends on the query.
        return [
            {
                "order": step.order,
                "delay": {"unit": step.delay_unit, "value": step.delay_value},
                "template": str(step.template_id),
                "condition": step.condition or None,
            }
            for step in sorted(sequence.steps.all(), key=lambda step: step.order)
        ]

    @extend_schema_field(EnrollmentCountsSerializer)
    def get_enrollments(self, sequence: Sequence) -> dict:
        return enrollment_counts_of(sequence, self.context)


@extend_schema_field(SequenceTriggerSerializer)
class TriggerField(BoundedJSONField):
    """`{type, value}`, validated by the service."""


@extend_schema_field(SequenceSettingsSerializer)
class SettingsField(BoundedJSONField):
    """The settings object, validated by the service (unknown keys are refused)."""


@extend_schema_field(SequenceStepSerializer(many=True))
class StepsField(BoundedJSONField):
    """The whole list of steps (it replaces the sequence's steps), validated by the service."""

    def __init__(self, **kwargs):
        # Every step may carry segment rules: bounded like a segment's rules, per step.
        kwargs.setdefault("max_keys", MAX_STEPS * (8 + SEGMENT_RULES_MAX_KEYS))
        kwargs.setdefault("max_bytes", django_settings.API_MAX_BODY_BYTES)
        super().__init__(**kwargs)


class SequenceWriteSerializer(serializers.Serializer):
    """Create (name required) or change (PATCH: only what is given) a sequence. `steps`, when given,
    is the complete new list of steps."""

    name = serializers.CharField(max_length=200)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False, help_text="Default email.")
    trigger = TriggerField(required=False, help_text="Default {type: manual}.")
    settings = SettingsField(required=False)
    steps = StepsField(required=False)


# --- enrollments -------------------------------------------------------------------------------------------


class BlankAsNullChoiceField(serializers.ChoiceField):
    def to_representation(self, value):
        return value or None


class EnrollmentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    sequence = serializers.UUIDField(source="sequence_id", read_only=True)
    contact = serializers.UUIDField(source="contact.public_id", read_only=True)
    status = serializers.ChoiceField(choices=EnrollmentStatus.choices, read_only=True)
    stop_reason = BlankAsNullChoiceField(choices=StopReason.choices, allow_null=True, read_only=True)
    current_step = serializers.IntegerField(read_only=True, help_text="The last step reached (0 = none yet).")
    started_at = serializers.DateTimeField(
        read_only=True, help_text="Null while waiting for admission under max_new_per_day."
    )

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "sequence",
            "contact",
            "status",
            "stop_reason",
            "entry",
            "current_step",
            "next_message_at",
            "entered_at",
            "started_at",
            "exited_at",
        ]
        read_only_fields = fields


class StrictIdField(serializers.CharField):
    """An id as the API shows it: a string (numbers, objects and nulls are refused)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EnrollSerializer(serializers.Serializer):
    contact_ids = serializers.ListField(
        child=StrictIdField(max_length=64),
        allow_empty=False,
        max_length=ENROLL_MAX_IDS,
        help_text="Contact ids (as /contacts/ shows them) of this organization; an unknown one is a 404.",
    )


class EnrollResultSerializer(serializers.Serializer):
    enrolled = serializers.IntegerField()
    skipped = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Contacts left out, by reason: unsubscribed, bounced, complained, suppressed, no_email, "
        "no_phone, invalid_phone, no_consent, already_enrolled, enrolled_before.",
    )


# --- stats -------------------------------------------------------------------------------------------------


class StepStatsSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    replied = serializers.IntegerField()
    stopped = serializers.IntegerField(help_text="Enrollments stopped after reaching this step.")


class SequenceStatsSerializer(serializers.Serializer):
    steps = StepStatsSerializer(many=True)
    enrollments = EnrollmentCountsSerializer()


# --- sending policy ----------------------------------------------------------------------------------------


class SendingWindowSerializer(serializers.Serializer):
    days = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, help_text="0 = Monday."
    )
    start = serializers.RegexField(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", help_text='"HH:MM", e.g. "09:00".')
    end = serializers.RegexField(
        r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", help_text='"HH:MM"; "24:00" is midnight at the end of the day.'
    )


class FrequencyCapSerializer(serializers.Serializer):
    schema_closed = True  # unknown keys are refused

    per_day = serializers.IntegerField(
        allow_null=True, required=False, min_value=1, max_value=1000, help_text="Per contact per rolling 24 hours."
    )
    per_week = serializers.IntegerField(
        allow_null=True, required=False, min_value=1, max_value=1000, help_text="Per contact per rolling 7 days."
    )


class SendingPolicySerializer(serializers.Serializer):
    window = serializers.SerializerMethodField()
    holidays = serializers.ListField(child=serializers.DateField(), read_only=True)
    frequency_cap = serializers.SerializerMethodField()
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    @extend_schema_field(SendingWindowSerializer(allow_null=True))
    def get_window(self, policy) -> dict | None:
        """Null: the default business hours (Monday to Friday, 09:00 to 17:00, the organization's time)."""
        return policy.window or None

    @extend_schema_field(FrequencyCapSerializer)
    def get_frequency_cap(self, policy) -> dict:
        cap = policy.frequency_cap or {}
        return {"per_day": cap.get("per_day"), "per_week": cap.get("per_week")}


@extend_schema_field(SendingWindowSerializer(allow_null=True))
class WindowField(BoundedJSONField):
    """The business-hours window (null = the default hours), validated by the planner."""


@extend_schema_field(serializers.ListField(child=serializers.DateField()))
class HolidaysField(BoundedJSONField):
    """Dates (YYYY-MM-DD) without business hours, validated by the planner."""


@extend_schema_field(FrequencyCapSerializer)
class FrequencyCapField(BoundedJSONField):
    """`{per_day, per_week}`, validated by the service."""


class SendingPolicyWriteSerializer(serializers.Serializer):
    window = WindowField(
        required=False, allow_null=True, help_text="Null: the default hours (Monday to Friday, 09:00 to 17:00)."
    )
    holidays = HolidaysField(required=False, allow_null=True)
    frequency_cap = FrequencyCapField(required=False, allow_null=True, help_text="Null or {}: no cap.")
