from __future__ import annotations

import contextlib
import hashlib

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, viewsets
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import selectors, services
from accounts.models import AuditEvent, Membership, User
from accounts.serializers import (
    AuditEventSerializer,
    AuditQuerySerializer,
    InvitationAcceptSerializer,
    LogoutSerializer,
    MemberSerializer,
    MeSerializer,
    OrganizationSerializer,
    PasswordChangeSerializer,
    PasswordResetAcceptedSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetSerializer,
    RefreshSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    TokenPairSerializer,
)
from accounts.tenancy import Area, TenantScopedViewMixin, request_membership
from config.clientip import client_ip
from config.schema import conflict, unauthorized


def _tokens_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


class RegisterView(generics.GenericAPIView):
    """Sign up: creates the user and an organization they own."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "register"
    serializer_class = RegisterSerializer

    @extend_schema(responses={201: RegisterResponseSerializer})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, organization = services.user_register(**serializer.validated_data)
        body = RegisterResponseSerializer({"user": user, "organization": organization, **_tokens_for(user)}).data
        return Response(body, status=status.HTTP_201_CREATED)


class LoginFailureGuard:
    """Counts failed logins per address and client, and refuses more after too many.

    An attempt takes its place in the count before the password is checked: the counter is
    incremented atomically and the attempt goes on only while the count is within the limit, so
    parallel guesses cannot all pass a check made before any of them failed. A success gives the
    place back (and clears the address's count); so does a request refused before the password
    was checked (a missing field).
    """

    def __init__(self, *, ident: str, email: str):
        self.window = settings.LOGIN_FAILURE_WINDOW_SECONDS
        # Hashed: an address may hold characters a cache key may not (spaces, control characters).
        address = hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
        self.pair_key = f"login-fail:{ident}:{address}"
        self.ip_key = f"login-fail-ip:{ident}"
        self._held = False

    def _increment(self, key: str) -> int:
        # add() starts the window on the first attempt; incr() keeps its expiry (atomic on Redis).
        for _ in range(3):
            if cache.add(key, 1, timeout=self.window):
                return 1
            try:
                return cache.incr(key)
            except ValueError:  # expired between add and incr
                continue
        return cache.incr(key)

    def _decrement(self, key: str) -> None:
        with contextlib.suppress(ValueError):  # the window ended meanwhile
            cache.decr(key)

    def acquire(self) -> None:
        """Count this attempt; raise Throttled (429) when it is beyond a limit."""
        pair = self._increment(self.pair_key)
        ip = self._increment(self.ip_key)
        if pair > settings.LOGIN_FAILURE_LIMIT or ip > settings.LOGIN_FAILURE_IP_LIMIT:
            self._decrement(self.pair_key)
            self._decrement(self.ip_key)
            raise Throttled(wait=self.window, detail="Too many failed logins. Try again later.")
        self._held = True

    def release(self) -> None:
        """The attempt did not test a password: it does not count."""
        if self._held:
            self._decrement(self.pair_key)
            self._decrement(self.ip_key)
            self._held = False

    def succeeded(self) -> None:
        if self._held:
            cache.delete(self.pair_key)
            self._decrement(self.ip_key)
            self._held = False


class LoginView(TokenObtainPairView):
    """Email and password for an access and a refresh token; throttled after repeated failures."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(responses={200: TokenPairSerializer, 401: unauthorized("Wrong email or password.")})
    def post(self, request, *args, **kwargs):
        email = request.data.get("email") if hasattr(request.data, "get") else None
        guard = LoginFailureGuard(ident=client_ip(request), email=str(email or ""))
        guard.acquire()
        try:
            response = super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            raise  # a failed password keeps its place in the count
        except Exception:
            guard.release()
            raise
        guard.succeeded()
        return response


@extend_schema_view(
    post=extend_schema(
        responses={200: TokenPairSerializer, 401: unauthorized("The refresh token is invalid, expired or used.")}
    )
)
class RefreshView(TokenRefreshView):
    """A refresh token for a new access token (and a new refresh token; the old one is blacklisted).

    Each refresh token is used once: of concurrent requests with the same token one succeeds and
    the others answer 401."""

    serializer_class = RefreshSerializer


class LogoutView(generics.GenericAPIView):
    """Blacklist a refresh token so it can no longer be used."""

    permission_classes = [IsAuthenticated]
    serializer_class = LogoutSerializer

    @extend_schema(responses={204: None})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
        except TokenError as exc:
            raise ValidationError({"refresh": [str(exc)]}) from None
        if str(token.get("user_id")) != str(request.user.pk):
            raise ValidationError({"refresh": ["This token belongs to another user."]})
        token.blacklist()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(generics.RetrieveUpdateAPIView):
    """The signed-in user and their memberships; PATCH changes their name, locale and time zone."""

    permission_classes = [IsAuthenticated]
    serializer_class = MeSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return User.objects.prefetch_related("memberships__organization").get(pk=self.request.user.pk)

    def perform_update(self, serializer):
        serializer.instance = services.user_profile_update(user=serializer.instance, **serializer.validated_data)


class PasswordChangeView(generics.GenericAPIView):
    """Change the signed-in user's password. Every other refresh token of theirs is revoked (send
    your own as `refresh` to keep it)."""

    permission_classes = [IsAuthenticated]
    serializer_class = PasswordChangeSerializer
    # It checks a password, like a login.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(responses={204: None})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.user_password_change(
            user=request.user,
            old_password=data["old_password"],
            new_password=data["new_password"],
            keep_refresh=data.get("refresh"),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


RESET_REQUEST_ACCEPTED = "If an account uses this address, a link to reset its password is on its way."


class PasswordResetView(generics.GenericAPIView):
    """Ask for a password reset link by email. The answer is 202 whether or not an account uses
    the address, so it tells nobody which addresses have one."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "password_reset"
    serializer_class = PasswordResetSerializer

    @extend_schema(responses={202: PasswordResetAcceptedSerializer})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.password_reset_request(email=serializer.validated_data["email"])
        return Response({"detail": RESET_REQUEST_ACCEPTED}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(generics.GenericAPIView):
    """Set a new password with the token from a reset email; the token works once."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "password_reset"
    serializer_class = PasswordResetConfirmSerializer

    @extend_schema(responses={204: None})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.password_reset_confirm(
            token=serializer.validated_data["token"], new_password=serializer.validated_data["new_password"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(generics.GenericAPIView):
    """Set a password with the link from an invitation email."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "invitation"
    serializer_class = InvitationAcceptSerializer

    @extend_schema(responses={204: None, 400: OpenApiResponse(description="Invalid or expired link.")})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            user = User.objects.get(pk=force_str(urlsafe_base64_decode(data["uid"])))
        except (User.DoesNotExist, ValueError, TypeError, OverflowError):
            user = None
        if user is None or not default_token_generator.check_token(user, data["token"]):
            raise ValidationError({"token": ["This invitation link is invalid or has expired."]})
        services.invitation_accept(user=user, password=data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class CurrentOrganizationView(TenantScopedViewMixin, generics.RetrieveUpdateAPIView):
    """The organization this request acts in (see X-Organization)."""

    permission_area = Area.ORGANIZATION
    serializer_class = OrganizationSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return request_membership(self.request).organization


LAST_OWNER = conflict("An organization must keep at least one owner.")


@extend_schema_view(
    partial_update=extend_schema(responses={200: MemberSerializer, 409: LAST_OWNER}),
    destroy=extend_schema(responses={204: None, 409: LAST_OWNER}),
)
class MemberViewSet(
    TenantScopedViewMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Members of the organization and their roles (owners and admins only)."""

    permission_area = Area.MEMBERS
    serializer_class = MemberSerializer
    queryset = Membership.objects.select_related("user").order_by("created_at", "id")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["role"]

    def perform_create(self, serializer):
        serializer.instance = services.member_invite(
            organization=self.request.organization,
            email=serializer.validated_data["email"],
            role=serializer.validated_data["role"],
            by=self.request.user,
        )

    def perform_update(self, serializer):
        serializer.instance = services.member_change_role(
            membership=serializer.instance,
            role=serializer.validated_data.get("role", serializer.instance.role),
            by=self.request.user,
        )

    def perform_destroy(self, instance):
        services.member_remove(membership=instance, by=self.request.user)


_AUDIT_FILTERS = [
    OpenApiParameter("action", str, description='e.g. "campaign.launched"'),
    OpenApiParameter("object_type", str, description='e.g. "campaign", "contact", "membership"'),
    OpenApiParameter("object_id", str),
    OpenApiParameter("actor", OpenApiTypes.UUID, description="User id of who did it."),
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day, in the organization's time zone."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, included."),
]


class AuditEventViewSet(TenantScopedViewMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The organization's audit trail, newest first (owners and admins only; read only)."""

    permission_area = Area.AUDIT
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.all()
    filter_backends: list = []  # the filters are validated below, so a bad one is a 400 naming it

    def get_queryset(self):
        events = super().get_queryset()
        if getattr(self, "swagger_fake_view", False) or self.action != "list":
            return events
        # An empty parameter (?action=) filters nothing, as in the other lists.
        query = AuditQuerySerializer(data={k: v for k, v in self.request.query_params.items() if v != ""})
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        return selectors.audit_events_filter(
            events,
            timezone=self.request.organization.timezone,
            date_from=filters.pop("from", None),
            date_to=filters.pop("to", None),
            **filters,
        )

    @extend_schema(parameters=_AUDIT_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)
