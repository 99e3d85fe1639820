from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.tenancy import TenantRelatedField
from config.schema import JSON_OBJECT
from templates_app.models import Layout, MessageTemplate

WHATSAPP_PARAMETERS_SCHEMA = {
    "anyOf": [
        {"type": "array", "items": {"type": "string"}},
        {
            "type": "object",
            "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        },
    ],
    "description": 'Jinja per parameter: ["{{ contact.first_name }}", ...] or {"body": [...], "header": [...]}.',
}


@extend_schema_field(WHATSAPP_PARAMETERS_SCHEMA)
class WhatsappParametersField(serializers.JSONField):
    pass


@extend_schema_field(JSON_OBJECT)
class VariablesField(serializers.JSONField):
    pass


class LayoutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Layout
        fields = ["id", "name", "html", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class MessageTemplateSerializer(serializers.ModelSerializer):
    layout = TenantRelatedField(queryset=Layout.objects.all(), allow_null=True, required=False)
    variables = VariablesField(
        required=False, help_text="Default campaign variables, by name (letters, digits and _, not starting with _)."
    )
    whatsapp_parameters = WhatsappParametersField(required=False)

    class Meta:
        model = MessageTemplate
        fields = [
            "id",
            "name",
            "channel",
            "purpose",
            "layout",
            "subject",
            "preheader",
            "html_body",
            "text_body",
            "variables",
            "from_name",
            "from_email",
            "reply_to",
            "sms_body",
            "sms_encoding",
            "sms_length",
            "sms_segments",
            "whatsapp_template_name",
            "whatsapp_language",
            "whatsapp_parameters",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "sms_encoding",
            "sms_length",
            "sms_segments",
            "version",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "sms_encoding": {"help_text": "gsm7 or ucs2 (SMS only)."},
            "sms_length": {"help_text": "GSM-7 septets or UCS-2 code units of the body rendered for a sample contact."},
            "sms_segments": {"help_text": "Messages the SMS is sent in (160/153 GSM-7, 70/67 UCS-2 characters)."},
            "version": {"help_text": "Number of the latest version; campaigns keep the version they launched with."},
        }


class PreviewRequestSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField(required=False, help_text="A contact of this organization.")
    context = serializers.DictField(
        required=False,
        help_text='Values to render with, merged over a sample context: {"contact": {"first_name": "Ann"}, ...}.',
    )


class SmsInfoSerializer(serializers.Serializer):
    encoding = serializers.CharField()
    length = serializers.IntegerField()
    segments = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    subject = serializers.CharField()
    preheader = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField(help_text="The text part of an email, or the SMS body.")
    sms = SmsInfoSerializer(allow_null=True)
    whatsapp_parameters = WhatsappParametersField(allow_null=True)
