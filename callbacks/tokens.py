"""Signed links to the public callback form, for campaign emails (`{{ callback_url }}`).

A token carries the organization id, the contact's public id and optionally the
campaign id, signed with SECRET_KEY and a salt of its own (so no other signed
value of the project is accepted here) and valid for CALLBACK_FORM_MAX_AGE
(30 days unless set in settings). Anything else - forged, tampered, expired,
malformed - is a BadToken, which the form answers with 404.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing

SALT = "callbacks.public-form"
DEFAULT_MAX_AGE = timedelta(days=30)


class BadToken(Exception):
    """The token is not one we signed, or it expired."""


@dataclass(frozen=True)
class FormToken:
    organization_id: uuid.UUID
    contact_public_id: uuid.UUID
    campaign_id: uuid.UUID | None


def max_age() -> timedelta:
    return getattr(settings, "CALLBACK_FORM_MAX_AGE", DEFAULT_MAX_AGE)


def make_token(*, organization_id, contact_public_id, campaign_id=None) -> str:
    payload = {"o": str(organization_id), "c": str(contact_public_id)}
    if campaign_id:
        payload["m"] = str(campaign_id)
    return signing.dumps(payload, salt=SALT, compress=True)


def read_token(token: str) -> FormToken:
    """The token's contents; raises BadToken for anything we did not sign or that expired."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=max_age())
        return FormToken(
            organization_id=uuid.UUID(payload["o"]),
            contact_public_id=uuid.UUID(payload["c"]),
            campaign_id=uuid.UUID(payload["m"]) if payload.get("m") else None,
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise BadToken from None


def callback_url(*, organization_id, contact_public_id, campaign_id=None) -> str:
    """The absolute link to the contact's callback form (PUBLIC_BASE_URL/callback/<token>)."""
    token = make_token(organization_id=organization_id, contact_public_id=contact_public_id, campaign_id=campaign_id)
    return f"{settings.PUBLIC_BASE_URL}/callback/{token}"
