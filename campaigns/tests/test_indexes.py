"""The queries dispatch runs every few seconds read indexes, not the whole message table (PostgreSQL)."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Message, MessageStatus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's query plans"),
]


def plan_of(queryset) -> str:
    # With sequential scans priced out, the plan shows whether an index can answer the query at all.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        return queryset.explain()


@pytest.mark.parametrize("status", [MessageStatus.CLAIMED, MessageStatus.SENDING])
def test_settling_expired_leases_reads_the_partial_lease_index(status):
    expired = Message.objects.filter(status=status, lease_until__lt=timezone.now())
    plan = plan_of(expired)
    assert "campaigns_message_leased" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_the_lease_index_holds_only_claimed_and_sending_messages():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'campaigns_message_leased'")
        [(definition,)] = cursor.fetchall()
    assert "(lease_until)" in definition
    assert f"ARRAY[{MessageStatus.CLAIMED}, {MessageStatus.SENDING}]" in definition
