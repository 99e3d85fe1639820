from __future__ import annotations

from rest_framework import serializers

from analytics.models import COUNTERS, Attribution, Conversion
from config.validation import BoundedDateField, BoundedDateTimeField

# --- conversions ------------------------------------------------------------------------------------


class ConversionSerializer(serializers.ModelSerializer):
    """A conversion as the API shows it."""

    id = serializers.CharField(read_only=True)
    contact = serializers.UUIDField(source="contact.public_id", read_only=True, help_text="The contact's id.")
    campaign = serializers.UUIDField(source="campaign_id", read_only=True, allow_null=True)
    message = serializers.CharField(source="message_id", read_only=True, allow_null=True)
    attribution = serializers.ChoiceField(
        choices=Attribution.choices,
        read_only=True,
        help_text="given: the caller named the campaign or message; click / open: the contact's last clicked "
        "(else opened) message within CONVERSION_ATTRIBUTION_DAYS; none: unattributed.",
    )

    class Meta:
        model = Conversion
        fields = ["id", "contact", "campaign", "message", "attribution", "name", "value", "currency", "occurred_at"]
        read_only_fields = fields


class ConversionCreateSerializer(serializers.Serializer):
    contact = serializers.CharField(max_length=254, help_text="The contact's id or email address.")
    campaign = serializers.UUIDField(required=False, allow_null=True, help_text="The campaign it is credited to.")
    message = serializers.RegexField(
        r"^[0-9]{1,18}$",
        required=False,
        allow_null=True,
        help_text="The message it is credited to (sent to this contact, of `campaign` when both are given).",
        error_messages={"invalid": "Not a message id."},
    )
    value = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        help_text="ISO 4217 code in capitals, e.g. EUR.",
        error_messages={"invalid": "Must be a three-letter ISO 4217 code in capitals, e.g. EUR."},
    )
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    occurred_at = BoundedDateTimeField(required=False, help_text="Default: now. Not in the future.")


# --- reports ----------------------------------------------------------------------------------------


class CountersSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    opened = serializers.IntegerField(help_text="Messages opened by a person (first open; machine opens excluded).")
    clicked = serializers.IntegerField(help_text="Messages clicked by a person (first click; machine clicks excluded).")
    bounced = serializers.IntegerField(help_text="Hard bounces.")
    complained = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    failed = serializers.IntegerField()
    replied = serializers.IntegerField()
    conversions = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)


assert tuple(CountersSerializer().fields) == COUNTERS  # one list of counters, in the models' order


class RatesSerializer(serializers.Serializer):
    open_rate = serializers.FloatField(help_text="opened / (sent - bounced)")
    click_rate = serializers.FloatField(help_text="clicked / (sent - bounced)")
    click_to_open_rate = serializers.FloatField(help_text="clicked / opened")
    bounce_rate = serializers.FloatField(help_text="bounced / sent")
    unsubscribe_rate = serializers.FloatField(help_text="unsubscribed / (sent - bounced)")


class TotalsSerializer(serializers.Serializer):
    counters = CountersSerializer()
    rates = RatesSerializer()


class DaySerializer(serializers.Serializer):
    date = serializers.DateField()
    counters = CountersSerializer()


class TopCampaignSerializer(serializers.Serializer):
    campaign_id = serializers.UUIDField()
    name = serializers.CharField()
    channel = serializers.CharField()
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    conversions = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    open_rate = serializers.FloatField()
    click_rate = serializers.FloatField()


# `from` is a Python keyword, so the range's fields are declared by name.
RangeSerializer = type(
    "RangeSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.DateField(help_text="First day, in the organization's time zone."),
        "to": serializers.DateField(help_text="Last day, included."),
    },
)


class DashboardSerializer(RangeSerializer):
    totals = TotalsSerializer()
    days = DaySerializer(many=True, help_text="Every day from `from` to `to`.")
    top_campaigns = TopCampaignSerializer(many=True, help_text="The 10 campaigns that sent most in the range.")


class VariantCountersSerializer(serializers.Serializer):
    variant = serializers.CharField(help_text="The variant's name.")
    variant_id = serializers.UUIDField()
    counters = CountersSerializer()


class StepCountersSerializer(serializers.Serializer):
    step = serializers.IntegerField(help_text="0 for a broadcast (1 its follow-up); a sequence's step number.")
    counters = CountersSerializer()


class LinkSerializer(serializers.Serializer):
    url = serializers.CharField()
    clicks = serializers.IntegerField(help_text="Clicks by people.")
    unique_clicks = serializers.IntegerField(help_text="Messages whose first click on this URL it was.")


class CampaignAnalyticsSerializer(serializers.Serializer):
    campaign = serializers.UUIDField(help_text="The campaign's id.")
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    revenue = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="Conversion revenue over the campaign's whole life."
    )
    roi = serializers.FloatField(
        allow_null=True, help_text="(revenue - budget) / budget; null without a budget (or a budget of 0)."
    )
    totals = TotalsSerializer(help_text="From `from` to `to`.")
    days = DaySerializer(many=True, help_text="Every day from `from` to `to`.")
    variants = VariantCountersSerializer(many=True)
    steps = StepCountersSerializer(many=True)
    links = LinkSerializer(many=True, help_text="Most clicked first.")


class RangeQuerySerializer(serializers.Serializer):
    date_from = BoundedDateField(required=False)
    date_to = BoundedDateField(required=False)
