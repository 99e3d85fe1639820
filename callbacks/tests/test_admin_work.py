"""Working the callback queue from the admin: assign, start, complete, cancel, add by hand, all through
callbacks.services (same roles, same state machine, same activity log as the API)."""

import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, UserFactory
from callbacks.models import ActivityAction, CallbackActivity, CallbackRequest, CallbackSource, CallbackStatus
from callbacks.tests.factories import CallbackRequestFactory, agent_of
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

S = CallbackStatus
ADMIN = "/admin/callbacks/callbackrequest/"


def staff(client, role, organization=None):
    membership = MembershipFactory(
        role=role, user__is_staff=True, **({"organization": organization} if organization else {})
    )
    client.force_login(membership.user)
    return membership.user, membership.organization


def work(client, callback, step, **fields):
    return client.post(f"{ADMIN}{callback.pk}/work/", {"step": step, **fields})


def test_a_manager_assigns_starts_and_completes_a_request(client, django_capture_on_commit_callbacks):
    _manager, org = staff(client, Role.MANAGER)
    agent = agent_of(org, user__full_name="Alex Agent")
    MembershipFactory(organization=org, role=Role.VIEWER)  # not assignable
    agent_of(MembershipFactory().organization)  # another organization's agent
    callback = CallbackRequestFactory(organization=org)

    page = client.get(f"{ADMIN}{callback.pk}/change/")
    assert page.status_code == 200
    offered = list(page.context["work"]["assign"].fields["agent"].queryset)
    assert offered == [agent]
    html = page.content.decode()
    assert "Only members of the request&#x27;s organization with the agent role" in html
    assert f"Alex Agent &lt;{agent.email}&gt;" in html

    with django_capture_on_commit_callbacks(execute=True):
        assigned = work(client, callback, "assign", **{"assign-agent": str(agent.pk), "note-note": "Knows the account"})
    assert assigned.status_code == 302
    callback.refresh_from_db()
    assert (callback.status, callback.assigned_to) == (S.ASSIGNED, agent)

    work(client, callback, "start")
    callback.refresh_from_db()
    assert callback.status == S.IN_PROGRESS
    assert callback.first_contact_at is not None

    refused = work(client, callback, "complete", **{"complete-resolution": ""})
    assert refused.status_code == 302
    callback.refresh_from_db()
    assert callback.status == S.IN_PROGRESS
    assert "Say how the request was resolved." in client.get(refused.url).content.decode()

    work(client, callback, "complete", **{"complete-resolution": "Invoice corrected"})
    callback.refresh_from_db()
    assert (callback.status, callback.resolution) == (S.COMPLETED, "Invoice corrected")

    log = list(CallbackActivity.objects.filter(callback=callback).order_by("created_at", "id"))
    assert [(a.action, a.to_status) for a in log] == [
        (ActivityAction.ASSIGNED, S.ASSIGNED),
        (ActivityAction.STATUS_CHANGED, S.IN_PROGRESS),
        (ActivityAction.STATUS_CHANGED, S.COMPLETED),
    ]
    assert log[0].note == "Knows the account"
    page = client.get(f"{ADMIN}{callback.pk}/change/").content.decode()
    assert "Invoice corrected" in page
    assert 'value="start"' not in page  # nothing left to do but notes


def test_an_illegal_step_is_a_message_not_an_error(client):
    _, org = staff(client, Role.MANAGER)
    callback = CallbackRequestFactory(organization=org, status=S.COMPLETED)
    response = work(client, callback, "start")
    assert response.status_code == 302
    assert "cannot move to in_progress" in client.get(response.url).content.decode()
    assert work(client, callback, "junk").status_code == 302
    assert work(client, callback, "assign", **{"assign-agent": "junk"}).status_code == 302
    callback.refresh_from_db()
    assert callback.status == S.COMPLETED


