"""The plain-dict context templates render with. Templates never see ORM objects.

{
    "contact": {"id", "email", "first_name", "last_name", "full_name", "phone",
                "timezone", "locale", "attributes"},
    "organization": {"id", "name", "slug", "timezone", "from_name", "from_email"},
    "campaign": {"id", "name"},
    "unsubscribe_url": ..., "view_in_browser_url": ..., "callback_url": ...,
    <campaign variables>: the template's defaults, overridden by the campaign's,
}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from accounts.models import Organization
    from contacts.models import Contact

RESERVED_NAMES = frozenset(
    {"contact", "organization", "campaign", "unsubscribe_url", "view_in_browser_url", "callback_url"}
)


def contact_context(contact: Contact) -> dict[str, Any]:
    """The `contact` part of the context, from a contacts.Contact row (reads its fields only)."""
    first_name = contact.first_name or ""
    last_name = contact.last_name or ""
    return {
        "id": str(contact.public_id),
        "email": contact.email or "",
        "first_name": first_name,
        "last_name": last_name,
        "full_name": f"{first_name} {last_name}".strip(),
        "phone": contact.phone or "",
        "timezone": contact.timezone or "",
        "locale": contact.locale or "",
        "attributes": dict(contact.attributes or {}),
    }


def organization_context(organization: Organization) -> dict[str, Any]:
    return {
        "id": str(organization.pk),
        "name": organization.name,
        "slug": organization.slug,
        "timezone": organization.timezone,
        "from_name": organization.default_from_name,
        "from_email": organization.default_from_email,
    }


def message_context(
    *,
    contact: Mapping[str, Any],
    organization: Mapping[str, Any],
    campaign: Mapping[str, Any] | None = None,
    unsubscribe_url: str = "",
    view_in_browser_url: str = "",
    callback_url: str = "",
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context for one message. Variables never replace the reserved names."""
    context = {name: value for name, value in (variables or {}).items() if name not in RESERVED_NAMES}
    context.update(
        contact=dict(contact),
        organization=dict(organization),
        campaign=dict(campaign or {"id": "", "name": ""}),
        unsubscribe_url=unsubscribe_url,
        view_in_browser_url=view_in_browser_url,
        callback_url=callback_url,
    )
    return context


def sample_contact() -> dict[str, Any]:
    return {
        "id": "00000000-0000-0000-0000-000000000000",
        "email": "jane.doe@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "full_name": "Jane Doe",
        "phone": "+31612345678",
        "timezone": "",
        "locale": "en",
        "attributes": {},
    }


def preview_context(
    *,
    organization: Organization,
    variables: Mapping[str, Any] | None = None,
    contact: Contact | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A context for previews and test sends: a real or sample contact, placeholder links.

    `overrides` replace top-level names; for `contact`, `organization` and `campaign`
    they are merged into the sample values, so `{"contact": {"first_name": "Ann"}}` works.
    """
    base_url = settings.PUBLIC_BASE_URL
    context = message_context(
        contact=contact_context(contact) if contact is not None else sample_contact(),
        organization=organization_context(organization),
        campaign={"id": "", "name": "Preview"},
        unsubscribe_url=f"{base_url}/u/preview",
        view_in_browser_url=f"{base_url}/v/preview",
        callback_url=f"{base_url}/c/preview",
        variables=variables,
    )
    for name, value in (overrides or {}).items():
        if name in ("contact", "organization", "campaign") and isinstance(value, Mapping):
            context[name] = {**context[name], **value}
        else:
            context[name] = value
    return context
