"""The webhooks endpoints of the API contract: CRUD, the secret shown once, validation, tenancy, roles."""

import pytest

from accounts.models import AuditEvent, Role
from webhooks import targets
from webhooks.models import Delivery, DeliveryStatus, Endpoint
from webhooks.tests.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://1.1.1.1/hooks/campaign-central"


@pytest.fixture
def owner(member_client):
    return member_client(Role.OWNER)


def create(client, **overrides):
    body = {"url": PUBLIC_URL, "events": ["message.opened", "contact.created"], "description": "CRM", **overrides}
    return client.post("/api/v1/webhooks/", body, format="json")


def test_create_shows_the_secret_once_and_never_again(owner):
    client, user, org = owner
    response = create(client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["contact.created", "message.opened"]
    endpoint = Endpoint.objects.get(pk=body["id"])
    assert (endpoint.organization, endpoint.secret, endpoint.url) == (org, body["secret"], PUBLIC_URL)

    listed = client.get("/api/v1/webhooks/").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert "secret" not in listed[0]
    detail = client.get(f"/api/v1/webhooks/{body['id']}/")
    assert detail.status_code == 200
    assert "secret" not in detail.json()
    assert body["secret"] not in detail.content.decode()

    event = AuditEvent.objects.get(organization=org, action="webhook.created")
    assert (event.actor, event.object_id) == (user, body["id"])
    assert body["secret"] not in str(event.changes)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://1.1.1.1/hooks", "Only http:// and https://"),
        ("http://127.0.0.1/hooks", "private or reserved address"),
        ("http://10.0.0.5/hooks", "private or reserved address"),
        ("http://localhost:8000/hooks", "private or reserved address"),
        ("http://169.254.169.254/latest/meta-data", "private or reserved address"),
        ("http://[::1]/hooks", "private or reserved address"),
        ("http://[::ffff:192.168.1.1]/hooks", "private or reserved address"),
        ("http://224.0.0.1/hooks", "private or reserved address"),
        ("https://user:pass@1.1.1.1/hooks", "Credentials"),
        ("not a url", "Only http:// and https://"),
    ],
)
def test_a_url_that_may_not_receive_webhooks_is_400_naming_url(owner, url, reason):
    client, _user, _org = owner
    response = create(client, url=url)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["url"]
    assert reason in response.json()["url"][0]
    assert not Endpoint.objects.exists()


def test_private_targets_are_allowed_when_the_setting_says_so(owner, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    client, _user, _org = owner
    assert create(client, url="http://127.0.0.1:9/hooks").status_code == 201
    assert create(client, url="ftp://127.0.0.1/hooks").status_code == 400


@pytest.mark.parametrize("event_types", [["message.opened", "message.teleported"], [], "message.opened"])
def test_unknown_or_no_event_types_are_400_naming_events(owner, event_types):
    client, _user, _org = owner
    response = create(client, events=event_types)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["events"]
    assert not Endpoint.objects.exists()


def test_update_changes_fields_revalidates_and_is_audited(owner):
    client, _user, org = owner
    endpoint = EndpointFactory(organization=org, events=["message.opened"])
    response = client.patch(
        f"/api/v1/webhooks/{endpoint.pk}", {"events": ["message.clicked"], "description": "BI"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["events"], response.json()["description"]) == (["message.clicked"], "BI")
    event = AuditEvent.objects.get(organization=org, action="webhook.updated")
    assert event.changes == {
        "before": {"events": ["message.opened"], "description": ""},
        "after": {"events": ["message.clicked"], "description": "BI"},
    }
    refused = client.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"url": "http://192.168.0.10/"}, format="json")
    assert refused.status_code == 400
    assert list(refused.json()) == ["url"]
    endpoint.refresh_from_db()
    assert endpoint.url.startswith("https://1.1.1.1/")
    assert client.put(f"/api/v1/webhooks/{endpoint.pk}/", {}, format="json").status_code == 405


