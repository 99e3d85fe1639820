"""Retention of the event log: old events go in batches, never beyond what the caller has read.

Analytics calls this after rolling events up (it passes its watermark), so nothing is deleted that
the daily tables do not hold yet.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, models

from accounts.models import Organization


def events_prune(*, older_than: datetime, up_to_id: int, batch_size: int = 10_000) -> int:
    """Delete message events that happened before `older_than` with ids up to `up_to_id`; returns how
    many. One organization at a time, so each batch is a range of the (organization, occurred_at) index."""
    deleted = 0
    organization_ids: list = [*Organization.objects.values_list("pk", flat=True), None]
    for organization_id in organization_ids:
        if organization_id is None:
            org_sql, org_params = "organization_id IS NULL", []
        else:
            org_sql = "organization_id = %s"
            org_params = [models.UUIDField().get_db_prep_value(organization_id, connection)]
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM tracking_messageevent WHERE id IN (SELECT id FROM tracking_messageevent "  # noqa: S608 - fixed SQL
                    f"WHERE {org_sql} AND occurred_at < %s AND id <= %s LIMIT %s)",
                    [*org_params, connection.ops.adapt_datetimefield_value(older_than), up_to_id, batch_size],
                )
                count = max(cursor.rowcount, 0)
            deleted += count
            if count < batch_size:
                break
    return deleted
