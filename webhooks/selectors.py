"""Reads of the webhooks app."""

from __future__ import annotations

from django.db.models import QuerySet

from webhooks.models import Delivery, Endpoint


def endpoint_deliveries(*, endpoint: Endpoint) -> QuerySet[Delivery]:
    """An endpoint's deliveries, newest first (served by the (endpoint, id) index)."""
    return Delivery.objects.filter(endpoint=endpoint).order_by("-id")
