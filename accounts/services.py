"""Account writes: registration, invitations, role changes, profile and passwords."""

from __future__ import annotations

import logging

from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone as django_timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.text import slugify
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.audit import audit_record
from accounts.models import Membership, Organization, Role, User
from config.errors import ConflictError

logger = logging.getLogger(__name__)


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "organization"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def organization_create(*, name: str, owner: User, timezone: str | None = None) -> Organization:
    """Create an organization with `owner` as its first owner."""
    with transaction.atomic():
        organization = Organization(name=name.strip(), slug=_unique_slug(name))
        if timezone:
            organization.timezone = timezone
        organization.full_clean()
        organization.save()
        Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    return organization


def user_register(*, email: str, password: str, organization_name: str) -> tuple[User, Organization]:
    """Sign up: a new user who owns a new organization. Raises ValidationError on bad input."""
    email = User.objects.normalize_email_address(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": ["A user with this email already exists."]})
    candidate = User(email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
            organization = organization_create(name=organization_name, owner=user)
    except IntegrityError:
        # Two sign-ups with the same address raced; the unique index decided.
        raise ValidationError({"email": ["A user with this email already exists."]}) from None
    logger.info("user registered", extra={"user_id": str(user.pk), "organization_id": str(organization.pk)})
    return user, organization


def member_invite(*, organization: Organization, email: str, role: str, by: User) -> Membership:
    """Add a user (created on the fly if new) to the organization and email them an invitation."""
    from accounts.tasks import send_invitation_task

    _check_role_grant(organization=organization, role=role, by=by)
    email = User.objects.normalize_email_address(email)
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=None)
        if Membership.objects.filter(organization=organization, user=user).exists():
            raise ValidationError({"email": ["This user is already a member of the organization."]})
        membership = Membership.objects.create(organization=organization, user=user, role=role, invited_by=by)
        audit_record(
            organization=organization,
            by=by,
            action="member.invited",
            obj=membership,
            object_repr=user.email,
            changes={"after": {"email": user.email, "role": role}},
        )
        transaction.on_commit(lambda: send_invitation_task.delay(membership_id=str(membership.pk)))
    logger.info("member invited", extra={"membership_id": str(membership.pk), "role": role})
    return membership


def member_change_role(*, membership: Membership, role: str, by: User) -> Membership:
    """Change a member's role; only owners touch the owner role and an organization keeps an owner."""
    if role == membership.role:
        return membership
    _check_role_grant(organization=membership.organization, role=role, by=by)
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        if membership.role == Role.OWNER:
            _check_role_grant(organization=membership.organization, role=Role.OWNER, by=by)
            _ensure_another_owner(membership)
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
        audit_record(
            organization=membership.organization_id,
            by=by,
            action="member.role_changed",
            obj=membership,
            object_repr=membership.user.email,
            changes={"before": {"role": before}, "after": {"role": role}},
        )
    return membership


def member_remove(*, membership: Membership, by: User) -> None:
    """Remove a member; the last owner cannot be removed."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        if membership.role == Role.OWNER:
            _check_role_grant(organization=membership.organization, role=Role.OWNER, by=by)
            _ensure_another_owner(membership)
        audit_record(
            organization=membership.organization_id,
            by=by,
            action="member.removed",
            obj=membership,
            object_repr=membership.user.email,
            changes={"before": {"email": membership.user.email, "role": membership.role}},
        )
        membership.delete()


def invitation_accept(*, user: User, password: str) -> User:
    """Set the invited user's password; the token was checked by the caller."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def refresh_token_spend(*, token: RefreshToken, user: User | None) -> None:
    """Blacklist a refresh token that is being rotated, once: of concurrent uses of one token
    exactly one gets through, the others raise TokenError (401)."""
    jti = token.payload[jwt_settings.JTI_CLAIM]
    with transaction.atomic():
        if user is not None:
            # Serializes with a password change (see refresh_tokens_revoke): a token rotated
            # meanwhile is either revoked with the others or refused here.
            _lock_user(user)
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=jti,
            defaults={
                "user": user,
                "created_at": token.current_time,
                "token": str(token),
                "expires_at": datetime_from_epoch(token.payload["exp"]),
            },
        )
        # The row lock queues the other uses of this token until this one commits; the unique
        # blacklist row then tells them it is spent.
        locked = OutstandingToken.objects.select_for_update().filter(pk=outstanding.pk).order_by()
        list(locked.values_list("pk", flat=True))
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise TokenError("Token is blacklisted")


PROFILE_FIELDS = frozenset({"full_name", "locale", "timezone"})


def user_profile_update(*, user: User, **fields) -> User:
    """Change the user's own name, locale or time zone. Raises ValidationError naming the field."""
    unknown = set(fields) - PROFILE_FIELDS
    if unknown:
        raise ValidationError({name: ["This field cannot be changed here."] for name in sorted(unknown)})
    for name, value in fields.items():
        setattr(user, name, value.strip() if isinstance(value, str) else value)
    user.clean_fields(exclude=[f.name for f in User._meta.fields if f.name not in fields])
    if fields:
        user.save(update_fields=sorted(fields))
    return user


