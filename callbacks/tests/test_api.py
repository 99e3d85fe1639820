"""The callbacks endpoints of the API contract: create, list, assign, status, complete, activities."""

import json
from datetime import UTC, datetime, time, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from callbacks import services
from callbacks.models import ActivityAction, CallbackActivity, CallbackRequest, CallbackSettings, CallbackStatus
from callbacks.serializers import CallbackSerializer
from callbacks.sla import MAX_DAYS, add_business_hours
from callbacks.tests.factories import CallbackRequestFactory, agent_of
from campaigns.tests.factories import CampaignFactory
from conftest import bearer_client
from contacts.models import ContactEvent
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

S = CallbackStatus


@pytest.fixture
def manager(member_client):
    return member_client(Role.MANAGER)


def create_payload(contact, /, **overrides):
    return {"contact": str(contact.public_id), "reason": "Pricing question", "phone": "+31 6 12345678", **overrides}


# --- create ---------------------------------------------------------------------------------------


def test_create_returns_the_computed_score_priority_and_sla(manager):
    client, user, org = manager
    contact = ContactFactory(organization=org, attributes={"lifetime_value": 2500}, timezone="America/New_York")
    ContactEvent.objects.create(
        organization=org, contact=contact, name="clicked", occurred_at=timezone.now() - timedelta(hours=2)
    )
    campaign_id = CampaignFactory(organization=org).pk

    response = client.post(
        "/api/v1/callbacks/",
        create_payload(
            contact,
            campaign=str(campaign_id),
            urgency="asap",
            preferred_time={"start": "2025-03-03T14:00", "end": "2025-03-03T16:00"},
        ),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["priority_score"] == 80  # value 30 + clicked within a day 20 + asap 30
    assert body["priority"] == "urgent"
    assert body["status"] == "new"
    assert body["phone"] == "+31612345678"
    assert body["contact"] == str(contact.public_id)
    assert body["campaign"] == str(campaign_id)
    assert body["source"] == "api"
    assert body["overdue"] is False
    assert body["preferred_time"] == {
        "start": "2025-03-03T14:00:00-05:00",
        "end": "2025-03-03T16:00:00-05:00",
        "timezone": "America/New_York",
    }
    callback = CallbackRequest.objects.get(pk=body["id"])
    settings = services.callback_settings_get(organization_id=org.pk)
    calendar = services.business_calendar(settings=settings, organization=org)
    assert callback.sla_due_at == add_business_hours(callback.created_at, 2, calendar)
    assert datetime.fromisoformat(body["sla_due_at"]) == callback.sla_due_at
    created = CallbackActivity.objects.get(callback=callback)
    assert (created.action, created.actor, created.data["parts"]["urgency"]) == (ActivityAction.CREATED, user, 30)


def test_create_uses_the_contacts_phone_when_none_is_given(manager):
    client, _, org = manager
    contact = ContactFactory(organization=org, phone="+31201234567")
    response = client.post("/api/v1/callbacks/", {"contact": str(contact.public_id)}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["phone"] == "+31201234567"
    assert response.json()["priority"] == "low"


@pytest.mark.parametrize("phone", ["12345", "+31 6", "call me maybe", "+999 123 456 789"])
def test_an_invalid_phone_is_400_naming_phone(manager, phone):
    client, _, org = manager
    contact = ContactFactory(organization=org)
    response = client.post("/api/v1/callbacks/", create_payload(contact, phone=phone), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["phone"]
    assert not CallbackRequest.objects.exists()


def test_no_phone_anywhere_is_400_naming_phone(manager):
    client, _, org = manager
    contact = ContactFactory(organization=org, phone=None)
    response = client.post("/api/v1/callbacks/", create_payload(contact, phone=""), format="json")
    assert response.status_code == 400
    assert "phone" in response.json()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"contact": "not-a-uuid"}, "contact"),
        ({"preferred_time": {"start": "2025-03-03T16:00", "end": "2025-03-03T14:00"}}, "preferred_time"),
        ({"preferred_time": {"start": "tomorrow"}}, "preferred_time"),
        ({"preferred_time": "afternoon"}, "preferred_time"),
        ({"urgency": "yesterday"}, "urgency"),
        ({"source": "public_form"}, "source"),
        ({"reason": "x" * 2001}, "reason"),
    ],
)
def test_bad_input_is_400_naming_the_field(manager, payload, field):
    client, _, org = manager
    contact = ContactFactory(organization=org)
    response = client.post("/api/v1/callbacks/", create_payload(contact, **payload), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not CallbackRequest.objects.exists()


def test_a_contact_of_another_organization_is_unknown(manager):
    client, _, _ = manager
    stranger = ContactFactory(organization=OrganizationFactory())
    response = client.post("/api/v1/callbacks/", create_payload(stranger), format="json")
    assert response.status_code == 400
    assert response.json() == {"contact": ["Unknown contact."]}


# --- list -----------------------------------------------------------------------------------------


def test_list_is_ordered_by_priority_then_sla_due(manager):
    client, _, org = manager
    now = timezone.now()
    high_soon = CallbackRequestFactory(organization=org, priority="high", priority_score=50, sla_due_at=now)
    urgent_later = CallbackRequestFactory(
        organization=org, priority="urgent", priority_score=75, sla_due_at=now + timedelta(hours=5)
    )
    urgent_sooner = CallbackRequestFactory(
        organization=org, priority="urgent", priority_score=71, sla_due_at=now + timedelta(hours=1)
    )
    low = CallbackRequestFactory(organization=org, priority="low", priority_score=5, sla_due_at=now - timedelta(1))
    CallbackRequestFactory()  # another organization's

    response = client.get("/api/v1/callbacks/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert [r["id"] for r in body["results"]] == [str(c.pk) for c in (urgent_sooner, urgent_later, high_soon, low)]


def test_list_filters(manager):
    client, _, org = manager
    agent = agent_of(org)
    now = timezone.now()
    mine = CallbackRequestFactory(organization=org, status=S.ASSIGNED, assigned_to=agent, priority="urgent")
    breached = CallbackRequestFactory(organization=org, sla_due_at=now - timedelta(minutes=1), priority="high")
    marked = CallbackRequestFactory(organization=org, status=S.COMPLETED, overdue=True, assigned_to=agent)
    fine = CallbackRequestFactory(organization=org, status=S.IN_PROGRESS, assigned_to=agent)

    def ids(query):
        response = client.get(f"/api/v1/callbacks/?{query}")
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids("status=assigned") == {str(mine.pk)}
    assert ids("status=assigned&status=in_progress") == {str(mine.pk), str(fine.pk)}
    assert ids("priority=urgent") == {str(mine.pk)}
    assert ids(f"agent={agent.pk}") == {str(mine.pk), str(marked.pk), str(fine.pk)}
    assert ids("unassigned=true") == {str(breached.pk)}
    assert ids("overdue=true") == {str(breached.pk), str(marked.pk)}
    assert ids("overdue=false") == {str(mine.pk), str(fine.pk)}
    assert ids(f"contact={mine.contact.public_id}") == {str(mine.pk)}
    assert client.get("/api/v1/callbacks/?agent=nobody").status_code == 400

    as_agent = bearer_client(agent, org)
    response = as_agent.get("/api/v1/callbacks/?agent=me")
    assert {r["id"] for r in response.json()["results"]} == {str(mine.pk), str(marked.pk), str(fine.pk)}


def test_list_does_not_query_per_row(manager, django_assert_max_num_queries):
    client, _, org = manager
    agents = [agent_of(org) for _ in range(3)]
    for n in range(12):
        CallbackRequestFactory(organization=org, status=S.ASSIGNED, assigned_to=agents[n % 3])
    # JWT user, membership, count, page (contacts and agents joined in).
    with django_assert_max_num_queries(4):
        response = client.get("/api/v1/callbacks/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 12
    assert all(r["agent_email"] for r in response.json()["results"])


# --- assign, status, complete -------------------------------------------------------------------------


def test_assign_to_an_agent(manager, django_capture_on_commit_callbacks, mailoutbox):
    client, _, org = manager
    agent = agent_of(org)
    callback = CallbackRequestFactory(organization=org)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/callbacks/{callback.pk}/assign", {"agent": str(agent.pk)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["agent"], body["agent_email"]) == ("assigned", str(agent.pk), agent.email)
    assert [m.to for m in mailoutbox] == [[agent.email]]


@pytest.mark.parametrize("who", ["manager", "viewer", "other_org_agent", "unknown", "not-a-uuid"])
def test_assign_only_to_an_agent_of_the_organization(manager, who):
    client, user, org = manager
    agent_id = {
        "manager": lambda: str(user.pk),
        "viewer": lambda: str(MembershipFactory(organization=org, role=Role.VIEWER).user_id),
        "other_org_agent": lambda: str(agent_of(OrganizationFactory()).pk),
        "unknown": lambda: str(uuid4()),
        "not-a-uuid": lambda: "bob",
    }[who]()
    callback = CallbackRequestFactory(organization=org)
    response = client.post(f"/api/v1/callbacks/{callback.pk}/assign", {"agent": agent_id}, format="json")
    assert response.status_code == 400
    assert "agent" in response.json()
    callback.refresh_from_db()
    assert (callback.status, callback.assigned_to) == (S.NEW, None)


def test_assign_while_in_progress_is_409(manager):
    client, _, org = manager
    agent = agent_of(org)
    callback = CallbackRequestFactory(organization=org, status=S.IN_PROGRESS, assigned_to=agent)
    response = client.post(f"/api/v1/callbacks/{callback.pk}/assign", {"agent": str(agent_of(org).pk)}, format="json")
    assert response.status_code == 409
    assert "detail" in response.json()


def test_status_and_complete_flow_with_activities(manager):
    client, user, org = manager
    agent = agent_of(org)
    callback = CallbackRequestFactory(organization=org, status=S.ASSIGNED, assigned_to=agent)
    base = f"/api/v1/callbacks/{callback.pk}"

    answered = client.post(f"{base}/status", {"status": "no_answer", "note": "Voicemail"}, format="json")
    assert answered.status_code == 200, answered.content
    assert (answered.json()["status"], answered.json()["attempts"]) == ("no_answer", 1)
    assert answered.json()["first_contact_at"] is not None
    assert client.post(f"{base}/status", {"status": "in_progress"}, format="json").status_code == 200
    not_yet = client.post(f"{base}/complete", {"resolution": ""}, format="json")
    assert not_yet.status_code == 400
    assert "resolution" in not_yet.json()
    done = client.post(f"{base}/complete", {"resolution": "Upgraded to the yearly plan"}, format="json")
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["resolution"]) == ("completed", "Upgraded to the yearly plan")
    assert done.json()["closed_at"] is not None

    again = client.post(f"{base}/status", {"status": "in_progress"}, format="json")
    assert again.status_code == 409
    assert client.post(f"{base}/complete", {"resolution": "Twice"}, format="json").status_code == 409

    note = client.post(f"{base}/activities", {"note": "Sent the contract"}, format="json")
    assert note.status_code == 201
    activities = client.get(f"{base}/activities").json()
    assert activities["count"] == 4
    assert [(a["action"], a["to_status"], a["note"]) for a in activities["results"]] == [
        ("status_changed", "no_answer", "Voicemail"),
        ("status_changed", "in_progress", ""),
        ("status_changed", "completed", ""),
        ("note", "", "Sent the contract"),
    ]
    assert activities["results"][0]["actor"] == str(user.pk)
    assert activities["results"][2]["data"] == {"resolution": "Upgraded to the yearly plan"}


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (S.NEW, {"status": "completed", "resolution": "x"}, 409),
        (S.ASSIGNED, {"status": "completed", "resolution": "x"}, 409),
        (S.COMPLETED, {"status": "cancelled"}, 409),
        (S.CANCELLED, {"status": "no_answer"}, 409),
        (S.IN_PROGRESS, {"status": "new"}, 409),
        (S.IN_PROGRESS, {"status": "assigned"}, 400),
        (S.IN_PROGRESS, {"status": "done"}, 400),
        (S.IN_PROGRESS, {"note": "no status"}, 400),
    ],
)
def test_illegal_or_malformed_status_changes(manager, status, body, code):
    client, _, org = manager
    agent = agent_of(org)
    callback = CallbackRequestFactory(organization=org, status=status, assigned_to=None if status == S.NEW else agent)
    response = client.post(f"/api/v1/callbacks/{callback.pk}/status", body, format="json")
    assert response.status_code == code
    callback.refresh_from_db()
    assert callback.status == status


