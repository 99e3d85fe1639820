from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.tenancy import TenantRelatedField
from campaigns import abtest, planner, services
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus, SendingDomain
from campaigns.sequence_serializers import SendingWindowSerializer
from config.schema import JSON_OBJECT
from templates_app.models import MessageTemplate

# --- the settings objects of a campaign, typed for the schema ----------------------------------------------
# What is written is passed on as given to the services (AudienceSpec.from_dict, planner.PlanSettings.from_api,
# abtest.ab_test_clean, the follow-up check), which validate it and name a failing field by its path
# ("schedule.window.start"). These serializers only describe those shapes, with the same bounds.


class AudienceSerializer(serializers.Serializer):
    """Who receives the campaign: anyone on one of the lists, or with one of the tags, or in the segment,
    minus the exclusions. Unknown keys are refused."""

    schema_closed = True

    lists = serializers.ListField(child=serializers.UUIDField(), required=False, allow_null=True)
    tags = serializers.ListField(
        child=serializers.RegexField(r"\S", help_text="A tag name."), required=False, allow_null=True
    )
    segment = serializers.UUIDField(required=False, allow_null=True)
    exclude_tags = serializers.ListField(
        child=serializers.RegexField(r"\S", help_text="A tag name."), required=False, allow_null=True
    )
    exclude_recent_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=3650,
        help_text="Leave out contacts messaged within this many days.",
    )


class ScheduleSerializer(serializers.Serializer):
    start_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="With a UTC offset; null, absent or in the past: now."
    )
    timezone = serializers.CharField(
        required=False, allow_null=True, help_text="IANA name (e.g. Europe/Amsterdam); default the organization's."
    )
    window = SendingWindowSerializer(required=False, allow_null=True, help_text="Null or absent: any time.")
    holidays = serializers.ListField(
        child=serializers.DateField(), required=False, allow_null=True, help_text="Days nothing is sent."
    )
    recipient_timezone = serializers.BooleanField(
        required=False, allow_null=True, help_text="Plan each message in the recipient's own time zone."
    )


class ThrottleSerializer(serializers.Serializer):
    """Each limit null or absent: no limit."""

    per_domain_interval_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=planner.THROTTLE_MAXIMUMS["per_domain_interval_minutes"],
        help_text="Minutes between two messages from one sending domain.",
    )
    max_per_hour = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=planner.THROTTLE_MAXIMUMS["max_per_hour"]
    )
    per_recipient_domain_per_minute = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=planner.THROTTLE_MAXIMUMS["per_recipient_domain_per_minute"],
        help_text="Messages per minute to one recipient domain (gmail.com, ...).",
    )


class FollowupSerializer(serializers.Serializer):
    """A second message to who did not open (or click) the first; checked only when enabled."""

    enabled = serializers.BooleanField(required=False)
    days = serializers.IntegerField(required=False, min_value=1, max_value=90, help_text="Days after the first.")
    template = serializers.UUIDField(required=False, help_text="A template of the campaign's channel.")
    criterion = serializers.ChoiceField(
        choices=services.FOLLOWUP_CRITERIA, required=False, help_text="Default not_opened."
    )


@extend_schema_field(
    {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
        "description": "The share of the audience in the test, e.g. 0.2.",
    }
)
class _TestFractionField(serializers.FloatField):
    pass


@extend_schema_field(
    {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": abtest.MAX_WAIT_HOURS,
        "description": "Hours between the test's sends and the decision.",
    }
)
class _WaitHoursField(serializers.FloatField):
    pass


class ABTestSerializer(serializers.Serializer):
    """{} (or null): no A/B test. Otherwise test_fraction and wait_hours are required; unknown keys are refused."""

    schema_closed = True

    test_fraction = _TestFractionField(required=False)
    metric = serializers.ChoiceField(choices=abtest.METRICS, required=False, help_text="Default open_rate.")
    wait_hours = _WaitHoursField(required=False)
    on_no_winner = serializers.ChoiceField(
        choices=abtest.ON_NO_WINNER,
        required=False,
        help_text="Without a significant winner: send the rest the first variant, or split it (default first).",
    )


@extend_schema_field(AudienceSerializer)
class AudienceField(serializers.JSONField):
    pass


@extend_schema_field(ScheduleSerializer)
class ScheduleField(serializers.JSONField):
    pass


@extend_schema_field(ThrottleSerializer)
class ThrottleField(serializers.JSONField):
    pass


@extend_schema_field(FollowupSerializer)
class FollowupField(serializers.JSONField):
    pass


@extend_schema_field(ABTestSerializer)
class ABTestField(serializers.JSONField):
    pass


@extend_schema_field(
    serializers.ListField(child=serializers.CharField(help_text="A domain name, e.g. news.example.com."))
)
class DomainListField(serializers.JSONField):
    pass