def test_cancel_and_note(client):
    _, org = staff(client, Role.MANAGER)
    callback = CallbackRequestFactory(organization=org)
    work(client, callback, "note", **{"note-note": "Left a voicemail"})
    work(client, callback, "cancel", **{"note-note": "Duplicate"})
    callback.refresh_from_db()
    assert callback.status == S.CANCELLED
    notes = list(CallbackActivity.objects.filter(callback=callback).values_list("action", "note"))
    assert (ActivityAction.NOTE, "Left a voicemail") in notes
    assert (ActivityAction.STATUS_CHANGED, "Duplicate") in notes


def test_an_agent_takes_a_request_but_cannot_hand_it_to_a_colleague(client):
    agent, org = staff(client, Role.AGENT)
    colleague = agent_of(org)
    callback = CallbackRequestFactory(organization=org)
    page = client.get(f"{ADMIN}{callback.pk}/change/")
    assert list(page.context["work"]["assign"].fields["agent"].queryset) == [agent]

    work(client, callback, "assign", **{"assign-agent": str(colleague.pk)})
    callback.refresh_from_db()
    assert callback.assigned_to is None

    work(client, callback, "start")  # an agent claims it by calling
    callback.refresh_from_db()
    assert (callback.status, callback.assigned_to) == (S.IN_PROGRESS, agent)
    assert client.get(f"{ADMIN}add/").status_code == 403  # agents work requests; supervisors add them


def test_viewers_and_other_organizations_cannot_work_a_request(client):
    _, org = staff(client, Role.VIEWER)
    callback = CallbackRequestFactory(organization=org)
    assert "work" not in client.get(f"{ADMIN}{callback.pk}/change/").context
    assert work(client, callback, "cancel").status_code == 403
    stranger = CallbackRequestFactory()
    assert work(client, stranger, "cancel").status_code == 302  # "does not exist" redirect
    stranger.refresh_from_db()
    callback.refresh_from_db()
    assert (stranger.status, callback.status) == (S.NEW, S.NEW)


def test_a_request_added_by_hand_goes_through_the_service(client):
    manager, org = staff(client, Role.MANAGER)
    contact = ContactFactory(organization=org, phone="+31612345678", first_name="Ada")
    page = client.get(f"{ADMIN}add/")
    assert page.status_code == 200
    assert page.context["adminform"].form.initial["organization"] == org.pk
    assert "admin/js/autocomplete.js" in page.content.decode()

    response = client.post(
        f"{ADMIN}add/",
        {
            "organization": str(org.pk),
            "contact": str(contact.pk),
            "phone": "",
            "reason": "Wants a quote",
            "urgency": "asap",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    callback = CallbackRequest.objects.get(organization=org)
    assert response.url == f"{ADMIN}{callback.pk}/change/"
    assert (callback.source, callback.phone, callback.created_by) == (CallbackSource.MANUAL, "+31612345678", manager)
    assert callback.priority_score > 0
    assert callback.sla_due_at is not None
    assert CallbackActivity.objects.filter(callback=callback, action=ActivityAction.CREATED).exists()


def test_what_the_service_refuses_on_add_is_shown_on_the_form(client):
    _, org = staff(client, Role.MANAGER)
    no_phone = ContactFactory(organization=org, phone=None)
    response = client.post(
        f"{ADMIN}add/", {"organization": str(org.pk), "contact": str(no_phone.pk), "phone": "", "urgency": "asap"}
    )
    assert response.status_code == 200
    assert "the contact has none on file" in response.context["adminform"].form.errors["phone"][0]
    bad = client.post(
        f"{ADMIN}add/", {"organization": str(org.pk), "contact": str(no_phone.pk), "phone": "12", "urgency": "asap"}
    )
    assert "phone" in bad.context["adminform"].form.errors
    stranger = ContactFactory(phone="+31611111111")
    theirs = client.post(f"{ADMIN}add/", {"organization": str(org.pk), "contact": str(stranger.pk), "urgency": "asap"})
    assert theirs.status_code == 200
    assert "contact" in theirs.context["adminform"].form.errors
    assert not CallbackRequest.objects.exists()


def test_superuser_without_membership_works_a_request(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    callback = CallbackRequestFactory()
    agent = agent_of(callback.organization)
    work(client, callback, "assign", **{"assign-agent": str(agent.pk)})
    callback.refresh_from_db()
    assert callback.assigned_to == agent
