import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, UserFactory
from tracking import services
from tracking.models import EventType, MessageEvent
from tracking.records import EventRecord, hit_key
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db


def test_the_event_log_is_read_only_and_scoped(client):
    mine, theirs = SentMessageFactory(), SentMessageFactory()
    services.event_ingest_batch(
        records=[
            EventRecord(type=EventType.DELIVERED, occurred_at=timezone.now(), dedupe_key=hit_key(), message_id=m.pk)
            for m in (mine, theirs)
        ]
    )
    staff = UserFactory(is_staff=True)
    MembershipFactory(user=staff, organization=mine.organization, role=Role.ADMIN)
    client.force_login(staff)
    event = MessageEvent.objects.get(message=mine)

    other = MessageEvent.objects.get(message=theirs)

    listing = client.get("/admin/tracking/messageevent/").content.decode()
    assert f"/admin/tracking/messageevent/{event.pk}/change/" in listing
    assert f"/admin/tracking/messageevent/{other.pk}/change/" not in listing
    assert client.get(f"/admin/tracking/messageevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/tracking/messageevent/add/").status_code == 403
    assert client.get(f"/admin/tracking/messageevent/{other.pk}/change/").status_code in (302, 403, 404)


def test_an_organization_admin_edits_its_tracking_settings(client):
    membership = MembershipFactory(user=UserFactory(is_staff=True), role=Role.OWNER)
    settings = services.tracking_settings_get(organization_id=membership.organization_id)
    client.force_login(membership.user)

    page = client.get(f"/admin/tracking/trackingsettings/{settings.pk}/change/")

    assert page.status_code == 200
    assert "complaint_rate_threshold" in page.content.decode()
