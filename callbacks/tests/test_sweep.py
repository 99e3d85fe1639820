"""The periodic sweep: SLA breaches marked overdue (agents emailed), waiting requests re-scored."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from callbacks import notifications, services
from callbacks.models import ActivityAction, CallbackActivity, CallbackRequest, CallbackStatus
from callbacks.tasks import sweep_task
from callbacks.tests.factories import CallbackRequestFactory, agent_of
from contacts.models import ContactEvent
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

S = CallbackStatus


@pytest.fixture
def organization():
    return OrganizationFactory()


def test_breached_requests_are_marked_and_their_agents_emailed_once(
    organization, django_capture_on_commit_callbacks, mailoutbox
):
    agent, other_agent = agent_of(organization), agent_of(organization)
    past = timezone.now() - timedelta(minutes=5)
    late_unassigned = CallbackRequestFactory(organization=organization, sla_due_at=past)
    late_a = CallbackRequestFactory(organization=organization, status=S.ASSIGNED, assigned_to=agent, sla_due_at=past)
    late_b = CallbackRequestFactory(
        organization=organization, status=S.ASSIGNED, assigned_to=agent, sla_due_at=past - timedelta(hours=1)
    )
    late_other = CallbackRequestFactory(
        organization=organization, status=S.ASSIGNED, assigned_to=other_agent, sla_due_at=past
    )
    on_time = CallbackRequestFactory(organization=organization, status=S.ASSIGNED, assigned_to=agent)
    reached = CallbackRequestFactory(
        organization=organization, status=S.IN_PROGRESS, assigned_to=agent, sla_due_at=past
    )
    tried = CallbackRequestFactory(organization=organization, status=S.NO_ANSWER, assigned_to=agent, sla_due_at=past)
    elsewhere = CallbackRequestFactory(sla_due_at=past)  # another organization: swept too

    with django_capture_on_commit_callbacks(execute=True):
        result = sweep_task.delay().get()

    assert result["marked_overdue"] == 5
    for callback in (late_unassigned, late_a, late_b, late_other, elsewhere):
        callback.refresh_from_db()
        assert callback.overdue is True
        assert CallbackActivity.objects.filter(callback=callback, action=ActivityAction.SLA_BREACHED).count() == 1
    for callback in (on_time, reached, tried):
        callback.refresh_from_db()
        assert callback.overdue is False
    # One email per agent with all of their breached requests; nobody to tell for the unassigned one.
    emails = {tuple(m.to): m for m in mailoutbox}
    assert set(emails) == {(agent.email,), (other_agent.email,)}
    assert emails[(agent.email,)].subject == "2 callbacks overdue"
    assert str(late_a.pk) in emails[(agent.email,)].body
    assert str(late_b.pk) in emails[(agent.email,)].body
    assert emails[(other_agent.email,)].subject.startswith("Callback overdue")

    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        again = services.callbacks_sweep()
    assert again.marked_overdue == 0
    assert mailoutbox == []
    assert CallbackActivity.objects.filter(action=ActivityAction.SLA_BREACHED).count() == 5


def test_marking_works_in_batches(organization):
    past = timezone.now() - timedelta(minutes=1)
    callbacks = [CallbackRequestFactory(organization=organization, sla_due_at=past) for _ in range(5)]
    assert services.callbacks_mark_overdue(now=timezone.now(), batch_size=2) == 5
    assert all(c.overdue for c in CallbackRequest.objects.filter(pk__in=[c.pk for c in callbacks]))


def test_a_breach_email_is_skipped_when_the_request_moved_on(organization, mailoutbox):
    agent = agent_of(organization)
    callback = CallbackRequestFactory(organization=organization, status=S.ASSIGNED, assigned_to=agent, overdue=True)
    callback.assigned_to = agent_of(organization)
    callback.save(update_fields=["assigned_to"])
    assert notifications.breach_send(agent_id=str(agent.pk), callback_ids=[str(callback.pk)]) is False
    assert mailoutbox == []


def test_waiting_requests_are_rescored_and_category_changes_logged(organization):
    now = timezone.now()
    waited_5h = CallbackRequestFactory(
        organization=organization,
        urgency="anytime",
        priority_score=0,
        priority="low",
        created_at=now - timedelta(hours=5),
    )
    asap_12h = CallbackRequestFactory(
        organization=organization,
        urgency="asap",
        priority_score=30,
        priority="normal",
        status=S.NO_ANSWER,
        assigned_to=agent_of(organization),
        created_at=now - timedelta(hours=12),
    )
    due = asap_12h.sla_due_at
    engaged_contact = ContactFactory(organization=organization, attributes={"lifetime_value": 500})
    engaged = CallbackRequestFactory(
        organization=organization, contact=engaged_contact, urgency="today", priority_score=35, priority="normal"
    )
    ContactEvent.objects.create(
        organization=organization, contact=engaged_contact, name="replied", occurred_at=now - timedelta(minutes=10)
    )
    ContactEvent.objects.create(organization=organization, contact=engaged_contact, name="purchase", occurred_at=now)
    closed = CallbackRequestFactory(
        organization=organization, status=S.COMPLETED, priority_score=0, priority="low", created_at=now - timedelta(1)
    )
    talking = CallbackRequestFactory(
        organization=organization,
        status=S.IN_PROGRESS,
        priority_score=0,
        priority="low",
        created_at=now - timedelta(1),
        assigned_to=agent_of(organization),
    )

    result = services.callbacks_sweep(now=now)

    assert (result.rescored, result.reprioritized) == (3, 2)
    for callback in (waited_5h, asap_12h, engaged, closed, talking):
        callback.refresh_from_db()
    assert (waited_5h.priority_score, waited_5h.priority) == (10, "low")
    assert (asap_12h.priority_score, asap_12h.priority) == (50, "high")
    assert asap_12h.sla_due_at == due  # the promise made on arrival stays
    assert (engaged.priority_score, engaged.priority) == (55, "high")  # value 15 + replied 20 + today 20
    assert (closed.priority_score, talking.priority_score) == (0, 0)
    changed = CallbackActivity.objects.filter(action=ActivityAction.PRIORITY_CHANGED).order_by("id")
    assert {a.callback_id: (a.data["from"], a.data["to"]) for a in changed} == {
        asap_12h.pk: ("normal", "high"),
        engaged.pk: ("normal", "high"),
    }

    again = services.callbacks_sweep(now=now)
    assert (again.rescored, again.reprioritized) == (0, 0)


def test_the_sweep_is_set_based(organization):
    """The number of queries does not grow with the number of requests."""

    services.callback_settings_get(organization_id=organization.pk)

    def queries_for(count):
        CallbackRequest.objects.all().delete()
        CallbackRequestFactory.create_batch(
            count,
            organization=organization,
            sla_due_at=timezone.now() - timedelta(1),
            created_at=timezone.now() - timedelta(hours=3),
        )
        with CaptureQueriesContext(connection) as ctx:
            result = services.callbacks_sweep()
        assert result.marked_overdue == count
        assert result.rescored == count
        return len(ctx.captured_queries)

    assert queries_for(3) == queries_for(30)


def test_rescoring_works_in_batches(organization):
    created = timezone.now() - timedelta(hours=4)
    CallbackRequestFactory.create_batch(
        5, organization=organization, priority_score=0, priority="low", created_at=created
    )
    assert services.callbacks_rescore(now=timezone.now(), batch_size=2) == (5, 0)
    assert set(CallbackRequest.objects.values_list("priority_score", flat=True)) == {8}
