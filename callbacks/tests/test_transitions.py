"""The status machine in callbacks.services: every move, legal and illegal, and who may make it."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from callbacks import services
from callbacks.models import ActivityAction, CallbackActivity, CallbackStatus
from callbacks.tests.factories import CallbackRequestFactory, agent_of
from config.errors import ConflictError

pytestmark = pytest.mark.django_db

S = CallbackStatus
# The documented machine, written out here so a change to it must change this test too.
LEGAL = {
    (S.NEW, S.ASSIGNED),
    (S.NEW, S.IN_PROGRESS),
    (S.NEW, S.NO_ANSWER),
    (S.NEW, S.CANCELLED),
    (S.ASSIGNED, S.ASSIGNED),
    (S.ASSIGNED, S.IN_PROGRESS),
    (S.ASSIGNED, S.NO_ANSWER),
    (S.ASSIGNED, S.CANCELLED),
    (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.NO_ANSWER),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.NO_ANSWER, S.ASSIGNED),
    (S.NO_ANSWER, S.IN_PROGRESS),
    (S.NO_ANSWER, S.NO_ANSWER),
    (S.NO_ANSWER, S.CANCELLED),
}
ALL_PAIRS = [(a, b) for a in S.values for b in S.values if b != S.NEW]


@pytest.fixture
def organization():
    return OrganizationFactory()


@pytest.fixture
def agent(organization):
    return agent_of(organization)


@pytest.fixture
def manager(organization):
    return MembershipFactory(organization=organization, role=Role.MANAGER).user


def callback_in(status, organization, agent):
    return CallbackRequestFactory(
        organization=organization, status=status, assigned_to=None if status == S.NEW else agent
    )


def move(callback, to_status, by):
    if callback.assigned_to is None and to_status == S.CANCELLED:
        by = MembershipFactory(organization=callback.organization, role=Role.MANAGER).user
    if to_status == S.ASSIGNED:
        return services.callback_assign(callback=callback, agent_id=by.pk, by=by)
    return services.callback_transition(callback=callback, to_status=to_status, by=by, resolution="Sorted out")


@pytest.mark.parametrize(("from_status", "to_status"), [p for p in ALL_PAIRS if p in LEGAL])
def test_legal_transition_moves_and_logs(organization, agent, from_status, to_status):
    callback = callback_in(from_status, organization, agent)

    moved = move(callback, to_status, agent)

    moved.refresh_from_db()
    assert moved.status == to_status
    last = CallbackActivity.objects.filter(callback=callback).order_by("-id").first()
    claimed = from_status == S.NEW and to_status in (S.IN_PROGRESS, S.NO_ANSWER)
    assert (last.from_status, last.to_status) == (S.ASSIGNED if claimed else from_status, to_status)
    if (from_status, to_status) != (S.NEW, S.CANCELLED):
        assert moved.assigned_to == agent
        assert last.actor == agent
    if to_status in (S.COMPLETED, S.CANCELLED):
        assert moved.closed_at is not None
    if to_status == S.COMPLETED:
        assert moved.resolution == "Sorted out"


@pytest.mark.parametrize(("from_status", "to_status"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_illegal_transition_is_a_conflict_and_changes_nothing(organization, agent, from_status, to_status):
    callback = callback_in(from_status, organization, agent)

    with pytest.raises(ConflictError):
        move(callback, to_status, agent)

    callback.refresh_from_db()
    assert callback.status == from_status
    assert not CallbackActivity.objects.filter(callback=callback).exists()


@pytest.mark.parametrize("from_status", S.values)
def test_nothing_moves_back_to_new(organization, agent, from_status):
    callback = callback_in(from_status, organization, agent)
    with pytest.raises(ConflictError):
        services.callback_transition(callback=callback, to_status=S.NEW, by=agent)


def test_unanswered_calls_count_attempts_and_can_be_retried(organization, agent, manager):
    callback = callback_in(S.ASSIGNED, organization, agent)
    services.callback_transition(callback=callback, to_status=S.NO_ANSWER, by=agent, note="Voicemail")
    services.callback_transition(callback=callback, to_status=S.NO_ANSWER, by=agent)
    callback.refresh_from_db()
    assert callback.attempts == 2
    first_contact = callback.first_contact_at
    assert first_contact is not None
    assert callback.first_contact_by == agent

    # Handed to another agent, who reaches the contact.
    other = agent_of(organization)
    services.callback_assign(callback=callback, agent_id=other.pk, by=manager)
    services.callback_transition(callback=callback, to_status=S.IN_PROGRESS, by=other)
    services.callback_complete(callback=callback, resolution="Booked a demo", by=other)
    callback.refresh_from_db()
    assert (callback.status, callback.attempts, callback.resolution) == (S.COMPLETED, 2, "Booked a demo")
    assert callback.first_contact_at == first_contact  # the first call stays the first contact
    assert callback.first_contact_by == agent
    assert callback.assigned_to == other
    actions = list(CallbackActivity.objects.filter(callback=callback).values_list("action", "to_status", "note"))
    assert actions == [
        (ActivityAction.STATUS_CHANGED, S.NO_ANSWER, "Voicemail"),
        (ActivityAction.STATUS_CHANGED, S.NO_ANSWER, ""),
        (ActivityAction.ASSIGNED, S.ASSIGNED, ""),
        (ActivityAction.STATUS_CHANGED, S.IN_PROGRESS, ""),
        (ActivityAction.STATUS_CHANGED, S.COMPLETED, ""),
    ]


def test_completing_needs_a_resolution(organization, agent):
    callback = callback_in(S.IN_PROGRESS, organization, agent)
    with pytest.raises(ValidationError) as exc:
        services.callback_complete(callback=callback, resolution="  ", by=agent)
    assert "resolution" in exc.value.message_dict
    callback.refresh_from_db()
    assert callback.status == S.IN_PROGRESS


def test_assigned_is_not_a_status_change(organization, agent):
    callback = callback_in(S.NEW, organization, agent)
    with pytest.raises(ValidationError) as exc:
        services.callback_transition(callback=callback, to_status=S.ASSIGNED, by=agent)
    assert "status" in exc.value.message_dict


def test_an_agent_claims_an_unassigned_request_by_calling(organization, agent):
    callback = callback_in(S.NEW, organization, agent)
    services.callback_transition(callback=callback, to_status=S.IN_PROGRESS, by=agent)
    callback.refresh_from_db()
    assert (callback.status, callback.assigned_to) == (S.IN_PROGRESS, agent)
    assert list(CallbackActivity.objects.filter(callback=callback).values_list("action", flat=True)) == [
        ActivityAction.ASSIGNED,
        ActivityAction.STATUS_CHANGED,
    ]


def test_a_manager_must_assign_before_a_call_is_logged(organization, manager):
    callback = CallbackRequestFactory(organization=organization)
    with pytest.raises(ConflictError, match="Assign"):
        services.callback_transition(callback=callback, to_status=S.IN_PROGRESS, by=manager)
    # ...but may cancel it.
    services.callback_transition(callback=callback, to_status=S.CANCELLED, by=manager, note="Duplicate")
    callback.refresh_from_db()
    assert callback.status == S.CANCELLED


def test_an_agent_must_take_an_unassigned_request_before_closing_it(organization, agent):
    callback = callback_in(S.NEW, organization, agent)
    with pytest.raises(PermissionDenied, match="Take the callback"):
        services.callback_transition(callback=callback, to_status=S.CANCELLED, by=agent)
    callback.refresh_from_db()
    assert callback.status == S.NEW


def test_an_agent_cannot_touch_a_colleagues_request(organization, agent):
    colleague = agent_of(organization)
    callback = callback_in(S.ASSIGNED, organization, colleague)
    with pytest.raises(PermissionDenied):
        services.callback_transition(callback=callback, to_status=S.IN_PROGRESS, by=agent)
    with pytest.raises(PermissionDenied):
        services.callback_assign(callback=callback, agent_id=agent.pk, by=agent)
    with pytest.raises(PermissionDenied):
        services.callback_add_note(callback=callback, note="mine now", by=agent)
    callback.refresh_from_db()
    assert (callback.status, callback.assigned_to) == (S.ASSIGNED, colleague)


def test_an_agent_assigns_only_to_themselves(organization, agent):
    colleague = agent_of(organization)
    callback = callback_in(S.NEW, organization, agent)
    with pytest.raises(PermissionDenied):
        services.callback_assign(callback=callback, agent_id=colleague.pk, by=agent)
    services.callback_assign(callback=callback, agent_id=agent.pk, by=agent)
    callback.refresh_from_db()
    assert callback.assigned_to == agent


def test_a_viewer_cannot_act(organization, agent):
    viewer = MembershipFactory(organization=organization, role=Role.VIEWER).user
    callback = callback_in(S.NEW, organization, agent)
    with pytest.raises(PermissionDenied):
        services.callback_transition(callback=callback, to_status=S.CANCELLED, by=viewer)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN, Role.OWNER, Role.VIEWER])
def test_only_agents_can_be_assigned(organization, manager, role):
    not_an_agent = MembershipFactory(organization=organization, role=role).user
    callback = CallbackRequestFactory(organization=organization)
    with pytest.raises(ValidationError) as exc:
        services.callback_assign(callback=callback, agent_id=not_an_agent.pk, by=manager)
    assert "agent" in exc.value.message_dict


def test_an_agent_of_another_organization_cannot_be_assigned(organization, manager):
    outsider = agent_of(OrganizationFactory())
    callback = CallbackRequestFactory(organization=organization)
    with pytest.raises(ValidationError) as exc:
        services.callback_assign(callback=callback, agent_id=outsider.pk, by=manager)
    assert "agent" in exc.value.message_dict
    callback.refresh_from_db()
    assert callback.assigned_to is None


def test_first_contact_after_the_due_time_marks_the_sla_breached(organization, agent):
    late = CallbackRequestFactory(
        organization=organization, status=S.ASSIGNED, assigned_to=agent, sla_due_at=timezone.now() - timedelta(1)
    )
    on_time = CallbackRequestFactory(organization=organization, status=S.ASSIGNED, assigned_to=agent)
    for callback in (late, on_time):
        services.callback_transition(callback=callback, to_status=S.IN_PROGRESS, by=agent)
    late.refresh_from_db()
    on_time.refresh_from_db()
    assert late.overdue is True
    assert on_time.overdue is False


def test_assignment_emails_the_agent_after_commit(
    organization, agent, manager, django_capture_on_commit_callbacks, mailoutbox
):
    callback = CallbackRequestFactory(organization=organization, reason="Wants a quote")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.callback_assign(callback=callback, agent_id=agent.pk, by=manager)
    assert len(callbacks) == 1
    [email] = mailoutbox
    assert email.to == [agent.email]
    assert email.subject.startswith("Callback assigned to you")
    assert "Wants a quote" in email.body
    assert str(callback.pk) in email.body


def test_an_agent_taking_a_request_gets_no_email(organization, agent, django_capture_on_commit_callbacks, mailoutbox):
    callback = CallbackRequestFactory(organization=organization)
    with django_capture_on_commit_callbacks(execute=True):
        services.callback_assign(callback=callback, agent_id=agent.pk, by=agent)
    assert mailoutbox == []


def test_notes_are_logged(organization, agent):
    callback = callback_in(S.ASSIGNED, organization, agent)
    activity = services.callback_add_note(callback=callback, note=" Prefers Dutch ", by=agent)
    assert (activity.action, activity.note, activity.actor) == (ActivityAction.NOTE, "Prefers Dutch", agent)
    with pytest.raises(ValidationError):
        services.callback_add_note(callback=callback, note=" ", by=agent)