def test_disabling_fails_pending_deliveries_and_enabling_starts_a_clean_count(owner):
    client, _user, org = owner
    endpoint = EndpointFactory(organization=org, failure_streak=7)
    pending = DeliveryFactory(endpoint=endpoint)
    assert client.patch(f"/api/v1/webhooks/{endpoint.pk}", {"enabled": False}, format="json").status_code == 200
    pending.refresh_from_db()
    assert (pending.status, pending.last_error) == (DeliveryStatus.FAILED, "The endpoint was disabled.")
    body = client.get(f"/api/v1/webhooks/{endpoint.pk}").json()
    assert body["enabled"] is False
    assert body["disabled_reason"]
    assert client.post(f"/api/v1/webhooks/{endpoint.pk}/test").status_code == 409

    body = client.patch(f"/api/v1/webhooks/{endpoint.pk}", {"enabled": True}, format="json").json()
    assert (body["enabled"], body["disabled_at"], body["disabled_reason"], body["failure_streak"]) == (
        True,
        None,
        "",
        0,
    )


def test_delete_removes_the_endpoint_and_is_audited(owner):
    client, _user, org = owner
    endpoint = EndpointFactory(organization=org)
    DeliveryFactory(endpoint=endpoint)
    assert client.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 204
    assert not Endpoint.objects.exists()
    assert not Delivery.objects.exists()
    assert AuditEvent.objects.get(organization=org, action="webhook.deleted").object_id == str(endpoint.pk)


def test_deliveries_are_listed_newest_first_with_status_attempts_and_response(owner, django_assert_max_num_queries):
    client, _user, org = owner
    endpoint = EndpointFactory(organization=org)
    older = DeliveryFactory(endpoint=endpoint, status=DeliveryStatus.DELIVERED, attempts=1, last_response_code=200)
    newer = DeliveryFactory(endpoint=endpoint, attempts=2, last_response_code=503, last_error="HTTP 503")
    DeliveryFactory()  # another endpoint's
    with django_assert_max_num_queries(8):
        response = client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?page_size=1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    [row] = body["results"]
    assert (row["id"], row["status"], row["attempts"], row["response_code"], row["type"]) == (
        str(newer.pk),
        "pending",
        2,
        503,
        "message.opened",
    )
    assert row["created_at"]
    second = client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?page_size=1&page=2").json()["results"]
    assert [item["id"] for item in second] == [str(older.pk)]


def test_test_queues_a_webhook_test_delivery_sent_at_once(
    owner, settings, receiver, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    client, _user, org = owner
    endpoint = EndpointFactory(organization=org, url=receiver.url("/test-hook"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/webhooks/{endpoint.pk}/test")
    assert response.status_code == 202, response.content
    [got] = receiver.requests()
    assert got.path == "/test-hook"
    delivery = Delivery.objects.get(pk=response.json()["id"])
    assert (delivery.type, delivery.status, delivery.attempts) == ("webhook.test", DeliveryStatus.DELIVERED, 1)
    assert got.headers["webhook-id"] == delivery.event_id


def test_another_organizations_endpoints_answer_404(owner, member_client):
    client, _user, _org = owner
    _other_client, _other_user, other = member_client(Role.OWNER)
    foreign = EndpointFactory(organization=other)
    DeliveryFactory(endpoint=foreign)
    base = f"/api/v1/webhooks/{foreign.pk}"
    assert client.get(base).status_code == 404
    assert client.patch(base, {"description": "mine now"}, format="json").status_code == 404
    assert client.get(f"{base}/deliveries").status_code == 404
    assert client.post(f"{base}/test").status_code == 404
    assert client.delete(base).status_code == 404
    assert client.get("/api/v1/webhooks/").json()["results"] == []
    foreign.refresh_from_db()
    assert foreign.description == ""
    assert Delivery.objects.filter(endpoint=foreign).count() == 1


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT, Role.VIEWER])
def test_only_owners_and_admins_manage_webhooks(member_client, role):
    client, _user, org = member_client(role)
    endpoint = EndpointFactory(organization=org)
    assert client.get("/api/v1/webhooks/").status_code == 403
    assert client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries").status_code == 403
    assert create(client).status_code == 403
    assert client.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 403
    assert Endpoint.objects.count() == 1


def test_an_admin_manages_webhooks(member_client):
    client, _user, _org = member_client(Role.ADMIN)
    assert create(client).status_code == 201
    assert len(client.get("/api/v1/webhooks/").json()["results"]) == 1


def test_address_check_covers_every_non_public_range():
    for address in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1", "0.0.0.0"):  # noqa: S104
        assert not targets.is_public(address), address
    for address in ("224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "ff02::1"):
        assert not targets.is_public(address), address
    for address in ("1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"):
        assert targets.is_public(address), address
