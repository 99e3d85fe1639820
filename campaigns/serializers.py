from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.tenancy import TenantRelatedField
from campaigns import services
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus, SendingDomain
from templates_app.models import MessageTemplate


class VariantSerializer(serializers.ModelSerializer):
    template = TenantRelatedField(queryset=MessageTemplate.objects.all())

    class Meta:
        model = CampaignVariant
        fields = ["id", "name", "template", "weight"]
        read_only_fields = ["id"]


class CampaignSerializer(serializers.ModelSerializer):
    template = TenantRelatedField(queryset=MessageTemplate.objects.all(), required=False, allow_null=True)
    variants = VariantSerializer(many=True, required=False)

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
        return self._check_object(value, "schedule")

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


class DryRunSerializer(serializers.Serializer):
    recipients = serializers.IntegerField()
    excluded = serializers.DictField(child=serializers.IntegerField())
    first_send_at = serializers.DateTimeField(allow_null=True)
    last_send_at = serializers.DateTimeField(allow_null=True)
    per_day = serializers.ListField(child=serializers.DictField())
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
