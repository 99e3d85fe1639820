from datetime import timedelta

import factory
from django.utils.timezone import now

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from callbacks.models import CallbackPriority, CallbackRequest, CallbackSource, CallbackStatus
from contacts.tests.factories import ContactFactory


def agent_of(organization, **kwargs):
    """A user who is a member of `organization` with the agent role."""
    return MembershipFactory(organization=organization, role=Role.AGENT, **kwargs).user


class CallbackRequestFactory(factory.django.DjangoModelFactory):
    """A request row as the services would leave it; status and agent can be set directly
    to put a request in any state for a test."""

    class Meta:
        model = CallbackRequest

    organization = factory.SubFactory(OrganizationFactory)
    contact = factory.SubFactory(ContactFactory, organization=factory.SelfAttribute("..organization"))
    source = CallbackSource.API
    phone = "+31612345678"
    reason = "Question about my invoice"
    timezone = "Europe/Amsterdam"
    priority_score = 30
    priority = CallbackPriority.NORMAL
    sla_due_at = factory.LazyFunction(lambda: now() + timedelta(hours=8))
    status = CallbackStatus.NEW
    created_at = factory.LazyFunction(now)
    assigned_to = None

    @factory.lazy_attribute
    def assigned_at(self):
        return now() if self.assigned_to is not None else None
