"""Conversions: attribution to the contact's last clicked (else opened) message within the window,
given campaigns and messages, unattributed ones kept, and the API's validation and tenancy."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import Role
from analytics.models import Attribution, Conversion
from analytics.services import conversion_record
from campaigns.models import CampaignStatus
from campaigns.tests.factories import CampaignFactory
from contacts.tests.factories import ContactFactory
from tracking.models import EventType, MessageEvent
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversions/"


def event(message, type_, at, *, machine=False, is_unique=False):
    return MessageEvent.objects.create(
        type=type_,
        occurred_at=at,
        organization_id=message.organization_id,
        campaign_id=message.campaign_id,
        message_id=message.pk,
        contact_id=message.contact_id,
        machine=machine,
        is_unique=is_unique,
        dedupe_key=uuid.uuid4().hex,
    )


@pytest.fixture
def contact():
    return ContactFactory()


def message_to(contact, **fields):
    campaign = fields.pop("campaign", None) or CampaignFactory(
        organization=contact.organization, status=CampaignStatus.RUNNING
    )
    return SentMessageFactory(campaign=campaign, contact=contact, **fields)


def record(contact, **fields):
    fields.setdefault("value", Decimal("10.00"))
    fields.setdefault("currency", "EUR")
    return conversion_record(organization_id=contact.organization_id, contact=contact, **fields)


# --- attribution ----------------------------------------------------------------------------------


def test_a_click_beats_a_later_open(contact):
    now = timezone.now()
    clicked, opened = message_to(contact), message_to(contact)
    event(clicked, EventType.CLICKED, now - timedelta(days=3))
    event(opened, EventType.OPENED, now - timedelta(hours=1))

    conversion = record(contact, occurred_at=now)
    assert (conversion.attribution, conversion.message_id, conversion.campaign_id) == (
        Attribution.CLICK,
        clicked.pk,
        clicked.campaign_id,
    )


def test_the_last_click_wins_and_an_open_counts_without_any_click(contact):
    now = timezone.now()
    first, last = message_to(contact), message_to(contact)
    event(first, EventType.CLICKED, now - timedelta(days=2))
    event(last, EventType.CLICKED, now - timedelta(days=1))
    assert record(contact, occurred_at=now).message_id == last.pk

    other = ContactFactory(organization=contact.organization)
    opened_by_other = message_to(other)
    event(opened_by_other, EventType.OPENED, now - timedelta(days=1))
    conversion = record(other, occurred_at=now)
    assert (conversion.attribution, conversion.message_id) == (Attribution.OPEN, opened_by_other.pk)


@pytest.mark.parametrize(
    ("days", "age", "attributed"),
    [
        (7, timedelta(days=7) - timedelta(minutes=1), True),
        (7, timedelta(days=7) + timedelta(minutes=1), False),
        (2, timedelta(days=2) + timedelta(minutes=1), False),
        (10, timedelta(days=9), True),
    ],
)
def test_the_attribution_window_ends_configured_days_before(settings, contact, days, age, attributed):
    settings.CONVERSION_ATTRIBUTION_DAYS = days
    now = timezone.now()
    message = message_to(contact)
    event(message, EventType.CLICKED, now - age)

    conversion = record(contact, occurred_at=now)
    assert conversion.message_id == (message.pk if attributed else None)
    assert conversion.attribution == (Attribution.CLICK if attributed else Attribution.NONE)


def test_an_engagement_after_the_conversion_does_not_earn_it(contact):
    now = timezone.now()
    message = message_to(contact)
    event(message, EventType.CLICKED, now - timedelta(hours=1))
    assert record(contact, occurred_at=now - timedelta(days=1)).attribution == Attribution.NONE


def test_machine_clicks_and_opens_are_ignored(contact):
    now = timezone.now()
    scanned, opened = message_to(contact), message_to(contact)
    event(scanned, EventType.CLICKED, now - timedelta(minutes=5), machine=True)
    event(opened, EventType.OPENED, now - timedelta(days=1))
    conversion = record(contact, occurred_at=now)
    assert (conversion.attribution, conversion.message_id) == (Attribution.OPEN, opened.pk)

    only_machines = ContactFactory(organization=contact.organization)
    proxied = message_to(only_machines)
    event(proxied, EventType.OPENED, now - timedelta(minutes=5), machine=True)
    event(proxied, EventType.CLICKED, now - timedelta(minutes=4), machine=True)
    assert record(only_machines, occurred_at=now).attribution == Attribution.NONE


def test_another_contacts_engagement_is_not_attributed(contact):
    now = timezone.now()
    other = ContactFactory(organization=contact.organization)
    event(message_to(other), EventType.CLICKED, now - timedelta(hours=1))
    conversion = record(contact, occurred_at=now)
    assert (conversion.attribution, conversion.campaign_id, conversion.message_id) == (Attribution.NONE, None, None)


def test_an_unattributed_conversion_is_kept(contact):
    conversion = record(contact, value=Decimal("49.95"), currency="USD", name="order")
    stored = Conversion.objects.get(pk=conversion.pk)
    assert (stored.attribution, stored.campaign_id, stored.message_id) == (Attribution.NONE, None, None)
    assert (stored.value, stored.currency, stored.name, stored.contact_id) == (
        Decimal("49.95"),
        "USD",
        "order",
        contact.pk,
    )


def test_a_given_campaign_or_message_is_the_attribution_whatever_was_clicked(contact):
    now = timezone.now()
    clicked = message_to(contact)
    event(clicked, EventType.CLICKED, now - timedelta(hours=1))
    campaign = CampaignFactory(organization=contact.organization)

    by_campaign = record(contact, campaign=campaign, occurred_at=now)
    assert (by_campaign.attribution, by_campaign.campaign_id, by_campaign.message_id) == (
        Attribution.GIVEN,
        campaign.pk,
        None,
    )
    given = message_to(contact)
    by_message = record(contact, message=given, occurred_at=now)
    assert (by_message.attribution, by_message.campaign_id, by_message.message_id) == (
        Attribution.GIVEN,
        given.campaign_id,
        given.pk,
    )
    both = record(contact, campaign=given.campaign, message=given, occurred_at=now)
    assert (both.campaign_id, both.message_id) == (given.campaign_id, given.pk)


def test_a_message_must_be_the_contacts_and_the_campaigns(contact):
    given = message_to(contact)
    with pytest.raises(ValidationError) as error:
        record(contact, campaign=CampaignFactory(organization=contact.organization), message=given)
    assert set(error.value.message_dict) == {"message"}
    someone_elses = message_to(ContactFactory(organization=contact.organization))
    with pytest.raises(ValidationError) as error:
        record(contact, message=someone_elses)
    assert set(error.value.message_dict) == {"message"}
    assert not Conversion.objects.exists()


# --- API ------------------------------------------------------------------------------------------


def test_post_records_by_email_and_answers_the_conversion(member_client):
    client, _, org = member_client(Role.MANAGER)
    contact = ContactFactory(organization=org, email="ana@example.com")
    message = message_to(contact)
    event(message, EventType.CLICKED, timezone.now() - timedelta(hours=2))

    response = client.post(
        URL, {"contact": "ANA@example.com", "value": "19.90", "currency": "EUR", "name": "order 1"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "contact",
        "campaign",
        "message",
        "attribution",
        "name",
        "value",
        "currency",
        "occurred_at",
    }
    assert body["contact"] == str(contact.public_id)
    assert (body["campaign"], body["message"], body["attribution"]) == (
        str(message.campaign_id),
        str(message.pk),
        "click",
    )
    assert (body["value"], body["currency"], body["name"]) == ("19.90", "EUR", "order 1")
    assert Conversion.objects.get(pk=body["id"]).organization_id == org.pk


def test_post_with_a_contact_id_campaign_and_message(member_client):
    client, _, org = member_client(Role.MANAGER)
    contact = ContactFactory(organization=org)
    message = message_to(contact)
    at = timezone.now() - timedelta(days=1)
    response = client.post(
        URL,
        {
            "contact": str(contact.public_id),
            "campaign": str(message.campaign_id),
            "message": str(message.pk),
            "value": 5,
            "currency": "GBP",
            "occurred_at": at.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert (conversion.attribution, conversion.message_id, conversion.occurred_at) == (
        Attribution.GIVEN,
        message.pk,
        at,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": "-1"}, "value"),
        ({"value": "abc"}, "value"),
        ({"value": "1.005"}, "value"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"occurred_at": "tomorrow"}, "occurred_at"),
        ({"occurred_at": "FUTURE"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
        ({"contact": "nobody@example.com"}, "contact"),
        ({"contact": "not-an-id"}, "contact"),
        ({"contact": str(uuid.uuid4())}, "contact"),
        ({"contact": None}, "contact"),
        ({"campaign": "not-a-uuid"}, "campaign"),
        ({"campaign": str(uuid.uuid4())}, "campaign"),
        ({"message": "abc"}, "message"),
        ({"message": "999999999"}, "message"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(member_client, change, field):
    client, _, org = member_client(Role.MANAGER)
    ContactFactory(organization=org, email="ana@example.com")
    body = {"contact": "ana@example.com", "value": "10.00", "currency": "EUR", **change}
    if body.get("occurred_at") == "FUTURE":
        body["occurred_at"] = (timezone.now() + timedelta(hours=1)).isoformat()
    response = client.post(URL, {k: v for k, v in body.items() if v is not None}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Conversion.objects.exists()


def test_a_slightly_fast_clock_is_accepted(member_client):
    client, _, org = member_client(Role.MANAGER)
    contact = ContactFactory(organization=org)
    at = timezone.now() + timedelta(minutes=2)
    body = {"contact": str(contact.public_id), "value": "1", "currency": "EUR", "occurred_at": at.isoformat()}
    assert client.post(URL, body, format="json").status_code == 201


def test_a_message_of_another_campaign_or_contact_is_a_400_on_message(member_client):
    client, _, org = member_client(Role.MANAGER)
    contact = ContactFactory(organization=org)
    message = message_to(contact)
    other_campaign = CampaignFactory(organization=org)
    body = {"contact": str(contact.public_id), "value": "1", "currency": "EUR", "message": str(message.pk)}
    response = client.post(URL, {**body, "campaign": str(other_campaign.pk)}, format="json")
    assert response.status_code == 400
    assert "message" in response.json()
    other_contact = ContactFactory(organization=org)
    response = client.post(URL, {**body, "contact": str(other_contact.public_id)}, format="json")
    assert response.status_code == 400
    assert "message" in response.json()


def test_another_organizations_contact_campaign_and_message_are_unknown(member_client):
    client, _, org = member_client(Role.MANAGER)
    mine = ContactFactory(organization=org, email="ana@example.com")
    theirs = ContactFactory(email="ana@example.com")  # same address, another organization
    their_message = message_to(theirs)
    body = {"value": "1", "currency": "EUR"}

    response = client.post(URL, {**body, "contact": str(theirs.public_id)}, format="json")
    assert (response.status_code, list(response.json())) == (400, ["contact"])
    response = client.post(
        URL, {**body, "contact": str(mine.public_id), "campaign": str(their_message.campaign_id)}, format="json"
    )
    assert (response.status_code, list(response.json())) == (400, ["campaign"])
    response = client.post(
        URL, {**body, "contact": str(mine.public_id), "message": str(their_message.pk)}, format="json"
    )
    assert (response.status_code, list(response.json())) == (400, ["message"])

    response = client.post(URL, {**body, "contact": "ana@example.com"}, format="json")
    assert response.status_code == 201
    assert Conversion.objects.get().contact_id == mine.pk


def test_list_is_the_organizations_filtered_and_paginated(member_client, django_assert_max_num_queries):
    client, _, org = member_client(Role.VIEWER)
    ana, bob = ContactFactory(organization=org), ContactFactory(organization=org)
    campaign = CampaignFactory(organization=org)
    for _ in range(3):
        record(ana, campaign=campaign)
    record(bob)
    record(ContactFactory())  # another organization's

    with django_assert_max_num_queries(6):
        response = client.get(URL)
    assert response.status_code == 200
    assert response.json()["count"] == 4
    assert {row["contact"] for row in response.json()["results"]} == {str(ana.public_id), str(bob.public_id)}
    assert client.get(URL, {"campaign": str(campaign.pk)}).json()["count"] == 3
    assert client.get(URL, {"contact": str(bob.public_id)}).json()["count"] == 1
    assert len(client.get(URL, {"page_size": 2}).json()["results"]) == 2


@pytest.mark.parametrize(
    ("role", "can_read", "can_write"),
    [
        (Role.OWNER, True, True),
        (Role.MANAGER, True, True),
        (Role.VIEWER, True, False),
        (Role.AGENT, False, False),
    ],
)
def test_roles(member_client, role, can_read, can_write):
    client, _, org = member_client(role)
    contact = ContactFactory(organization=org)
    assert client.get(URL).status_code == (200 if can_read else 403)
    response = client.post(URL, {"contact": str(contact.public_id), "value": "1", "currency": "EUR"}, format="json")
    assert response.status_code == (201 if can_write else 403)