# --- tenancy and roles --------------------------------------------------------------------------------


def test_another_organizations_callback_is_404_everywhere(manager):
    client, _, org = manager
    theirs = CallbackRequestFactory(status=S.IN_PROGRESS, assigned_to=agent_of(OrganizationFactory()))
    base = f"/api/v1/callbacks/{theirs.pk}"
    assert client.get(f"{base}/").status_code == 404
    assert client.get(f"{base}/activities").status_code == 404
    assert client.post(f"{base}/assign", {"agent": str(agent_of(org).pk)}, format="json").status_code == 404
    assert client.post(f"{base}/status", {"status": "cancelled"}, format="json").status_code == 404
    assert client.post(f"{base}/complete", {"resolution": "x"}, format="json").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == S.IN_PROGRESS
    assert client.get("/api/v1/callbacks/").json()["count"] == 0


def test_a_viewer_reads_only(member_client):
    client, _, org = member_client(Role.VIEWER)
    agent = agent_of(org)
    callback = CallbackRequestFactory(organization=org, status=S.ASSIGNED, assigned_to=agent)
    contact = ContactFactory(organization=org)
    base = f"/api/v1/callbacks/{callback.pk}"

    assert client.get("/api/v1/callbacks/").json()["count"] == 1
    assert client.get(f"{base}/").status_code == 200
    assert client.get(f"{base}/activities").status_code == 200
    assert client.get("/api/v1/callbacks/settings").status_code == 200
    assert client.post("/api/v1/callbacks/", create_payload(contact), format="json").status_code == 403
    assert client.post(f"{base}/assign", {"agent": str(agent.pk)}, format="json").status_code == 403
    assert client.post(f"{base}/status", {"status": "cancelled"}, format="json").status_code == 403
    assert client.post(f"{base}/complete", {"resolution": "x"}, format="json").status_code == 403
    assert client.post(f"{base}/activities", {"note": "hi"}, format="json").status_code == 403
    assert client.patch("/api/v1/callbacks/settings", {"sla_low_hours": 1}, format="json").status_code == 403
    callback.refresh_from_db()
    assert callback.status == S.ASSIGNED
    assert CallbackRequest.objects.count() == 1
    assert not CallbackActivity.objects.exists()


