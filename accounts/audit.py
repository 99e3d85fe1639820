"""The audit trail's one writer. Services call `audit_record` inside their own transaction, next to
the change it describes, so the row commits with the change or not at all: a rolled-back action
leaves no row, and a committed one always has its row. Views, admin actions and tasks never call it
themselves; they call the services, so the API, the admin and the workers are all audited alike.

Later services (drip sequences, outgoing webhooks, API keys) call it the same way, with actions
named `<object>.<past participle>` ("sequence.activated", "webhook.created", "api_key.revoked").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from accounts.models import AuditEvent, Organization, User
from config.logging import request_id_var

# The before/after summary names the fields that changed, not whole objects; anything bigger
# is cut down to the names of its keys so one careless caller cannot bloat the table.
CHANGES_MAX_BYTES = 4096
REPR_MAX_CHARS = 200


def _bounded_changes(changes: dict[str, Any] | None) -> dict[str, Any]:
    if not changes:
        return {}
    text = json.dumps(changes, cls=DjangoJSONEncoder, ensure_ascii=False)
    if len(text.encode()) > CHANGES_MAX_BYTES:
        return {"truncated": True, "keys": sorted(str(key) for key in changes)[:50]}
    # Stored as plain JSON (dates and ids as strings), exactly as the API will show it.
    return json.loads(text)


def _object_id(obj: models.Model) -> str:
    # The id the API shows: contacts are addressed by their public id, everything else by its key.
    return str(getattr(obj, "public_id", None) or obj.pk)


def audit_record(
    *,
    organization: Organization | uuid.UUID | str,
    by: User | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the organization's audit trail; `by` is None for the system (workers, beat).

    Call it inside the service's transaction. The object's type, id and label come from `obj`
    unless given; pass `object_repr` when `str(obj)` would carry personal data."""
    actor = by if getattr(by, "pk", None) else None
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or _object_id(obj)
        if object_repr is None:
            object_repr = str(obj)
    request_id = request_id_var.get()
    return AuditEvent.objects.create(
        organization_id=getattr(organization, "pk", organization),
        actor=actor,
        actor_email=actor.email if actor is not None else "",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=(object_repr or "")[:REPR_MAX_CHARS],
        changes=_bounded_changes(changes),
        request_id="" if request_id == "-" else request_id[:80],
    )
