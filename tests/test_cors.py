"""Browser apps on CORS_ALLOWED_ORIGINS may call /api/ with a JWT and an organization header."""

import pytest

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"


def preflight(client, path: str, origin: str):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, x-organization",
    )


@pytest.fixture
def allowed(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]


@pytest.mark.parametrize("path", ["/api/v1/contacts/", "/api/v1/auth/login", "/api/v1/lists/x/members"])
def test_preflight_from_an_allowed_origin_allows_the_api_headers(client, allowed, path):
    response = preflight(client, path, APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-organization"} <= allowed_headers
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_preflight_from_another_origin_is_not_allowed(client, allowed):
    response = preflight(client, "/api/v1/contacts/", "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response


def test_no_origin_is_allowed_by_default(client):
    response = preflight(client, "/api/v1/contacts/", APP)
    assert "Access-Control-Allow-Origin" not in response


def test_an_api_answer_to_an_allowed_origin_carries_cors_headers(allowed, member_client):
    api, _user, _organization = member_client("viewer")
    response = api.get("/api/v1/auth/me", HTTP_ORIGIN=APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert "x-request-id" in response["Access-Control-Expose-Headers"].lower()
    # An error answer too, or the browser hides it from the app.
    missing = api.get("/api/v1/nope", HTTP_ORIGIN=APP)
    assert missing.status_code == 404
    assert missing["Access-Control-Allow-Origin"] == APP


def test_pages_outside_the_api_get_no_cors_headers(client, allowed):
    response = client.get("/health", HTTP_ORIGIN=APP)
    assert "Access-Control-Allow-Origin" not in response
