"""Writes of the webhooks app: endpoints (audited) and test deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from config.errors import ConflictError
from webhooks import events, targets
from webhooks.models import Delivery, DeliveryStatus, Endpoint
from webhooks.signing import new_secret

AUDITED_FIELDS = ("url", "events", "description", "enabled")


def endpoint_validate(*, url: str | None = None, event_types: list[str] | None = None) -> None:
    """Raise ValidationError naming the field: a URL that may not receive webhooks (not http(s), or
    resolving to a private address), no or unknown event types."""
    errors: dict[str, list[str]] = {}
    if url is not None:
        try:
            targets.check_url(url)
        except targets.UnsafeTarget as exc:
            errors["url"] = [str(exc)]
    if event_types is not None:
        unknown = sorted(set(event_types) - set(events.EVENT_TYPES))
        if unknown:
            errors["events"] = [f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(events.EVENT_TYPES)}."]
        elif not event_types:
            errors["events"] = ["Subscribe to at least one event type."]
    if errors:
        raise ValidationError(errors)


def endpoint_create(
    *, organization: Organization, url: str, event_types: list[str], description: str = "", by: User | None
) -> Endpoint:
    """Register an endpoint with a new signing secret (readable on the returned object only now)."""
    endpoint_validate(url=url, event_types=event_types)
    with transaction.atomic():
        endpoint = Endpoint.objects.create(
            organization=organization,
            url=url.strip(),
            events=sorted(set(event_types)),
            description=description,
            secret=new_secret(),
            created_by=by if getattr(by, "pk", None) else None,
        )
        audit_record(
            organization=organization,
            by=by,
            action="webhook.created",
            obj=endpoint,
            changes={"after": {"url": endpoint.url, "events": endpoint.events, "description": description}},
        )
    return endpoint


def endpoint_update(*, endpoint: Endpoint, by: User | None, **changes: Any) -> Endpoint:
    """Change url, events, description or enabled. Enabling again starts a clean failure count;
    disabling fails the pending deliveries."""
    unknown = set(changes) - set(AUDITED_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if "events" in changes:
        changes["events"] = list(changes["events"])
    endpoint_validate(url=changes.get("url"), event_types=changes.get("events"))
    if "events" in changes:
        changes["events"] = sorted(set(changes["events"]))
    now = timezone.now()
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = {name: getattr(endpoint, name) for name in changes if getattr(endpoint, name) != changes[name]}
        if not before:
            return endpoint
        was_enabled = endpoint.enabled
        for name, value in changes.items():
            setattr(endpoint, name, value)
        if endpoint.enabled and not was_enabled:
            endpoint.disabled_at, endpoint.disabled_reason = None, ""
            endpoint.failure_streak, endpoint.failing_since = 0, None
        elif was_enabled and not endpoint.enabled:
            endpoint.disabled_at, endpoint.disabled_reason = now, "Disabled by a member."
            _fail_pending(endpoint)
        endpoint.save()
        audit_record(
            organization=endpoint.organization_id,
            by=by,
            action="webhook.updated",
            obj=endpoint,
            changes={"before": before, "after": {name: changes[name] for name in before}},
        )
    return endpoint


def endpoint_delete(*, endpoint: Endpoint, by: User | None) -> None:
    """Remove an endpoint and its delivery log."""
    with transaction.atomic():
        audit_record(
            organization=endpoint.organization_id,
            by=by,
            action="webhook.deleted",
            obj=endpoint,
            changes={"before": {"url": endpoint.url, "events": endpoint.events}},
        )
        endpoint.delete()


def _fail_pending(endpoint: Endpoint) -> int:
    return Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="The endpoint was disabled."
    )


def endpoint_disable(*, endpoint: Endpoint, reason: str, by: User | None, now: datetime | None = None) -> Endpoint:
    """Stop delivering to an endpoint that keeps failing: disabled with the reason, pending
    deliveries failed, recorded in the audit trail."""
    now = now or timezone.now()
    with transaction.atomic():
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = reason[:300]
        endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason", "updated_at"])
        _fail_pending(endpoint)
        audit_record(
            organization=endpoint.organization_id,
            by=by,
            action="webhook.disabled",
            obj=endpoint,
            changes={"reason": endpoint.disabled_reason},
        )
    return endpoint


def endpoint_send_test(*, endpoint: Endpoint, by: User | None) -> Delivery:
    """Queue a `webhook.test` delivery to the endpoint, sent at once."""
    if not endpoint.enabled:
        raise ConflictError("The endpoint is disabled; enable it before sending a test.")
    now = timezone.now()
    event_id = f"evt_{uuid.uuid4().hex}"
    payload = {
        "id": event_id,
        "type": events.WEBHOOK_TEST,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "organization": str(endpoint.organization_id),
        "data": {
            "endpoint": str(endpoint.pk),
            "message": "A test event: this endpoint receives Campaign Central's webhooks.",
            "by": getattr(by, "email", None),
        },
    }
    with transaction.atomic():
        delivery = Delivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            type=events.WEBHOOK_TEST,
            payload=payload,
            next_attempt_at=now,
            created_at=now,
        )
        transaction.on_commit(_deliver_now)
    return delivery


def _deliver_now() -> None:
    from webhooks.tasks import deliver_task

    deliver_task.delay()