@extend_schema_field(JSON_OBJECT)
class JSONObjectField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}})
class CountsField(serializers.JSONField):
    pass


class VariantSerializer(serializers.ModelSerializer):
    template = TenantRelatedField(queryset=MessageTemplate.objects.all())

    class Meta:
        model = CampaignVariant
        fields = ["id", "name", "template", "weight"]
        read_only_fields = ["id"]


class CampaignSerializer(serializers.ModelSerializer):
    template = TenantRelatedField(queryset=MessageTemplate.objects.all(), required=False, allow_null=True)
    variants = VariantSerializer(many=True, required=False)
    audience = AudienceField(required=False)
    schedule = ScheduleField(required=False)
    throttle = ThrottleField(required=False)
    sending_domains = DomainListField(
        required=False, help_text="Domains to send from, round-robin; empty: the organization's default sender."
    )
    followup = FollowupField(required=False)
    ab_test = ABTestField(required=False)
    variables = JSONObjectField(required=False, help_text="Values for the template's variables.")
    excluded = CountsField(read_only=True, help_text="Contacts left out at expansion, by reason.")

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "template",
            "template_version",
            "variants",
            "audience",
            "schedule",
            "throttle",
            "sending_domains",
            "followup",
            "ab_test",
            "variables",
            "budget",
            "recurrence",
            "series",
            "next_run_at",
            "status",
            "status_reason",
            "recipients",
            "excluded",
            "launched_at",
            "completed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "template_version",
            "series",
            "next_run_at",
            "status",
            "status_reason",
            "recipients",
            "excluded",
            "launched_at",
            "completed_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "recurrence": {
                "help_text": "An RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0, read in the schedule's "
                "time zone (else the organization's); at most hourly. Launching makes the campaign a series "
                "that launches a copy of itself (a run) at each occurrence. Empty = sent once."
            },
            "series": {"help_text": "For a run: the series it was launched by."},
            "next_run_at": {"help_text": "For a running series: when its next run starts."},
            "budget": {"help_text": "What the campaign cost (null: unknown); analytics gives its ROI from it."},
        }

    def validate_recurrence(self, value):
        return value.strip()

    def validate(self, attrs):
        if self.instance is not None and self.instance.status != CampaignStatus.DRAFT:
            # Variants are written beside the service's save, so a launched campaign's are refused here.
            changed = [
                name for name, value in attrs.items() if name == "variants" or getattr(self.instance, name) != value
            ]
            services.campaign_check_editable(campaign=self.instance, fields=changed)
        return attrs

    def _check_object(self, value, name):
        if not isinstance(value, dict):
            raise serializers.ValidationError(f"{name} must be an object.")
        return value

    def validate_audience(self, value):
        return self._check_object(value, "audience")

    def validate_schedule(self, value):
        value = self._check_object(value, "schedule")
        if value.get("window") == {}:
            # The planner reads {} as "any time", like null: store the one documented form.
            value = {**value, "window": None}
        return value

    def validate_throttle(self, value):
        return self._check_object(value, "throttle")

    def validate_sending_domains(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a list of domain names.")
        return [str(v).strip().lower() for v in value]

    def validate_variables(self, value):
        return self._check_object(value, "variables")


class PerDomainSerializer(serializers.Serializer):
    domain = serializers.CharField()
    count = serializers.IntegerField()
    from_email = serializers.CharField(help_text="The From address messages planned on this domain carry.")
    verified = serializers.BooleanField(help_text="Whether the organization may send from it (checked at launch).")


class CostSerializer(serializers.Serializer):
    amount = serializers.CharField(
        allow_null=True, help_text="Decimal string; null while the organization has no price for the channel."
    )
    currency = serializers.CharField(help_text="ISO 4217, the organization's message price currency.")
    segments = serializers.IntegerField(help_text="SMS segments (WhatsApp: messages).")


class DayCountSerializer(serializers.Serializer):
    date = serializers.DateField()
    count = serializers.IntegerField()


class DryRunSerializer(serializers.Serializer):
    recipients = serializers.IntegerField()
    excluded = serializers.DictField(child=serializers.IntegerField())
    first_send_at = serializers.DateTimeField(allow_null=True)
    last_send_at = serializers.DateTimeField(allow_null=True)
    per_day = DayCountSerializer(many=True)
    per_domain = PerDomainSerializer(many=True)
    estimated_cost = CostSerializer(
        allow_null=True,
        help_text="SMS and WhatsApp: recipients times segments per message times the price; null for email.",
    )


class MessageSerializer(serializers.ModelSerializer):
    campaign = serializers.UUIDField(source="campaign_id", read_only=True)
    contact = serializers.UUIDField(source="contact.public_id", read_only=True)
    to = serializers.CharField(source="to_address", read_only=True)
    channel = serializers.CharField(source="campaign.channel", read_only=True)
    status = serializers.SerializerMethodField()
    variant = serializers.CharField(source="variant.name", read_only=True, default=None)
    id = serializers.CharField(read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "campaign",
            "contact",
            "to",
            "channel",
            "status",
            "step",
            "variant",
            "scheduled_at",
            "sent_at",
            "sending_domain",
            "provider_message_id",
            "attempts",
            "last_error",
        ]
        read_only_fields = fields

    def get_status(self, message) -> str:
        return MessageStatus(message.status).label


class KpiSerializer(serializers.Serializer):
    planned = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    bounced = serializers.IntegerField()
    complained = serializers.IntegerField()
    unsubscribed = serializers.IntegerField(help_text="Messages whose recipient unsubscribed through them.")
    failed = serializers.IntegerField()
    unknown = serializers.IntegerField()
    open_rate = serializers.FloatField(help_text="opened / (sent - bounced)")
    click_rate = serializers.FloatField(help_text="clicked / (sent - bounced)")
    click_to_open_rate = serializers.FloatField(help_text="clicked / opened")
    bounce_rate = serializers.FloatField(help_text="bounced / sent")
    unsubscribe_rate = serializers.FloatField(help_text="unsubscribed / (sent - bounced)")


class TimelineRowSerializer(serializers.Serializer):
    date = serializers.DateField()
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()


class VariantStatsSerializer(serializers.Serializer):
    variant = serializers.CharField(allow_null=True)
    kpis = KpiSerializer()


class AbVariantSerializer(serializers.Serializer):
    variant = serializers.CharField()
    sent = serializers.IntegerField()
    bounced = serializers.IntegerField()
    opened = serializers.IntegerField(help_text="Unique opens by people (machine opens excluded).")
    clicked = serializers.IntegerField(help_text="Unique clicks by people (machine clicks excluded).")
    rate = serializers.FloatField(help_text="The test's metric over sent minus bounced.")


class AbTestStateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["testing", "waiting", "decided"])
    metric = serializers.ChoiceField(choices=["open_rate", "click_rate"])
    test_fraction = serializers.FloatField()
    wait_hours = serializers.FloatField()
    on_no_winner = serializers.ChoiceField(choices=["first", "split"])
    test_size = serializers.IntegerField()
    held = serializers.IntegerField(help_text="Messages held for the winner.")
    decision_due_at = serializers.DateTimeField(allow_null=True)
    winner = serializers.CharField(allow_null=True, help_text="Null before the decision, or when the rest is split.")
    leader = serializers.CharField(allow_null=True, help_text="The variant with the best rate so far.")
    p_value = serializers.FloatField(allow_null=True, help_text="Two-sided z-test against the closest rival.")
    z = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField(help_text="p < 0.05 against every other variant.")
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.ChoiceField(choices=["auto", "manual"], allow_null=True)
    per_variant = AbVariantSerializer(many=True)