def test_an_agent_sees_the_organization_and_updates_only_its_own(member_client):
    client, agent, org = member_client(Role.AGENT)
    colleague = agent_of(org)
    unassigned = CallbackRequestFactory(organization=org)
    colleagues = CallbackRequestFactory(organization=org, status=S.ASSIGNED, assigned_to=colleague)
    CallbackRequestFactory()  # another organization's

    assert client.get("/api/v1/callbacks/").json()["count"] == 2
    # A colleague's request: read yes, act no.
    assert client.get(f"/api/v1/callbacks/{colleagues.pk}/").status_code == 200
    for path, body in [
        ("status", {"status": "in_progress"}),
        ("assign", {"agent": str(agent.pk)}),
        ("activities", {"note": "mine"}),
    ]:
        assert client.post(f"/api/v1/callbacks/{colleagues.pk}/{path}", body, format="json").status_code == 403
    # An unassigned one: cannot give it to a colleague, can take it.
    give = client.post(f"/api/v1/callbacks/{unassigned.pk}/assign", {"agent": str(colleague.pk)}, format="json")
    assert give.status_code == 403
    take = client.post(f"/api/v1/callbacks/{unassigned.pk}/assign", {"agent": str(agent.pk)}, format="json")
    assert take.status_code == 200
    assert take.json()["agent"] == str(agent.pk)
    assert client.post(f"/api/v1/callbacks/{unassigned.pk}/status", {"status": "in_progress"}).status_code == 200
    done = client.post(f"/api/v1/callbacks/{unassigned.pk}/complete", {"resolution": "Answered"})
    assert done.status_code == 200
    # Agents take requests in, but do not change the settings.
    contact = ContactFactory(organization=org, phone="+31612345678")
    assert client.post("/api/v1/callbacks/", {"contact": str(contact.public_id)}, format="json").status_code == 201
    assert client.patch("/api/v1/callbacks/settings", {"sla_low_hours": 1}, format="json").status_code == 403
    colleagues.refresh_from_db()
    assert (colleagues.status, colleagues.assigned_to) == (S.ASSIGNED, colleague)


