from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Membership, Organization, Role, User
from accounts.tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def register(api_client, email="ana@example.com", password="Correct-horse-battery-9", org="Ana's Shop"):
    return api_client.post(REGISTER, {"email": email, "password": password, "organization_name": org}, format="json")


def test_register_then_login_then_me(api_client):
    response = register(api_client, email="Ana@Example.com")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "ana@example.com"
    assert body["organization"]["name"] == "Ana's Shop"
    assert body["organization"]["timezone"] == "Europe/Amsterdam"
    assert body["access"]
    assert body["refresh"]
    assert Membership.objects.get(user__email="ana@example.com").role == Role.OWNER

    login = api_client.post(LOGIN, {"email": "ANA@example.com", "password": "Correct-horse-battery-9"}, format="json")
    assert login.status_code == 200, login.content
    tokens = login.json()
    assert set(tokens) == {"access", "refresh"}

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = api_client.get(ME)
    assert me.status_code == 200
    assert me.json()["email"] == "ana@example.com"
    assert me.json()["memberships"] == [
        {"organization": body["organization"], "role": "owner"},
    ]


def test_register_refuses_weak_password_and_creates_nothing(api_client):
    response = register(api_client, password="12345678")
    assert response.status_code == 400
    assert "password" in response.json()
    assert not User.objects.exists()
    assert not Organization.objects.exists()


def test_register_refuses_duplicate_email_case_insensitively(api_client):
    assert register(api_client).status_code == 201
    response = register(api_client, email="ANA@example.COM", org="Another")
    assert response.status_code == 400
    assert "email" in response.json()
    assert Organization.objects.count() == 1


def test_register_reports_missing_fields(api_client):
    response = api_client.post(REGISTER, {"email": "not-an-email"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"email", "password", "organization_name"}


def test_login_with_wrong_password_is_401(api_client):
    user = UserFactory()
    response = api_client.post(LOGIN, {"email": user.email, "password": "wrong-password"}, format="json")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_refresh_gives_new_access_and_rotated_refresh_is_blacklisted(api_client):
    user = UserFactory()
    tokens = api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").json()

    refreshed = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200
    assert refreshed.json()["access"]
    assert refreshed.json()["refresh"] != tokens["refresh"]

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert api_client.get(ME).status_code == 200

    # Rotation blacklists the old refresh token.
    reused = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert reused.status_code == 401


def test_logout_blacklists_the_refresh_token(api_client):
    user = UserFactory()
    tokens = api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    assert api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_logout_with_garbage_token_is_400(api_client):
    user = UserFactory()
    tokens = api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = api_client.post("/api/v1/auth/logout", {"refresh": "garbage"}, format="json")
    assert response.status_code == 400
    assert "refresh" in response.json()


def test_forged_token_is_401(api_client):
    user = UserFactory()
    MembershipFactory(user=user)
    token = str(AccessToken.for_user(user))
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert api_client.get(ME).status_code == 401


def test_token_signed_with_another_key_is_401(api_client):
    import jwt

    user = UserFactory()
    valid = AccessToken.for_user(user)
    forged = jwt.encode(dict(valid.payload), "not-our-secret-but-long-enough-for-hs256-keys", algorithm="HS256")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert api_client.get(ME).status_code == 401


def test_expired_token_is_401(api_client):
    user = UserFactory()
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get(ME).status_code == 401


def test_no_token_is_401(api_client):
    assert api_client.get(ME).status_code == 401


def test_login_is_throttled_after_repeated_failures(api_client, settings):
    user = UserFactory()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        response = api_client.post(LOGIN, {"email": user.email, "password": "wrong"}, format="json")
        assert response.status_code == 401
    # Locked out now, even with the right password.
    locked = api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json")
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers
    # Another account from the same client still signs in.
    other = UserFactory()
    assert api_client.post(LOGIN, {"email": other.email, "password": PASSWORD}, format="json").status_code == 200


def test_successful_login_resets_the_failure_count(api_client, settings):
    user = UserFactory()
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        api_client.post(LOGIN, {"email": user.email, "password": "wrong"}, format="json")
    assert api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").status_code == 200
    assert api_client.post(LOGIN, {"email": user.email, "password": "wrong"}, format="json").status_code == 401
    assert api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").status_code == 200


def test_register_is_rate_limited(api_client, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"register": "2/hour"})
    assert register(api_client, email="a@example.com").status_code == 201
    assert register(api_client, email="b@example.com").status_code == 201
    assert register(api_client, email="c@example.com").status_code == 429
    assert not User.objects.filter(email="c@example.com").exists()


@pytest.mark.parametrize("slash", ["", "/"])
def test_account_paths_answer_with_and_without_a_trailing_slash(api_client, slash):
    user = UserFactory()
    membership = MembershipFactory(user=user, role=Role.OWNER)
    tokens = api_client.post(f"{LOGIN}{slash}", {"email": user.email, "password": PASSWORD}, format="json").json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get(f"{ME}{slash}").status_code == 200
    assert api_client.get(f"/api/v1/organization{slash}").json()["id"] == str(membership.organization_id)
    assert api_client.get(f"/api/v1/members{slash}").status_code == 200
    logout = api_client.post(f"/api/v1/auth/logout{slash}", {"refresh": tokens["refresh"]}, format="json")
    assert logout.status_code == 204
    assert api_client.post(f"{REGISTER}{slash}", {}, format="json").status_code == 400
