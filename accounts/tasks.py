"""Account background work: invitation and password reset emails, token housekeeping."""

from __future__ import annotations

from celery import shared_task

from accounts import notifications


@shared_task(
    name="accounts.send_invitation",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=60,
    max_retries=3,
    time_limit=120,
    soft_time_limit=100,
)
def send_invitation_task(*, membership_id: str, **_kwargs) -> None:
    """Email a new member the invitation (with a set-password link when they have none)."""
    notifications.invitation_send(membership_id=membership_id)


@shared_task(
    name="accounts.send_password_reset",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=60,
    max_retries=3,
    time_limit=120,
    soft_time_limit=100,
)
def send_password_reset_task(*, email: str, **_kwargs) -> None:
    """Email a password reset link to the account with this address, if there is one."""
    notifications.password_reset_send(email=email)


@shared_task(name="accounts.flush_expired_tokens", acks_late=True, time_limit=600)
def flush_expired_tokens_task(**_kwargs) -> None:
    """Drop expired refresh tokens and their blacklist rows (the table only grows otherwise)."""
    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    OutstandingToken.objects.filter(expires_at__lte=timezone.now()).delete()
