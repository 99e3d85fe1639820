from rest_framework import serializers

from tracking.models import MessageEvent


class MessageEventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    message = serializers.CharField(source="message_id", read_only=True)
    unique = serializers.BooleanField(source="is_unique", read_only=True)

    class Meta:
        model = MessageEvent
        fields = [
            "id",
            "message",
            "type",
            "occurred_at",
            "machine",
            "unique",
            "url",
            "user_agent",
            "ip",
            "esp",
            "recipient",
            "detail",
        ]
        read_only_fields = fields
