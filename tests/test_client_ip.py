"""X-Forwarded-For is trusted only as far as NUM_PROXIES says: a client cannot pick its address."""

import pytest
from django.test import RequestFactory, override_settings

from accounts.tests.factories import PASSWORD, UserFactory
from config.clientip import client_ip

LOGIN = "/api/v1/auth/login"


def behind_one_proxy():
    from django.conf import settings

    return override_settings(NUM_PROXIES=1, REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1})


def request_with(remote_addr="198.51.100.9", forwarded=None):
    extra = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_proxies_the_header_is_ignored():
    assert client_ip(request_with(forwarded="203.0.113.5")) == "198.51.100.9"
    assert client_ip(request_with(forwarded="203.0.113.5, 10.0.0.1")) == "198.51.100.9"


def test_behind_proxies_the_address_the_nearest_trusted_proxy_saw_is_used():
    with behind_one_proxy():
        # The client may send its own X-Forwarded-For; our proxy appends what it saw last.
        assert client_ip(request_with(remote_addr="10.0.0.2", forwarded="1.2.3.4, 203.0.113.5")) == "203.0.113.5"
        assert client_ip(request_with(remote_addr="10.0.0.2")) == "10.0.0.2"
    with override_settings(NUM_PROXIES=2):
        assert client_ip(request_with(forwarded="1.2.3.4, 203.0.113.5, 10.0.0.3")) == "203.0.113.5"
        assert client_ip(request_with(forwarded="203.0.113.5")) == "203.0.113.5"


def test_no_remote_address_is_empty():
    request = RequestFactory().get("/")
    del request.META["REMOTE_ADDR"]
    assert client_ip(request) == ""


@pytest.mark.django_db
@pytest.mark.parametrize("path", [LOGIN, f"{LOGIN}/"])
def test_rotating_x_forwarded_for_does_not_escape_the_login_lockout(api_client, settings, path):
    user = UserFactory()
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        wrong = api_client.post(
            path, {"email": user.email, "password": "wrong"}, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        )
        assert wrong.status_code == 401
    locked = api_client.post(
        path, {"email": user.email, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.200"
    )
    assert locked.status_code == 429


@pytest.mark.django_db
def test_rotating_x_forwarded_for_does_not_escape_the_login_throttle(api_client, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    user = UserFactory()
    codes = [
        api_client.post(
            LOGIN, {"email": user.email, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 200, 429]


@pytest.mark.django_db
def test_behind_one_proxy_the_forwarded_address_is_the_client(api_client, settings):
    user = UserFactory()
    with behind_one_proxy():
        for _ in range(settings.LOGIN_FAILURE_LIMIT):
            api_client.post(
                LOGIN, {"email": user.email, "password": "wrong"}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.7"
            )
        # The locked-out client is the forwarded address, not the proxy (REMOTE_ADDR) ...
        locked = api_client.post(
            LOGIN, {"email": user.email, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.7"
        )
        assert locked.status_code == 429
        # ... so another client behind the same proxy still signs in.
        other = api_client.post(
            LOGIN, {"email": user.email, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.8"
        )
        assert other.status_code == 200


@pytest.mark.django_db
def test_behind_one_proxy_the_login_throttle_counts_the_forwarded_address(api_client, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"login": "2/min"})
    user = UserFactory()
    body = {"email": user.email, "password": PASSWORD}
    with behind_one_proxy():
        first = [api_client.post(LOGIN, body, format="json", HTTP_X_FORWARDED_FOR="203.0.113.7") for _ in range(3)]
        assert [r.status_code for r in first] == [200, 200, 429]
        assert api_client.post(LOGIN, body, format="json", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


@pytest.mark.django_db
def test_a_contacts_consent_address_is_the_client_not_a_forged_header(member_client):
    from contacts.models import Contact

    client, _user, organization = member_client("manager")
    response = client.post(
        "/api/v1/contacts/",
        {"email": "consent@example.com"},
        format="json",
        REMOTE_ADDR="198.51.100.7",
        HTTP_X_FORWARDED_FOR="203.0.113.99",
    )
    assert response.status_code == 201, response.content
    contact = Contact.objects.get(organization=organization, email="consent@example.com")
    assert contact.consent_ip == "198.51.100.7"
