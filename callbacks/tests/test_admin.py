"""The callback queue in the admin: order, overdue highlighting, bulk assignment, settings."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from callbacks.models import ActivityAction, CallbackActivity, CallbackRequest, CallbackSettings, CallbackStatus
from callbacks.tests.factories import CallbackRequestFactory, agent_of

pytestmark = pytest.mark.django_db

S = CallbackStatus


def staff_client(client, role, organization=None):
    membership = MembershipFactory(role=role, **({"organization": organization} if organization else {}))
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    client.force_login(membership.user)
    return client, membership.organization


def test_queue_is_ordered_by_priority_then_sla_with_overdue_highlighted(client):
    client, org = staff_client(client, Role.MANAGER)
    now = timezone.now()
    low_overdue = CallbackRequestFactory(organization=org, priority="low", sla_due_at=now - timedelta(hours=1))
    urgent = CallbackRequestFactory(organization=org, priority="urgent", sla_due_at=now + timedelta(hours=2))
    high_late = CallbackRequestFactory(organization=org, priority="high", sla_due_at=now + timedelta(hours=6))
    high_soon = CallbackRequestFactory(organization=org, priority="high", sla_due_at=now + timedelta(hours=1))
    CallbackRequestFactory(priority="urgent")  # another organization's

    response = client.get("/admin/callbacks/callbackrequest/")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [urgent, high_soon, high_late, low_overdue]
    page = response.content.decode()
    assert page.count('class="callback-overdue"') == 1
    assert "overdue" in page


def test_bulk_assign_to_an_agent(client, django_capture_on_commit_callbacks, mailoutbox):
    client, org = staff_client(client, Role.MANAGER)
    agent = agent_of(org)
    agent_of(MembershipFactory().organization)  # not offered: another organization's agent
    waiting = [CallbackRequestFactory(organization=org) for _ in range(2)]
    busy = CallbackRequestFactory(organization=org, status=S.IN_PROGRESS, assigned_to=agent_of(org))
    selected = [str(c.pk) for c in (*waiting, busy)]

    confirm = client.post("/admin/callbacks/callbackrequest/", {"action": "bulk_assign", "_selected_action": selected})
    assert confirm.status_code == 200
    choices = list(confirm.context["form"].fields["agent"].queryset)
    assert agent in choices
    assert all(m.organization_id == org.pk for u in choices for m in u.memberships.all())

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            "/admin/callbacks/callbackrequest/",
            {"action": "bulk_assign", "_selected_action": selected, "apply": "1", "agent": str(agent.pk)},
            follow=True,
        )
    assert done.status_code == 200
    assert "Assigned 2 callback(s)" in done.content.decode()
    assert "Skipped 1" in done.content.decode()
    for callback in waiting:
        callback.refresh_from_db()
        assert (callback.status, callback.assigned_to) == (S.ASSIGNED, agent)
        assert CallbackActivity.objects.get(callback=callback).action == ActivityAction.ASSIGNED
    busy.refresh_from_db()
    assert busy.status == S.IN_PROGRESS
    [email] = mailoutbox
    assert email.to == [agent.email]
    assert email.subject == "2 callbacks assigned to you"


def test_agents_do_not_get_the_bulk_assign_action(client):
    client, org = staff_client(client, Role.AGENT)
    callback = CallbackRequestFactory(organization=org)
    page = client.get("/admin/callbacks/callbackrequest/")
    assert page.status_code == 200
    assert "bulk_assign" not in page.content.decode()
    client.post(
        "/admin/callbacks/callbackrequest/",
        {"action": "bulk_assign", "_selected_action": [str(callback.pk)], "apply": "1", "agent": str(agent_of(org).pk)},
    )
    callback.refresh_from_db()
    assert callback.status == S.NEW


def test_the_request_page_shows_its_activity(client):
    client, org = staff_client(client, Role.MANAGER)
    callback = CallbackRequestFactory(organization=org, reason="Billing question")
    CallbackActivity.objects.create(
        organization=org, callback=callback, action=ActivityAction.NOTE, note="Called twice already"
    )
    page = client.get(f"/admin/callbacks/callbackrequest/{callback.pk}/change/")
    assert page.status_code == 200
    assert "Called twice already" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()  # a record to read; changes go through the services
    assert client.get("/admin/callbacks/callbackrequest/add/").status_code == 200  # taken by hand


def test_settings_are_edited_by_managers_and_read_by_agents(client):
    client, org = staff_client(client, Role.MANAGER)
    settings = CallbackSettings.objects.create(organization=org)
    form = {
        "working_days": "[0, 1, 2, 3, 4, 5]",
        "opens_at": "08:00",
        "closes_at": "18:00",
        "holidays": '["2025-12-25"]',
        "sla_urgent_hours": 1,
        "sla_high_hours": 3,
        "sla_normal_hours": 6,
        "sla_low_hours": 16,
        "value_attribute": "ltv",
        "value_scale": 5000,
        "engagement_events": '["clicked"]',
    }
    url = f"/admin/callbacks/callbacksettings/{settings.pk}/change/"
    assert client.post(url, form).status_code == 302
    settings.refresh_from_db()
    assert (settings.working_days, settings.sla_urgent_hours, settings.value_attribute) == (
        [0, 1, 2, 3, 4, 5],
        1,
        "ltv",
    )

    bad = client.post(url, {**form, "opens_at": "19:00"})
    assert bad.status_code == 200
    assert "Business hours must close after they open." in bad.content.decode()

    agent_client, _ = staff_client(client.__class__(), Role.AGENT, org)
    assert agent_client.get(url).status_code == 200
    assert agent_client.post(url, {**form, "sla_urgent_hours": 9}).status_code == 403
    settings.refresh_from_db()
    assert settings.sla_urgent_hours == 1


@pytest.mark.parametrize("time_zone", ["UTC", "America/Los_Angeles", "Pacific/Kiritimati"])
@pytest.mark.parametrize("extreme", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)])
def test_a_callback_with_an_absurd_stored_time_does_not_break_the_admin(client, settings, time_zone, extreme):
    settings.TIME_ZONE = time_zone
    client, org = staff_client(client, Role.MANAGER)
    fine = CallbackRequestFactory(organization=org)
    odd = CallbackRequestFactory(organization=org)
    # Stored directly, as rows written before input was bounded are; shown in a time zone where
    # the value falls outside the years Python can hold.
    CallbackRequest.objects.filter(pk=odd.pk).update(sla_due_at=extreme)
    storable = datetime(1, 1, 2, tzinfo=UTC) if extreme.year == 1 else datetime(9999, 12, 30, tzinfo=UTC)
    CallbackRequest.objects.filter(pk=odd.pk).update(preferred_start=storable, preferred_end=None)

    listing = client.get("/admin/callbacks/callbackrequest/")
    assert listing.status_code == 200
    assert {c.pk for c in listing.context["cl"].result_list} == {fine.pk, odd.pk}
    # Shown in the current time zone, or as stored (UTC) where that zone cannot hold it.
    assert f"{extreme.year:04d}-{extreme:%m-%d}" in listing.content.decode()

    page = client.get(f"/admin/callbacks/callbackrequest/{odd.pk}/change/")
    assert page.status_code == 200


def test_a_callback_with_an_unknown_stored_priority_does_not_break_the_admin(client):
    client, org = staff_client(client, Role.MANAGER)
    odd = CallbackRequestFactory(organization=org)
    CallbackRequest.objects.filter(pk=odd.pk).update(priority="panic")

    listing = client.get("/admin/callbacks/callbackrequest/")

    assert listing.status_code == 200
    assert "panic" in listing.content.decode()