def test_unauthenticated_is_401(api_client):
    assert api_client.get("/api/v1/callbacks/").status_code == 401


# --- settings -----------------------------------------------------------------------------------------


def test_settings_defaults_and_update_apply_to_new_requests(manager):
    client, _, org = manager
    defaults = client.get("/api/v1/callbacks/settings").json()
    assert defaults["working_days"] == [0, 1, 2, 3, 4]
    assert (defaults["opens_at"], defaults["closes_at"]) == ("09:00:00", "17:00:00")
    assert [defaults[f"sla_{p}_hours"] for p in ("urgent", "high", "normal", "low")] == [2, 4, 8, 24]
    assert (defaults["value_attribute"], defaults["value_scale"]) == ("lifetime_value", 1000)

    patched = client.patch(
        "/api/v1/callbacks/settings",
        {"sla_low_hours": 3, "working_days": [6, 0, 1, 2, 3, 4, 5], "holidays": ["2025-12-25"]},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["working_days"] == [0, 1, 2, 3, 4, 5, 6]
    assert patched.json()["holidays"] == ["2025-12-25"]

    contact = ContactFactory(organization=org)
    created = client.post("/api/v1/callbacks/", create_payload(contact), format="json").json()
    callback = CallbackRequest.objects.get(pk=created["id"])
    assert created["priority"] == "low"
    calendar = services.business_calendar(
        settings=services.callback_settings_get(organization_id=org.pk), organization=org
    )
    assert callback.sla_due_at == add_business_hours(callback.created_at, 3, calendar)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"opens_at": "18:00"}, "closes_at"),
        ({"working_days": []}, "working_days"),
        ({"working_days": [7]}, "working_days"),
        ({"sla_urgent_hours": 0}, "sla_urgent_hours"),
        ({"value_scale": 0}, "value_scale"),
        ({"holidays": ["25-12-2025"]}, "holidays"),
    ],
)
def test_bad_settings_are_400_naming_the_field(manager, body, field):
    client, _, _ = manager
    response = client.patch("/api/v1/callbacks/settings", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert client.get("/api/v1/callbacks/settings").json()["opens_at"] == "09:00:00"


# --- metrics ------------------------------------------------------------------------------------------


def test_metrics_endpoint_shows_agents_their_own_rows(member_client):
    client, agent, org = member_client(Role.AGENT)
    manager_client, _, _ = member_client(Role.MANAGER, org)
    colleague = agent_of(org)
    now = timezone.now()
    for who in (agent, colleague):
        CallbackRequestFactory(
            organization=org,
            status=S.COMPLETED,
            assigned_to=who,
            created_at=now - timedelta(hours=2),
            first_contact_at=now - timedelta(hours=1),
            first_contact_by=who,
            closed_at=now,
        )
    everyone = manager_client.get("/api/v1/callbacks/metrics")
    assert everyone.status_code == 200, everyone.content
    assert {row["agent"] for row in everyone.json()} == {str(agent.pk), str(colleague.pk)}
    own = client.get(f"/api/v1/callbacks/metrics?agent={colleague.pk}").json()
    assert [row["agent"] for row in own] == [str(agent.pk)]
    assert own[0]["handled"] == 1
    assert own[0]["avg_time_to_first_contact"] == pytest.approx(3600, abs=1)
    assert manager_client.get("/api/v1/callbacks/metrics?from=2025-02-01&to=2025-01-01").status_code == 400
    assert manager_client.get("/api/v1/callbacks/metrics?from=yesterday").status_code == 400


# --- bounds on input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone_name", "window"),
    [
        # Year 1 at midnight east of Greenwich is year 0 in UTC: stored, but never readable again.
        ("Asia/Tokyo", {"start": "0001-01-01T00:00", "end": "0001-01-01T02:00"}),
        ("America/New_York", {"start": "9999-12-31T21:00", "end": "9999-12-31T23:00"}),
        ("Europe/Amsterdam", {"start": "0001-01-01T10:00+00:00", "end": "0001-01-01T12:00+00:00"}),
        ("Europe/Amsterdam", {"start": "1969-12-31T10:00", "end": "1969-12-31T12:00"}),
        ("Europe/Amsterdam", {"start": "2025-03-03T10:00", "end": "2201-01-01T12:00"}),
    ],
    ids=["year-1-tokyo", "year-9999", "year-1-offset", "before-1970", "end-after-2200"],
)
def test_a_preferred_time_outside_the_years_is_400_and_the_list_keeps_working(manager, timezone_name, window):
    client, _, org = manager
    contact = ContactFactory(organization=org, timezone=timezone_name)

    response = client.post("/api/v1/callbacks/", create_payload(contact, preferred_time=window), format="json")

    assert response.status_code == 400, response.content
    assert "between the years 1970 and 2200" in response.json()["preferred_time"][0]
    assert not CallbackRequest.objects.exists()
    assert client.get("/api/v1/callbacks/").status_code == 200


