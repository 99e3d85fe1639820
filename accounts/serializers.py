from __future__ import annotations

from rest_framework import serializers

from accounts.models import Membership, Organization, Role, User


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "timezone", "default_from_name", "default_from_email", "created_at"]
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
    memberships = MembershipOfUserSerializer(many=True)

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "memberships"]


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
