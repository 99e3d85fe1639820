import pytest
from django.utils import timezone

from tracking import services
from tracking.models import EventType
from tracking.records import EventRecord, hit_key
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db


def test_a_message_lists_its_events_and_other_organizations_get_404(member_client, django_assert_max_num_queries):
    client, _user, organization = member_client("viewer")
    message = SentMessageFactory(campaign__organization=organization)
    services.event_ingest_batch(
        records=[
            EventRecord(
                type=kind,
                occurred_at=timezone.now(),
                dedupe_key=hit_key(),
                message_id=message.pk,
                user_agent="Mozilla/5.0 (X11) Firefox/128.0",
            )
            for kind in (EventType.DELIVERED, EventType.OPENED, EventType.CLICKED)
        ]
    )
    foreign = SentMessageFactory()

    with django_assert_max_num_queries(8):
        response = client.get(f"/api/v1/messages/{message.pk}/events")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert {row["type"] for row in body["results"]} == {"delivered", "opened", "clicked"}
    assert all(row["message"] == str(message.pk) for row in body["results"])
    assert client.get(f"/api/v1/messages/{foreign.pk}/events").status_code == 404
    assert client.get("/api/v1/messages/999999999/events").status_code == 404


def test_events_need_authentication(client):
    message = SentMessageFactory()
    assert client.get(f"/api/v1/messages/{message.pk}/events").status_code == 401
