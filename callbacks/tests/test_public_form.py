"""The public callback form behind `{{ callback_url }}`: signed links, no login."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from django.core import signing

from accounts.tests.factories import OrganizationFactory
from callbacks.models import CallbackActivity, CallbackRequest, CallbackSource
from callbacks.tokens import SALT, callback_url, make_token, read_token
from contacts.tests.factories import ContactFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("callbacks.tests.urls")]


@pytest.fixture
def contact():
    return ContactFactory(
        organization=OrganizationFactory(name="Acme Energy"),
        first_name="Ana",
        phone="+31612345678",
        timezone="Europe/London",
    )


def form_path(contact, campaign_id=None):
    token = make_token(
        organization_id=contact.organization_id, contact_public_id=contact.public_id, campaign_id=campaign_id
    )
    return f"/callback/{token}"


def test_callback_url_is_absolute_and_carries_the_ids(settings, contact):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    campaign_id = uuid4()
    url = callback_url(
        organization_id=contact.organization_id, contact_public_id=contact.public_id, campaign_id=campaign_id
    )
    prefix = "https://cc.example.com/callback/"
    assert url.startswith(prefix)
    data = read_token(url.removeprefix(prefix))
    assert (data.organization_id, data.contact_public_id, data.campaign_id) == (
        contact.organization_id,
        contact.public_id,
        campaign_id,
    )


def test_the_form_shows_with_the_phone_prefilled(client, contact):
    response = client.get(form_path(contact))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hi Ana" in page
    assert "Acme Energy" in page
    assert 'value="+31612345678"' in page
    assert "Europe/London" in page


def test_posting_the_form_records_a_request(client, contact):
    campaign_id = uuid4()
    response = client.post(
        form_path(contact, campaign_id),
        {
            "phone": "+44 20 7946 0958",
            "reason": "Switching my contract",
            "urgency": "today",
            "preferred_start": "2025-07-01T10:00",
            "preferred_end": "2025-07-01T12:00",
        },
    )
    assert response.status_code == 200, response.content.decode()
    assert "Thank you, Ana" in response.content.decode()
    callback = CallbackRequest.objects.get()
    assert callback.organization_id == contact.organization_id
    assert callback.contact == contact
    assert callback.source == CallbackSource.PUBLIC_FORM
    assert callback.campaign_id == campaign_id
    assert callback.phone == "+442079460958"
    assert (callback.reason, callback.urgency) == ("Switching my contract", "today")
    assert (callback.priority_score, callback.priority) == (20, "normal")
    # Typed in the contact's time zone (London, summer time: UTC+1).
    assert callback.preferred_start == datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    assert callback.preferred_end == datetime(2025, 7, 1, 11, 0, tzinfo=UTC)
    created = CallbackActivity.objects.get(callback=callback)
    assert created.actor is None
    assert created.data["source"] == "public_form"


@pytest.mark.parametrize(
    "make_bad_token",
    [
        lambda c: "garbage",
        lambda c: make_token(organization_id=c.organization_id, contact_public_id=c.public_id)[:-2] + "xx",
        lambda c: signing.dumps({"o": str(c.organization_id), "c": str(c.public_id)}, salt="another.salt"),
        lambda c: signing.dumps({"o": str(c.organization_id)}, salt=SALT),
        lambda c: make_token(organization_id=uuid4(), contact_public_id=c.public_id),
        lambda c: make_token(organization_id=OrganizationFactory().pk, contact_public_id=c.public_id),
        lambda c: make_token(organization_id=c.organization_id, contact_public_id=uuid4()),
    ],
    ids=["garbage", "tampered", "other-salt", "incomplete", "unknown-org", "wrong-org", "unknown-contact"],
)
def test_a_bad_token_is_404_and_records_nothing(client, contact, make_bad_token):
    path = f"/callback/{make_bad_token(contact)}"
    assert client.get(path).status_code == 404
    assert client.post(path, {"phone": "+31612345678", "urgency": "asap"}).status_code == 404
    assert not CallbackRequest.objects.exists()


def test_an_expired_token_is_404(client, contact, settings):
    path = form_path(contact)
    settings.CALLBACK_FORM_MAX_AGE = timedelta(seconds=-1)
    assert client.get(path).status_code == 404
    assert client.post(path, {"phone": "+31612345678", "urgency": "asap"}).status_code == 404
    assert not CallbackRequest.objects.exists()


def test_an_erased_contact_is_404(client, contact):
    path = form_path(contact)
    contact.erased_at = datetime.now(UTC)
    contact.save(update_fields=["erased_at"])
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"phone": "12345", "urgency": "anytime"}, "is not an international phone number"),
        ({"phone": "+31 6 1234", "urgency": "anytime"}, "is not a valid phone number"),
        ({"phone": "", "urgency": "anytime"}, "This field is required."),
        (
            {"phone": "+31612345678", "urgency": "anytime", "preferred_start": "2025-07-01T10:00"},
            "Give both ends of the time window",
        ),
        (
            {
                "phone": "+31612345678",
                "urgency": "anytime",
                "preferred_start": "2025-07-01T12:00",
                "preferred_end": "2025-07-01T10:00",
            },
            "The end must be after the start.",
        ),
    ],
)
def test_bad_input_re_renders_the_form_with_the_error(client, contact, data, message):
    response = client.post(form_path(contact), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert "<form" in page
    assert not CallbackRequest.objects.exists()


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00", "0001-01-01T02:00"),
        ("1969-12-31T10:00", "1969-12-31T12:00"),
        ("2025-07-01T10:00", "2201-07-01T12:00"),
    ],
    ids=["year-1", "before-1970", "after-2200"],
)
def test_a_preferred_time_outside_the_years_re_renders_the_form(client, contact, start, end):
    data = {"phone": "+31612345678", "urgency": "anytime", "preferred_start": start, "preferred_end": end}
    response = client.post(form_path(contact), data)
    assert response.status_code == 400
    assert "Must be between the years 1970 and 2200." in response.content.decode()
    assert not CallbackRequest.objects.exists()


def test_posts_are_throttled_per_link(client, contact, settings):
    settings.CALLBACK_FORM_POSTS_PER_TOKEN_PER_HOUR = 2
    path = form_path(contact)
    for _ in range(2):
        assert client.post(path, {"phone": "+31612345678", "urgency": "asap"}).status_code == 200
    blocked = client.post(path, {"phone": "+31612345678", "urgency": "asap"})
    assert blocked.status_code == 429
    assert CallbackRequest.objects.count() == 2
    assert client.get(path).status_code == 200  # reading the form is not limited


def test_posts_are_throttled_per_client(client, settings):
    settings.CALLBACK_FORM_POSTS_PER_HOUR = 3
    organization = OrganizationFactory()
    paths = [form_path(ContactFactory(organization=organization, phone="+31612345678")) for _ in range(4)]
    codes = [client.post(path, {"phone": "+31612345678", "urgency": "asap"}).status_code for path in paths]
    assert codes == [200, 200, 200, 429]
    assert CallbackRequest.objects.count() == 3
