"""Emails the accounts app sends to people (not marketing mail)."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Membership, User

logger = logging.getLogger(__name__)


def invitation_link(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return f"{settings.PUBLIC_BASE_URL}/invite/accept?uid={uid}&token={token}"


def invitation_send(*, membership_id: str) -> bool:
    """Send the invitation for one membership; returns False when it no longer exists."""
    membership = (
        Membership.objects.select_related("user", "organization", "invited_by").filter(pk=membership_id).first()
    )
    if membership is None:
        logger.info("invitation skipped: membership gone", extra={"membership_id": membership_id})
        return False
    user, organization = membership.user, membership.organization
    inviter = membership.invited_by.email if membership.invited_by else "An administrator"
    lines = [
        f"{inviter} added you to {organization.name} on Campaign Central as {membership.get_role_display().lower()}.",
        "",
    ]
    if user.has_usable_password():
        lines.append(f"Sign in with {user.email} to get started.")
    else:
        lines += [
            "Choose a password to activate your account:",
            invitation_link(user),
            "",
            f"The link can be used once and expires in {settings.PASSWORD_RESET_TIMEOUT // 86400} days.",
        ]
    EmailMessage(
        subject=f"You have been invited to {organization.name}",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    ).send()
    logger.info("invitation sent", extra={"membership_id": membership_id})
    return True


# One reset mail per address per this many seconds, however many requests come in (no mail bombing).
PASSWORD_RESET_MAIL_INTERVAL_SECONDS = 60


def password_reset_link(user: User) -> str:
    from accounts.services import password_reset_token

    return f"{settings.PUBLIC_BASE_URL}/password-reset/confirm?{urlencode({'token': password_reset_token(user)})}"


def password_reset_send(*, email: str) -> bool:
    """Mail a one-time reset link to the active user with this address; False when there is none
    (or one was mailed moments ago)."""
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None:
        logger.info("password reset skipped: no active user")
        return False
    if not cache.add(f"password-reset-mail:{user.pk}", 1, timeout=PASSWORD_RESET_MAIL_INTERVAL_SECONDS):
        logger.info("password reset skipped: mailed moments ago", extra={"user_id": str(user.pk)})
        return False
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    lines = [
        "Someone asked to reset the password of your Campaign Central account.",
        "",
        "Choose a new password with this link:",
        password_reset_link(user),
        "",
        f"The link can be used once and expires in {hours} hours.",
        "If you did not ask for this, ignore this email: your password stays as it is.",
    ]
    mail = EmailMessage(
        subject="Reset your Campaign Central password",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )
    try:
        mail.send()
    except Exception:
        cache.delete(f"password-reset-mail:{user.pk}")  # the task's retry may send it
        raise
    logger.info("password reset mailed", extra={"user_id": str(user.pk)})
    return True