def test_the_service_refuses_a_preferred_time_outside_the_years():
    org = OrganizationFactory()
    contact = ContactFactory(organization=org, phone="+31612345678")
    with pytest.raises(DjangoValidationError) as refused:
        services.callback_create(
            organization=org,
            contact=contact,
            preferred_start=datetime(1, 1, 1, 10),
            preferred_end=datetime(1, 1, 1, 12),
        )
    assert "preferred_time" in refused.value.message_dict
    assert not CallbackRequest.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL holds times Python cannot read back")
def test_the_database_refuses_a_preferred_time_it_could_not_give_back():
    callback = CallbackRequestFactory()
    year_zero_in_utc = datetime(1, 1, 1, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    with pytest.raises(IntegrityError), transaction.atomic():
        CallbackRequest.objects.filter(pk=callback.pk).update(preferred_start=year_zero_in_utc)


def test_the_list_shows_rows_stored_with_odd_times_and_zones(manager):
    client, _, org = manager
    year_one = CallbackRequestFactory(
        organization=org,
        timezone="Pacific/Kiritimati",
        preferred_start=datetime(1, 1, 2, tzinfo=UTC),
        preferred_end=datetime(1, 1, 3, tzinfo=UTC),
    )
    # Written past every check (the admin, a script): the row still shows, in UTC.
    unknown_zone = CallbackRequestFactory(
        organization=org,
        timezone="Mars/Olympus_Mons",
        preferred_start=datetime(2025, 3, 3, 13, tzinfo=UTC),
        preferred_end=datetime(2025, 3, 3, 15, tzinfo=UTC),
    )

    for path in ("/api/v1/callbacks/", f"/api/v1/callbacks/{unknown_zone.pk}/"):
        assert client.get(path).status_code == 200, path
    rows = {row["id"]: row for row in client.get("/api/v1/callbacks/").json()["results"]}
    assert rows[str(year_one.pk)]["preferred_time"]["start"].startswith("0001-01-01T")
    assert rows[str(unknown_zone.pk)]["preferred_time"]["start"] == "2025-03-03T13:00:00+00:00"


@pytest.mark.parametrize(
    ("zone", "edge"),
    [("America/New_York", datetime(1, 1, 1, 1, tzinfo=UTC)), ("Asia/Tokyo", datetime(9999, 12, 31, 23, tzinfo=UTC))],
)
def test_a_time_that_cannot_be_shifted_into_the_zone_is_shown_in_utc(zone, edge):
    callback = CallbackRequest(timezone=zone, preferred_start=edge)
    shown = CallbackSerializer().fields["preferred_time"].to_representation(callback)
    assert shown == {"start": edge.isoformat(), "end": None, "timezone": zone}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL holds times Python cannot read back")
@pytest.mark.django_db(transaction=True)
def test_the_migration_clears_unreadable_preferred_times_so_the_list_answers(member_client):
    """A row stored before input was bounded (year 0 in UTC) failed every list; migrating repairs it."""
    client, _, org = member_client(Role.MANAGER)
    poisoned = CallbackRequestFactory(organization=org)
    fine = CallbackRequestFactory(
        organization=org,
        preferred_start=datetime(2025, 3, 3, 13, tzinfo=UTC),
        preferred_end=datetime(2025, 3, 3, 15, tzinfo=UTC),
    )
    executor = MigrationExecutor(connection)
    # Every app's latest: going back may unapply other apps' migrations that depend on these.
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("callbacks", "0001_callback_requests_activities_settings")])
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE callbacks_callbackrequest SET preferred_start = %s, preferred_end = %s WHERE id = %s",
                ["0001-01-01T00:00:00+09:00", "0001-01-01T02:00:00+09:00", poisoned.pk],
            )
        with pytest.raises(DataError):
            list(CallbackRequest.objects.filter(pk=poisoned.pk).values_list("preferred_start", flat=True))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    response = client.get("/api/v1/callbacks/")
    assert response.status_code == 200, response.content
    rows = {row["id"]: row for row in response.json()["results"]}
    assert rows[str(poisoned.pk)]["preferred_time"] is None
    assert rows[str(fine.pk)]["preferred_time"]["start"] == "2025-03-03T14:00:00+01:00"


