"""The campaign endpoints: configuration, state changes, dry-run, expansion on launch."""

import pytest

from accounts.models import Role
from campaigns import services
from campaigns.models import Campaign, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, sends_from
from contacts.models import Contact
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/campaigns/"


@pytest.fixture
def manager(member_client):
    client, _, org = member_client(Role.MANAGER)
    sends_from(org, "news@mail.example.com")
    return client, org


@pytest.fixture
def audience(manager):
    _, org = manager
    vip = TagFactory(organization=org, name="vip")
    people = [ContactFactory(organization=org, tags=[vip]) for _ in range(5)]
    ContactFactory(organization=org, tags=[vip], status="unsubscribed")
    return people


def create(client, org, **extra):
    template = EmailTemplateFactory(organization=org)
    body = {"name": "Spring sale", "channel": "email", "template": str(template.pk), "audience": {"tags": ["vip"]}}
    body.update(extra)
    return client.post(CAMPAIGNS, body, format="json")


def test_create_and_read_a_draft(manager):
    client, org = manager
    response = create(client, org, throttle={"max_per_hour": 100}, sending_domains=["Mail.Example.com"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft"
    assert body["sending_domains"] == ["mail.example.com"]
    assert client.get(f"{CAMPAIGNS}{body['id']}/").json()["name"] == "Spring sale"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"audience": {"lists": ["not-an-id"]}}, "audience.lists"),
        ({"audience": {"segment": "00000000-0000-0000-0000-000000000000"}}, "audience.segment"),
        ({"schedule": {"window": {"days": [0], "start": "25:00", "end": "17:00"}}}, "schedule.window.start"),
        ({"throttle": {"max_per_hour": -5}}, "throttle.max_per_hour"),
        ({"sending_domains": ["not a domain"]}, "sending_domains[0]"),
        ({"audience": "everyone"}, "audience"),
    ],
)
def test_bad_configuration_is_400_naming_the_field(manager, extra, field):
    client, org = manager
    response = create(client, org, **extra)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Campaign.objects.filter(organization=org).exists()


def test_another_organizations_template_or_campaign_is_refused(manager):
    client, _ = manager
    foreign_template = EmailTemplateFactory()
    response = client.post(
        CAMPAIGNS, {"name": "x", "template": str(foreign_template.pk), "audience": {"tags": ["vip"]}}, format="json"
    )
    assert response.status_code == 400
    assert "template" in response.json()
    foreign = CampaignFactory()
    for method, url in [
        ("get", f"{CAMPAIGNS}{foreign.pk}/"),
        ("patch", f"{CAMPAIGNS}{foreign.pk}/"),
        ("delete", f"{CAMPAIGNS}{foreign.pk}/"),
        ("post", f"{CAMPAIGNS}{foreign.pk}/launch/"),
        ("post", f"{CAMPAIGNS}{foreign.pk}/dry-run/"),
    ]:
        assert getattr(client, method)(url, {}, format="json").status_code == 404, url
    foreign.refresh_from_db()
    assert foreign.status == "draft"


def test_viewer_reads_but_cannot_launch(member_client):
    client, _, org = member_client(Role.VIEWER)
    campaign = CampaignFactory(organization=org)
    assert client.get(f"{CAMPAIGNS}{campaign.pk}/").status_code == 200
    assert client.post(f"{CAMPAIGNS}{campaign.pk}/launch/").status_code == 403


def test_dry_run_counts_and_schedules_without_writing(manager, audience):
    client, org = manager
    campaign_id = create(client, org, throttle={"per_domain_interval_minutes": 10}).json()["id"]
    response = client.post(f"{CAMPAIGNS}{campaign_id}/dry-run")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["recipients"] == 5
    assert body["excluded"] == {"unsubscribed": 1}
    assert body["per_domain"] == [
        {"domain": "mail.example.com", "count": 5, "from_email": "news@mail.example.com", "verified": True}
    ]
    assert sum(day["count"] for day in body["per_day"]) == 5
    assert body["first_send_at"] < body["last_send_at"]
    assert not Message.objects.exists()
    assert Campaign.objects.get(pk=campaign_id).status == "draft"