def refresh_tokens_revoke(*, user: User, keep_jti: str | None = None) -> int:
    """Blacklist every live refresh token of the user except `keep_jti`; returns how many.

    Access tokens already issued stay valid until they expire (minutes)."""
    with transaction.atomic():
        _lock_user(user)
        live = OutstandingToken.objects.filter(
            user=user, expires_at__gt=django_timezone.now(), blacklistedtoken__isnull=True
        )
        if keep_jti:
            live = live.exclude(jti=keep_jti)
        ids = list(live.values_list("pk", flat=True))
        BlacklistedToken.objects.bulk_create([BlacklistedToken(token_id=pk) for pk in ids], ignore_conflicts=True)
    return len(ids)


def user_password_change(*, user: User, old_password: str, new_password: str, keep_refresh: str | None = None) -> User:
    """Change a signed-in user's password; every other refresh token of theirs is revoked.

    `keep_refresh`, the caller's own refresh token, stays valid so that this client stays signed in."""
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["The current password is not correct."]})
    _validate_new_password(new_password, user=user)
    keep_jti = _own_refresh_jti(keep_refresh, user=user) if keep_refresh else None
    with transaction.atomic():
        _lock_user(user)
        user.set_password(new_password)
        user.save(update_fields=["password"])
        revoked = refresh_tokens_revoke(user=user, keep_jti=keep_jti)
    logger.info("password changed", extra={"user_id": str(user.pk), "revoked_refresh_tokens": revoked})
    return user


class PasswordResetTokens(PasswordResetTokenGenerator):
    """Django's reset tokens (bound to the password hash and last login, so a token works once and
    dies with any password change), salted apart from invitation links."""

    key_salt = "accounts.services.PasswordResetTokens"


password_reset_tokens = PasswordResetTokens()


def password_reset_token(user: User) -> str:
    """`<user id in base64>.<token>`: what the reset link carries and the confirm endpoint takes."""
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}.{password_reset_tokens.make_token(user)}"


def password_reset_request(*, email: str) -> None:
    """Queue a reset link to `email`. The caller answers the same whether an account exists: the
    lookup happens in the task, so the request does the same work either way."""
    from accounts.tasks import send_password_reset_task

    email = User.objects.normalize_email_address(email)
    transaction.on_commit(lambda: send_password_reset_task.delay(email=email))


def password_reset_user(token: str) -> User | None:
    """The active user a reset token was made for, or None when it is malformed, expired or used."""
    uid, _, user_token = (token or "").strip().partition(".")
    try:
        pk = force_str(urlsafe_base64_decode(uid))
        user = User.objects.filter(pk=pk, is_active=True).first()
    except (ValueError, TypeError, OverflowError, ValidationError):
        return None
    if user is None or not password_reset_tokens.check_token(user, user_token):
        return None
    return user


def password_reset_confirm(*, token: str, new_password: str) -> User:
    """Set a new password with a reset token; the token is spent and every refresh token revoked."""
    invalid = ValidationError({"token": ["This reset link is invalid, expired or already used."]})
    user = password_reset_user(token)
    if user is None:
        raise invalid
    _validate_new_password(new_password, user=user)
    with transaction.atomic():
        # Checked again under the lock: of two uses of one token at once, only the first sets a password.
        user = _lock_user(user)
        if not password_reset_tokens.check_token(user, token.strip().partition(".")[2]):
            raise invalid
        user.set_password(new_password)
        user.save(update_fields=["password"])
        refresh_tokens_revoke(user=user)
    logger.info("password reset", extra={"user_id": str(user.pk)})
    return user


def _validate_new_password(password: str, *, user: User) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from None


def _own_refresh_jti(raw: str, *, user: User) -> str:
    try:
        token = RefreshToken(raw)
    except TokenError as exc:
        raise ValidationError({"refresh": [str(exc)]}) from None
    if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(user.pk):
        raise ValidationError({"refresh": ["This token belongs to another user."]})
    return token[jwt_settings.JTI_CLAIM]


def _lock_user(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


def _check_role_grant(*, organization: Organization, role: str, by: User) -> None:
    if role not in Role.values:
        raise ValidationError({"role": [f"Unknown role {role!r}."]})
    if role == Role.OWNER and not by.is_superuser:
        # Superusers run the platform (they can recover an organization); everyone else must be an owner.
        is_owner = Membership.objects.filter(organization=organization, user=by, role=Role.OWNER).exists()
        if not is_owner:
            raise ValidationError({"role": ["Only an owner can grant or take away the owner role."]})


def _ensure_another_owner(membership: Membership) -> None:
    others = (
        Membership.objects.select_for_update()
        .filter(organization_id=membership.organization_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
    )
    if not others.exists():
        raise ConflictError("An organization must keep at least one owner.")