@pytest.mark.parametrize("campaign", ["another-organizations", "unknown"])
def test_a_campaign_that_is_not_the_organizations_is_400_naming_campaign(manager, campaign):
    client, _, org = manager
    contact = ContactFactory(organization=org)
    campaign_id = CampaignFactory().pk if campaign == "another-organizations" else uuid4()

    response = client.post("/api/v1/callbacks/", create_payload(contact, campaign=str(campaign_id)), format="json")

    assert response.status_code == 400
    assert response.json() == {"campaign": ["Unknown campaign."]}
    assert not CallbackRequest.objects.exists()


@pytest.mark.parametrize(("text", "reason"), [("call me \ud800", "surrogate"), ("call me \x00", "NUL")])
def test_text_postgresql_cannot_store_is_400_naming_why(manager, text, reason):
    client, _, org = manager
    contact = ContactFactory(organization=org)
    body = json.dumps(create_payload(contact, reason=text))  # ensure_ascii: escaped as \ud800 / \u0000
    response = client.post("/api/v1/callbacks/", body, content_type="application/json")
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not CallbackRequest.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sla_low_hours": 10**9}, "sla_low_hours"),
        ({"sla_urgent_hours": 24 * 366 + 1}, "sla_urgent_hours"),
        # Default calendar: 8 hours a day, 5 days a week, so a year holds 2080 business hours.
        ({"sla_normal_hours": 2081}, "sla_normal_hours"),
        ({"value_scale": 2_000_000_000}, "value_scale"),
        ({"holidays": ["0001-01-01"]}, "holidays"),
        ({"holidays": ["2201-12-25"]}, "holidays"),
        ({"holidays": [f"2025-01-{d:02d}" for d in range(1, 32)] * 33}, "holidays"),
    ],
    ids=[
        "sla-1e9",
        "sla-over-a-year",
        "sla-over-a-year-of-business-hours",
        "value-scale",
        "holiday-year-1",
        "holiday-2201",
        "too-many-holidays",
    ],
)
def test_unbounded_settings_are_400_naming_the_field(manager, body, field):
    client, _, _ = manager
    response = client.patch("/api/v1/callbacks/settings", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    settings = client.get("/api/v1/callbacks/settings").json()
    assert [settings[f"sla_{p}_hours"] for p in ("urgent", "high", "normal", "low")] == [2, 4, 8, 24]
    assert (settings["holidays"], settings["value_scale"]) == ([], 1000)


def test_a_year_of_business_hours_is_accepted(manager):
    client, _, _ = manager
    response = client.patch("/api/v1/callbacks/settings", {"sla_low_hours": 2080}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["sla_low_hours"] == 2080


def test_settings_the_calendar_cannot_meet_still_record_requests_quickly(manager):
    """Settings written past the checks (one business hour a week, the largest SLA) once cost
    seconds of CPU per request; the walk is bounded and the request is recorded."""
    client, _, org = manager
    CallbackSettings.objects.create(
        organization=org,
        working_days=[2],
        opens_at=time(9),
        closes_at=time(10),
        sla_urgent_hours=24 * 366,
        sla_high_hours=24 * 366,
        sla_normal_hours=24 * 366,
        sla_low_hours=24 * 366,
    )
    contact = ContactFactory(organization=org)

    response = client.post("/api/v1/callbacks/", create_payload(contact), format="json")

    assert response.status_code == 201, response.content
    callback = CallbackRequest.objects.get(pk=response.json()["id"])
    assert callback.sla_due_at == callback.created_at + timedelta(days=MAX_DAYS)
