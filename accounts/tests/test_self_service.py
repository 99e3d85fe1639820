"""Self-service for a signed-in user and for one who forgot their password: profile, password change,
password reset by email."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"
PASSWORD_CHANGE = "/api/v1/auth/password"
RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
NEW_PASSWORD = "Another-long-passphrase-42"


def login(email: str, password: str = PASSWORD) -> dict:
    response = APIClient().post(LOGIN, {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def signed_in(tokens: dict) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client


def refreshes(refresh: str) -> bool:
    return APIClient().post(REFRESH, {"refresh": refresh}, format="json").status_code == 200


def reset_token_from(message) -> str:
    [link] = re.findall(r"https?://\S+", message.body)
    return parse_qs(urlparse(link).query)["token"][0]


# --- PATCH /auth/me -------------------------------------------------------------------------------


def test_patch_me_changes_name_locale_and_timezone():
    membership = MembershipFactory()
    client = signed_in(login(membership.user.email))
    response = client.patch(
        ME,
        {"full_name": "Ana de Vries", "locale": "nl-NL", "timezone": "America/New_York", "email": "x@example.com"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["full_name"], body["locale"], body["timezone"]) == ("Ana de Vries", "nl-NL", "America/New_York")
    assert body["email"] == membership.user.email  # read only
    assert [m["role"] for m in body["memberships"]] == [membership.role]
    user = User.objects.get(pk=membership.user.pk)
    assert (user.full_name, user.locale, user.timezone, user.email) == (
        "Ana de Vries",
        "nl-NL",
        "America/New_York",
        membership.user.email,
    )
    assert client.get(ME).json()["timezone"] == "America/New_York"


@pytest.mark.parametrize(("field", "value"), [("timezone", "Mars/Olympus_Mons"), ("locale", "not a locale!")])
def test_patch_me_refuses_an_unknown_timezone_or_locale_naming_it(field, value):
    user = UserFactory(full_name="Before")
    response = signed_in(login(user.email)).patch(ME, {field: value, "full_name": "After"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert value in response.json()[field][0]
    user.refresh_from_db()
    assert user.full_name == "Before"
    assert getattr(user, field) == ""


def test_patch_me_needs_a_token():
    assert APIClient().patch(ME, {"full_name": "X"}, format="json").status_code == 401


# --- POST /auth/password --------------------------------------------------------------------------


def test_password_change_revokes_every_other_refresh_token():
    user = UserFactory()
    other_device = login(user.email)
    this_device = login(user.email)
    response = signed_in(this_device).post(
        PASSWORD_CHANGE,
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD, "refresh": this_device["refresh"]},
        format="json",
    )
    assert response.status_code == 204, response.content
    assert response.content == b""
    assert not refreshes(other_device["refresh"])
    assert refreshes(this_device["refresh"])
    login(user.email, NEW_PASSWORD)
    assert APIClient().post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").status_code == 401


def test_password_change_without_a_refresh_token_revokes_them_all():
    user = UserFactory()
    tokens = [login(user.email) for _ in range(3)]
    response = signed_in(tokens[0]).post(
        PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 204
    assert not any(refreshes(t["refresh"]) for t in tokens)


def test_password_change_with_a_wrong_old_password_is_400_and_changes_nothing():
    user = UserFactory()
    other_device = login(user.email)
    tokens = login(user.email)
    response = signed_in(tokens).post(
        PASSWORD_CHANGE, {"old_password": "not-my-password", "new_password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["old_password"]
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    assert refreshes(other_device["refresh"])


def test_password_change_applies_the_password_validators():
    user = UserFactory()
    response = signed_in(login(user.email)).post(
        PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password": "12345678"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["new_password"]
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_password_change_refuses_someone_elses_refresh_token():
    user, stranger = UserFactory(), UserFactory()
    response = signed_in(login(user.email)).post(
        PASSWORD_CHANGE,
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD, "refresh": login(stranger.email)["refresh"]},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()) == ["refresh"]
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


# --- POST /auth/password-reset and /confirm -----------------------------------------------------


def test_password_reset_mails_a_link_that_works_once(settings, django_capture_on_commit_callbacks):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    user = UserFactory(email="ana@example.com")
    old_session = login(user.email)
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post(RESET, {"email": "ANA@example.com"}, format="json")
    assert response.status_code == 202
    [message] = mail.outbox
    assert message.to == ["ana@example.com"]
    assert "https://cc.example.com/password-reset/confirm?token=" in message.body
    token = reset_token_from(message)

    confirm = APIClient().post(RESET_CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert confirm.status_code == 204, confirm.content
    login(user.email, NEW_PASSWORD)
    assert not refreshes(old_session["refresh"])

    again = APIClient().post(RESET_CONFIRM, {"token": token, "new_password": "Yet-another-passphrase-7"}, format="json")
    assert again.status_code == 400
    assert list(again.json()) == ["token"]
    login(user.email, NEW_PASSWORD)


def test_password_reset_answers_the_same_for_unknown_addresses(django_capture_on_commit_callbacks):
    UserFactory(email="ana@example.com")
    answers, queries = [], []
    for email in ("ana@example.com", "nobody@example.com"):
        with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks() as callbacks:
            response = APIClient().post(RESET, {"email": email}, format="json")
        answers.append((response.status_code, response.json()))
        queries.append(len(captured))
        # The same work either way: the address is looked up by the queued task, not the request.
        assert len(callbacks) == 1
    assert answers[0] == answers[1]
    assert answers[0][0] == 202
    assert queries[0] == queries[1]
    assert mail.outbox == []


def test_password_reset_mails_nobody_for_unknown_or_inactive_addresses(django_capture_on_commit_callbacks):
    UserFactory(email="gone@example.com", is_active=False)
    for email in ("gone@example.com", "nobody@example.com"):
        with django_capture_on_commit_callbacks(execute=True):
            assert APIClient().post(RESET, {"email": email}, format="json").status_code == 202
    assert mail.outbox == []


def test_repeated_reset_requests_mail_once_a_minute(django_capture_on_commit_callbacks):
    UserFactory(email="ana@example.com")
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert APIClient().post(RESET, {"email": "ana@example.com"}, format="json").status_code == 202
    assert len(mail.outbox) == 1


def test_password_reset_is_throttled(monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"password_reset": "2/hour"})
    client = APIClient()
    statuses = [client.post(RESET, {"email": f"u{i}@example.com"}, format="json").status_code for i in range(3)]
    assert statuses == [202, 202, 429]
    assert client.post(RESET_CONFIRM, {"token": "x.y", "new_password": NEW_PASSWORD}).status_code == 429


def test_password_reset_needs_an_email_address():
    response = APIClient().post(RESET, {"email": "not-an-address"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["email"]


@pytest.mark.parametrize("token", ["garbage", "x.y", "MTIz.abc-def", "....", "%%%.%%%", ""])
def test_password_reset_confirm_with_a_bad_token_is_400_naming_token(token):
    user = UserFactory()
    response = APIClient().post(RESET_CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["token"]
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_password_reset_confirm_applies_the_password_validators_and_keeps_the_token(
    django_capture_on_commit_callbacks,
):
    user = UserFactory(email="ana@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post(RESET, {"email": user.email}, format="json")
    token = reset_token_from(mail.outbox[0])
    weak = APIClient().post(RESET_CONFIRM, {"token": token, "new_password": "password"}, format="json")
    assert weak.status_code == 400
    assert list(weak.json()) == ["new_password"]
    ok = APIClient().post(RESET_CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert ok.status_code == 204


def test_an_invitation_link_is_no_password_reset_token():
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    user = UserFactory()
    invitation = f"{urlsafe_base64_encode(force_bytes(user.pk))}.{default_token_generator.make_token(user)}"
    response = APIClient().post(RESET_CONFIRM, {"token": invitation, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["token"]