class AbWinnerSerializer(serializers.Serializer):
    variant = serializers.CharField(max_length=100, help_text="The variant's name (or id).")


class StatsSerializer(serializers.Serializer):
    kpis = KpiSerializer()
    timeline = TimelineRowSerializer(many=True)
    variants = VariantStatsSerializer(many=True)
    ab_test = AbTestStateSerializer(allow_null=True, help_text="Null for a campaign without an A/B test.")
    cost = CostSerializer(
        allow_null=True, help_text="SMS and WhatsApp: what the messages sent so far cost; null for email."
    )


class TestSendSerializer(serializers.Serializer):
    # The count (TEST_SEND_MAX_RECIPIENTS) is checked by the service, so the API and workers share one limit.
    emails = serializers.ListField(child=serializers.EmailField(), allow_empty=False)


class VerificationRecordSerializer(serializers.Serializer):
    type = serializers.CharField()
    names = serializers.ListField(child=serializers.CharField(), help_text="Publish the record at either name.")
    value = serializers.CharField()


class SendingDomainSerializer(serializers.ModelSerializer):
    verification_record = serializers.SerializerMethodField()
    verified_by = serializers.EmailField(source="verified_by.email", read_only=True, default=None)

    class Meta:
        model = SendingDomain
        fields = [
            "id",
            "domain",
            "status",
            "method",
            "verification_record",
            "verified_at",
            "verified_by",
            "last_checked_at",
            "last_check_error",
            "created_at",
        ]
        read_only_fields = [name for name in fields if name != "domain"]
        extra_kwargs = {"domain": {"validators": []}}  # sending_domain_add checks and normalizes it

    @extend_schema_field(VerificationRecordSerializer)
    def get_verification_record(self, obj) -> dict:
        return VerificationRecordSerializer({"type": "TXT", "names": obj.txt_names, "value": obj.txt_value}).data
