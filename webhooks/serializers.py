from __future__ import annotations

from rest_framework import serializers

from webhooks.events import EVENT_TYPES
from webhooks.models import Delivery, DeliveryStatus, Endpoint

EVENT_TYPE_HELP = "Event types: " + ", ".join(EVENT_TYPES) + "."


class EndpointSerializer(serializers.ModelSerializer):
    """An endpoint as listed and read: never its secret."""

    id = serializers.UUIDField(read_only=True)
    events = serializers.ListField(child=serializers.CharField(), help_text=EVENT_TYPE_HELP)

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "events",
            "description",
            "enabled",
            "failure_streak",
            "failing_since",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class EndpointCreatedSerializer(EndpointSerializer):
    """The answer to a create: the only time the signing secret is shown."""

    secret = serializers.CharField(read_only=True, help_text="whsec_…: verify signatures with it; shown only now.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class EndpointWriteSerializer(serializers.Serializer):
    # The URL's scheme and address are checked by the service (400 naming `url`).
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=len(EVENT_TYPES), help_text=EVENT_TYPE_HELP
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, read_only=True)
    response_code = serializers.IntegerField(source="last_response_code", read_only=True, allow_null=True)
    response_body = serializers.CharField(source="last_response_body", read_only=True)
    error = serializers.CharField(source="last_error", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "type",
            "status",
            "attempts",
            "response_code",
            "response_body",
            "error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "payload",
        ]
        read_only_fields = fields
