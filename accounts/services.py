"""Account writes: registration, invitations and role changes."""

from __future__ import annotations

import logging

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
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
