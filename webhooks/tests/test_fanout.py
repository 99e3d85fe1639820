"""Fan-out from real rows of the other apps: deliveries for the enabled endpoints subscribed to each
event type, none for anyone else, and none twice."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from callbacks.models import CallbackStatus
from callbacks.tests.factories import CallbackRequestFactory
from campaigns import sequences
from campaigns import services as campaign_services
from campaigns.models import Campaign, CampaignStatus, Enrollment, EnrollmentStatus, MessageStatus, Sequence
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, sends_from
from contacts import hooks
from contacts import services as contact_services
from contacts.models import Contact, ContactStatus
from contacts.tests.factories import ContactFactory, TagFactory
from tracking.models import EventType, MessageEvent
from tracking.tests.factories import SentMessageFactory
from webhooks import events as E
from webhooks import fanout
from webhooks.models import Delivery, FanoutState
from webhooks.tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


def event_row(message, type_, **fields):
    now = timezone.now()
    return MessageEvent.objects.create(
        type=type_,
        occurred_at=now,
        received_at=now,
        organization_id=message.organization_id,
        campaign_id=message.campaign_id,
        message_id=message.pk,
        contact_id=message.contact_id,
        recipient=message.to_address,
        dedupe_key=f"test:{message.pk}:{type_}:{MessageEvent.objects.count()}",
        **fields,
    )


def delivered(endpoint) -> Counter:
    return Counter(Delivery.objects.filter(endpoint=endpoint).values_list("type", flat=True))


@pytest.fixture
def org_endpoints():
    """An organization with an endpoint for everything, one for opens only and a disabled one; and
    another organization with an endpoint for everything."""
    every = EndpointFactory()
    org = every.organization
    opens = EndpointFactory(organization=org, events=[E.MESSAGE_OPENED])
    disabled = EndpointFactory(organization=org, enabled=False)
    elsewhere = EndpointFactory()
    fanout.fanout_run()  # the first run starts every source's watermark now
    return org, every, opens, disabled, elsewhere


def test_message_events_fan_out_to_subscribed_endpoints_only(org_endpoints):
    org, every, opens, disabled, elsewhere = org_endpoints
    message = SentMessageFactory(campaign=CampaignFactory(organization=org, status=CampaignStatus.RUNNING))
    human_open = event_row(message, EventType.OPENED, is_unique=True)
    event_row(message, EventType.OPENED, machine=True)  # a privacy proxy: no event
    event_row(message, EventType.CLICKED, url="https://shop.example.com/", is_unique=True)
    event_row(message, EventType.CLICKED, machine=True, url="https://shop.example.com/")
    for type_ in (EventType.DELIVERED, EventType.BOUNCED, EventType.COMPLAINED, EventType.UNSUBSCRIBED):
        event_row(message, type_, detail="550 no such user" if type_ == EventType.BOUNCED else "")
    event_row(message, EventType.SOFT_BOUNCED)  # not an event type of ours

    fanout.fanout_run()

    assert delivered(every) == {
        E.MESSAGE_OPENED: 1,
        E.MESSAGE_CLICKED: 1,
        E.MESSAGE_DELIVERED: 1,
        E.MESSAGE_BOUNCED: 1,
        E.MESSAGE_COMPLAINED: 1,
        E.MESSAGE_UNSUBSCRIBED: 1,
    }
    assert delivered(opens) == {E.MESSAGE_OPENED: 1}
    assert delivered(disabled) == {}
    assert delivered(elsewhere) == {}

    opened = Delivery.objects.get(endpoint=every, type=E.MESSAGE_OPENED)
    assert opened.status == "pending"
    assert opened.next_attempt_at is not None
    assert opened.payload["id"] == opened.event_id
    assert opened.event_id.startswith("evt_")
    assert opened.payload["type"] == E.MESSAGE_OPENED
    assert opened.payload["organization"] == str(org.pk)
    assert opened.payload["timestamp"].endswith("Z")
    assert opened.payload["data"] == {
        "message": str(message.pk),
        "campaign": str(message.campaign_id),
        "contact": str(message.contact.public_id),
        "channel": "email",
        "recipient": message.to_address,
        "occurred_at": opened.payload["timestamp"],
        "first": True,
    }
    # Both endpoints got the same event under the same id.
    assert Delivery.objects.get(endpoint=opens).event_id == opened.event_id
    bounced = Delivery.objects.get(endpoint=every, type=E.MESSAGE_BOUNCED)
    assert bounced.payload["data"]["detail"] == "550 no such user"
    assert FanoutState.objects.get(source="message_events").last_id >= human_open.pk

    # Reading again (and the rows just below the watermark) makes nothing twice.
    fanout.fanout_run()
    assert sum(delivered(every).values()) == 6


def test_sent_and_failed_messages_fan_out(org_endpoints):
    org, every, opens, _disabled, elsewhere = org_endpoints
    campaign = CampaignFactory(organization=org, status=CampaignStatus.RUNNING)
    sent = SentMessageFactory(campaign=campaign, sent_at=timezone.now())
    SentMessageFactory(campaign=campaign, sent_at=timezone.now() - timedelta(days=2))  # long before
    failed = SentMessageFactory(
        campaign=campaign,
        status=MessageStatus.FAILED,
        sent_at=None,
        scheduled_at=timezone.now(),
        attempts=3,
        last_error="451 try later",
    )
    SentMessageFactory(campaign=CampaignFactory(status=CampaignStatus.RUNNING), sent_at=timezone.now())  # elsewhere

    fanout.fanout_run()
    fanout.fanout_run()

    assert delivered(every) == {E.MESSAGE_SENT: 1, E.MESSAGE_FAILED: 1}
    assert delivered(opens) == {}
    assert delivered(elsewhere) == {}
    sent_data = Delivery.objects.get(endpoint=every, type=E.MESSAGE_SENT).payload["data"]
    assert (sent_data["message"], sent_data["to"], sent_data["contact"]) == (
        str(sent.pk),
        sent.to_address,
        str(sent.contact.public_id),
    )
    failed_data = Delivery.objects.get(endpoint=every, type=E.MESSAGE_FAILED).payload["data"]
    assert (failed_data["message"], failed_data["error"], failed_data["attempts"]) == (
        str(failed.pk),
        "451 try later",
        3,
    )


def test_contacts_created_and_unsubscribed_come_through_the_contacts_hook(
    org_endpoints, django_capture_on_commit_callbacks
):
    org, every, opens, _disabled, elsewhere = org_endpoints
    with django_capture_on_commit_callbacks(execute=True):
        contact = contact_services.contact_create(
            organization_id=org.pk, data={"email": "new@example.com", "first_name": "Nova"}
        )
    created = Delivery.objects.get(endpoint=every, type=E.CONTACT_CREATED)
    assert created.payload["data"]["contact"] == str(contact.public_id)
    assert created.payload["data"]["email"] == "new@example.com"
    assert created.payload["data"]["source"] == "api"

    with django_capture_on_commit_callbacks(execute=True):
        contact_services.contacts_set_status(
            organization_id=org.pk, contact_ids=[contact.pk], status=ContactStatus.UNSUBSCRIBED, hook=hooks.UNSUBSCRIBED
        )
    assert delivered(every) == {E.CONTACT_CREATED: 1, E.CONTACT_UNSUBSCRIBED: 1}
    assert delivered(opens) == {}
    assert delivered(elsewhere) == {}


def test_an_organization_without_endpoints_gets_no_deliveries_and_one_query(
    org_endpoints, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    lonely = ContactFactory().organization
    contact = ContactFactory(organization=lonely)
    with django_assert_max_num_queries(1):
        fanout.on_contact_event(
            organization_id=lonely.pk,
            name=hooks.CONTACT_CREATED,
            contacts=Contact.objects.filter(pk=contact.pk),
            properties={},
            occurred_at=timezone.now(),
        )
    message = SentMessageFactory(campaign=CampaignFactory(organization=lonely, status=CampaignStatus.RUNNING))
    event_row(message, EventType.OPENED, is_unique=True)
    fanout.fanout_run()
    assert not Delivery.objects.exists()


def test_campaign_launch_and_completion_enrollments_and_callbacks_fan_out(org_endpoints):
    org, every, opens, _disabled, elsewhere = org_endpoints
    sends_from(org, "news@mail.example.com")
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, tags=[vip])
    campaign = CampaignFactory(organization=org, audience={"tags": ["vip"]})
    campaign_services.campaign_launch(campaign=campaign)
    finished = CampaignFactory(organization=org)
    Campaign.objects.filter(pk=finished.pk).update(status=CampaignStatus.COMPLETED, completed_at=timezone.now())

    template = EmailTemplateFactory(organization=org)
    sequence = sequences.sequence_activate(
        sequence=sequences.sequence_save(
            sequence=Sequence(organization=org, name="Welcome", channel="email"),
            trigger={"type": "api"},
            steps=[{"order": 1, "template": str(template.pk)}],
        )
    )
    walker = ContactFactory(organization=org)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[walker.pk])
    Enrollment.objects.filter(sequence=sequence).update(status=EnrollmentStatus.COMPLETED, exited_at=timezone.now())

    callback = CallbackRequestFactory(organization=org)
    closed = CallbackRequestFactory(organization=org)
    closed.status, closed.closed_at, closed.resolution = CallbackStatus.COMPLETED, timezone.now(), "Sold"
    closed.save()

    fanout.fanout_run()

    assert delivered(every) == {
        E.CAMPAIGN_LAUNCHED: 1,
        E.CAMPAIGN_COMPLETED: 1,
        E.ENROLLMENT_COMPLETED: 1,
        E.CALLBACK_CREATED: 2,
        E.CALLBACK_COMPLETED: 1,
    }
    assert delivered(opens) == {}
    assert delivered(elsewhere) == {}
    launched = Delivery.objects.get(endpoint=every, type=E.CAMPAIGN_LAUNCHED).payload["data"]
    assert (launched["campaign"], launched["name"]) == (str(campaign.pk), campaign.name)
    assert Delivery.objects.get(endpoint=every, type=E.CAMPAIGN_COMPLETED).payload["data"]["campaign"] == str(
        finished.pk
    )
    walked = Delivery.objects.get(endpoint=every, type=E.ENROLLMENT_COMPLETED).payload["data"]
    assert (walked["sequence"], walked["contact"]) == (str(sequence.pk), str(walker.public_id))
    created = {d.payload["data"]["callback"] for d in Delivery.objects.filter(endpoint=every, type=E.CALLBACK_CREATED)}
    assert created == {str(callback.pk), str(closed.pk)}
    done = Delivery.objects.get(endpoint=every, type=E.CALLBACK_COMPLETED).payload["data"]
    assert (done["callback"], done["resolution"]) == (str(closed.pk), "Sold")

    fanout.fanout_run()
    assert sum(delivered(every).values()) == 6


def test_an_endpoint_gets_only_what_happened_after_it_was_created():
    fanout.fanout_run()
    message = SentMessageFactory(campaign=CampaignFactory(status=CampaignStatus.RUNNING), sent_at=timezone.now())
    event_row(message, EventType.OPENED, is_unique=True)
    endpoint = EndpointFactory(organization=message.organization)
    fanout.fanout_run()
    assert delivered(endpoint) == {}
