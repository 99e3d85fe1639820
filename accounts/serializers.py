from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts import services
from accounts.models import AuditEvent, Membership, Organization, Role, User
from config.schema import JSON_OBJECT
from config.validation import BoundedDateField


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = [
            "id",
            "name",
            "slug",
            "timezone",
            "default_from_name",
            "default_from_email",
            "require_explicit_consent",
            "sms_segment_price",
            "whatsapp_message_price",
            "message_price_currency",
            "created_at",
        ]
        read_only_fields = ["id", "slug", "created_at"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name"]
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    organization_name = serializers.CharField(max_length=200)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisterResponseSerializer(TokenPairSerializer):
    user = UserSerializer()
    organization = OrganizationSerializer()


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class MembershipOfUserSerializer(serializers.ModelSerializer):
    organization = OrganizationSerializer()

    class Meta:
        model = Membership
        fields = ["organization", "role"]


class MeSerializer(serializers.ModelSerializer):
    """The signed-in user. `full_name`, `locale` and `timezone` may be changed (PATCH)."""

    memberships = MembershipOfUserSerializer(many=True, read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "locale", "timezone", "memberships"]
        read_only_fields = ["id", "email", "memberships"]


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    new_password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    refresh = serializers.CharField(
        required=False,
        write_only=True,
        help_text="The caller's own refresh token, kept valid; every other refresh token of the user is revoked.",
    )


class PasswordResetSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetAcceptedSerializer(serializers.Serializer):
    detail = serializers.CharField()


class PasswordResetConfirmSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=200, help_text="The token from the link in the reset email.")
    new_password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class MemberSerializer(serializers.ModelSerializer):
    """A member of the request's organization. `email` is written on invite only."""

    user = UserSerializer(read_only=True)
    email = serializers.EmailField(write_only=True, max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "user", "email", "role", "created_at", "updated_at"]
        read_only_fields = ["id", "user", "created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:
            fields["email"].read_only = True
            fields["email"].required = False
        return fields


class InvitationAcceptSerializer(serializers.Serializer):
    uid = serializers.CharField()
    token = serializers.CharField()
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh with the old token spent atomically (see services.refresh_token_spend)."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])  # signature, expiry and blacklist
        user_id = refresh.payload.get(jwt_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first() if user_id else None
        if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        with transaction.atomic():
            services.refresh_token_spend(token=refresh, user=user)
            data = {"access": str(refresh.access_token)}
            # The same claims under a new id and lifetime: the rotated refresh token.
            refresh.set_jti()
            refresh.set_exp()
            refresh.set_iat()
            refresh.outstand()
            data["refresh"] = str(refresh)
        return data


class AuditActorSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="actor_id", allow_null=True)
    email = serializers.CharField(source="actor_email")


class AuditObjectSerializer(serializers.Serializer):
    type = serializers.CharField(source="object_type")
    id = serializers.CharField(source="object_id")
    repr = serializers.CharField(source="object_repr")


@extend_schema_field(JSON_OBJECT)
class ChangesField(serializers.JSONField):
    pass


class AuditEventSerializer(serializers.ModelSerializer):
    """One entry of the audit trail. `actor` is null for the system; after the user is deleted
    its id is null and the email stays."""

    id = serializers.CharField(read_only=True)
    actor = serializers.SerializerMethodField()
    object = AuditObjectSerializer(source="*", read_only=True)
    changes = ChangesField(read_only=True, help_text="Before/after summary of what changed.")

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "object", "changes", "request_id", "created_at"]
        read_only_fields = fields

    @extend_schema_field(AuditActorSerializer(allow_null=True))
    def get_actor(self, event: AuditEvent) -> dict | None:
        if event.actor_id is None and not event.actor_email:
            return None
        return AuditActorSerializer(event).data


class AuditQuerySerializer(serializers.Serializer):
    """The list's filters; `from` and `to` are days in the organization's time zone."""

    action = serializers.CharField(required=False, max_length=64)
    object_type = serializers.CharField(required=False, max_length=64)
    object_id = serializers.CharField(required=False, max_length=64)
    actor = serializers.UUIDField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        # Python keywords, so not declarable as attributes.
        fields["from"] = BoundedDateField(required=False)
        fields["to"] = BoundedDateField(required=False)
        return fields

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": ["Must be on or before to."]})
        return attrs
