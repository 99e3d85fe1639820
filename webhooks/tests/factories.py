import factory
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from webhooks import events
from webhooks.models import Delivery, Endpoint
from webhooks.signing import new_secret


class EndpointFactory(factory.django.DjangoModelFactory):
    """An enabled endpoint on a public address (nothing listens there: tests deliver to `receiver`)."""

    class Meta:
        model = Endpoint

    organization = factory.SubFactory(OrganizationFactory)
    url = factory.Sequence(lambda n: f"https://1.1.1.1/hooks/{n}")
    events = factory.LazyFunction(lambda: list(events.EVENT_TYPES))
    secret = factory.LazyFunction(new_secret)
    created_at = factory.LazyFunction(timezone.now)


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    endpoint = factory.SubFactory(EndpointFactory)
    event_id = factory.Sequence(lambda n: f"evt_test{n:08d}")
    type = events.MESSAGE_OPENED
    payload = factory.LazyAttribute(
        lambda o: {
            "id": o.event_id,
            "type": o.type,
            "timestamp": "2026-01-01T00:00:00Z",
            "organization": str(o.endpoint.organization_id),
            "data": {"message": "1"},
        }
    )
    next_attempt_at = factory.LazyFunction(timezone.now)