def test_launch_expands_and_queues_then_only_drafts_change(manager, audience, django_capture_on_commit_callbacks):
    client, org = manager
    campaign_id = create(client, org).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        launched = client.post(f"{CAMPAIGNS}{campaign_id}/launch")
    assert launched.status_code == 200, launched.content
    assert launched.json()["status"] == "running"
    campaign = Campaign.objects.get(pk=campaign_id)
    assert campaign.template_version is not None
    assert campaign.recipients == 5
    assert campaign.excluded == {"unsubscribed": 1}
    messages = Message.objects.filter(campaign=campaign)
    assert messages.count() == 5
    assert set(messages.values_list("status", flat=True)) == {MessageStatus.QUEUED}
    assert set(messages.values_list("to_address", flat=True)) == {c.email for c in audience}
    assert set(messages.values_list("sending_domain", flat=True)) == {"mail.example.com"}

    assert client.post(f"{CAMPAIGNS}{campaign_id}/launch").status_code == 409
    assert client.patch(f"{CAMPAIGNS}{campaign_id}/", {"name": "renamed"}, format="json").status_code == 409
    assert client.delete(f"{CAMPAIGNS}{campaign_id}/").status_code == 409
    assert Campaign.objects.get(pk=campaign_id).name == "Spring sale"


def test_pause_resume_cancel_and_illegal_moves(manager, audience, django_capture_on_commit_callbacks):
    client, org = manager
    campaign_id = create(client, org).json()["id"]
    assert client.post(f"{CAMPAIGNS}{campaign_id}/pause").status_code == 409  # a draft cannot pause
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{CAMPAIGNS}{campaign_id}/launch")
    assert client.post(f"{CAMPAIGNS}{campaign_id}/pause").json()["status"] == "paused"
    assert client.post(f"{CAMPAIGNS}{campaign_id}/pause").status_code == 409
    assert client.post(f"{CAMPAIGNS}{campaign_id}/resume").json()["status"] == "running"
    cancelled = client.post(f"{CAMPAIGNS}{campaign_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert set(Message.objects.filter(campaign_id=campaign_id).values_list("status", flat=True)) == {
        MessageStatus.CANCELLED
    }
    assert client.post(f"{CAMPAIGNS}{campaign_id}/resume").status_code == 409


def test_expansion_is_idempotent_and_chunked(manager, audience, monkeypatch):
    _, org = manager
    monkeypatch.setattr(services, "EXPAND_CHUNK_IDS", 2)
    campaign = CampaignFactory(organization=org, status="running")
    assert services.campaign_expand(campaign=campaign) == 5
    assert services.campaign_expand(campaign=campaign) == 5
    assert Message.objects.filter(campaign=campaign).count() == 5
    assert services.campaign_plan(campaign=campaign) == 5
    assert services.campaign_plan(campaign=campaign) == 0


def test_an_expansion_that_meets_rows_written_meanwhile_finishes_without_doubles(manager, audience, monkeypatch):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the plain first insert is PostgreSQL's")
    _, org = manager
    campaign = CampaignFactory(organization=org, status="running")
    first = Contact.objects.filter(organization=org).order_by("id").first()
    # Another expansion of the same campaign wrote one message after this one looked for any.
    Message.objects.create(
        organization=org, campaign=campaign, step=0, contact=first, to_address=first.email, status=MessageStatus.PLANNED
    )
    monkeypatch.setattr(services, "_chunk_has_messages", lambda *args: False)

    assert services.campaign_expand(campaign=campaign) == 5
    assert Message.objects.filter(campaign=campaign, contact=first).count() == 1
    assert Message.objects.filter(campaign=campaign).count() == 5


def test_a_future_start_makes_the_campaign_scheduled(manager, audience, django_capture_on_commit_callbacks):
    client, org = manager
    campaign_id = create(client, org, schedule={"start_at": "2099-01-05T09:00:00+01:00"}).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{CAMPAIGNS}{campaign_id}/launch")
    assert response.json()["status"] == "scheduled"
    first = Message.objects.filter(campaign_id=campaign_id).order_by("scheduled_at").first()
    assert first.scheduled_at.isoformat() == "2099-01-05T08:00:00+00:00"


def test_messages_list_and_filters(manager, audience, django_capture_on_commit_callbacks):
    client, org = manager
    campaign_id = create(client, org).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{CAMPAIGNS}{campaign_id}/launch")
    body = client.get("/api/v1/messages/", {"campaign": campaign_id, "status": "queued"}).json()
    assert body["count"] == 5
    first = body["results"][0]
    assert first["status"] == "queued"
    assert first["channel"] == "email"
    assert client.get("/api/v1/messages/", {"contact": str(audience[0].public_id)}).json()["count"] == 1
    foreign = CampaignFactory()
    assert client.get("/api/v1/messages/", {"campaign": str(foreign.pk)}).json()["count"] == 0
