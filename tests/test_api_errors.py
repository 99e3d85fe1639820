"""Under /api/ every error is `{"detail": ...}` JSON with the right status; elsewhere Django's pages."""

import uuid

import pytest

from accounts.views import MeView

pytestmark = pytest.mark.django_db

MALFORMED_IDS = [
    "/api/v1/campaigns/not-a-uuid/",
    "/api/v1/campaigns/not-a-uuid/launch",
    "/api/v1/templates/not-a-uuid/preview",
    "/api/v1/analytics/campaigns/not-a-uuid",
    "/api/v1/messages/not-a-number/events",
    "/api/v1/contacts/12345/",
]


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/nope/", "/api/nope", "/api/v2/contacts/"])
def test_unknown_api_routes_answer_json_404(member_client, path):
    client, _user, _organization = member_client("owner")
    response = client.post(path, {}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("path", MALFORMED_IDS)
def test_malformed_ids_answer_json_404(member_client, path):
    client, _user, _organization = member_client("owner")
    for form in (path.rstrip("/"), path.rstrip("/") + "/"):
        response = client.get(form)
        assert response.status_code == 404, form
        assert response.json() == {"detail": "Not found."}, form


def test_a_well_formed_id_of_no_row_answers_json_404(member_client):
    client, _user, _organization = member_client("owner")
    response = client.get(f"/api/v1/campaigns/{uuid.uuid4()}")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize(("method", "path"), [("put", "/api/v1/auth/me"), ("delete", "/api/v1/organization/")])
def test_a_method_the_path_does_not_allow_answers_json_405(member_client, method, path):
    client, _user, _organization = member_client("owner")
    response = getattr(client, method)(path, {}, format="json")
    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert "GET" in response["Allow"]


def test_a_crash_under_the_api_answers_json_500(member_client, monkeypatch):
    client, _user, _organization = member_client("owner")
    client.raise_request_exception = False

    def crash(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(MeView, "get_object", crash)
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "A server error occurred."}


def test_with_debug_on_unknown_routes_and_crashes_still_answer_json(member_client, monkeypatch, settings):
    # With DEBUG, Django renders its technical HTML pages instead of calling handler404/500.
    settings.DEBUG = True
    client, _user, _organization = member_client("owner")
    client.raise_request_exception = False
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}

    monkeypatch.setattr(MeView, "get_object", lambda self: 1 / 0)
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 500
    assert response.json() == {"detail": "A server error occurred."}

    outside = client.get("/no-such-page")
    assert outside.status_code == 404
    assert outside["Content-Type"].startswith("text/html")


def test_outside_the_api_errors_stay_html(client):
    response = client.get("/admin-nope/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
