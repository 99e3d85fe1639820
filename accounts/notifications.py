"""Emails the accounts app sends to people (not marketing mail)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMessage
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Membership

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
