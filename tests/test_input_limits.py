"""Request bodies within bounds: size (before reading), text PostgreSQL can store, nesting."""

import io
import json
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.http import HttpResponse
from django.test import RequestFactory

from accounts.models import Role
from config.middleware import RequestSizeLimitMiddleware
from config.parsers import BoundedJSONParser, RequestTooLarge
from contacts.models import Contact, Tag

pytestmark = pytest.mark.django_db

HUNDRED_MB = 100 * 1024 * 1024
SIZE_LIMIT_MIDDLEWARE = [
    "config.middleware.RequestIDMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",
    *django_settings.MIDDLEWARE[1:],
]


class UnreadableBody(io.BytesIO):
    """A request body that records every read: the limits must refuse without reading."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads = 0

    def read(self, *args):
        self.reads += 1
        return super().read(*args)


@pytest.fixture
def manager(member_client):
    client, _, organization = member_client(Role.MANAGER)
    return client, organization


def post_json(client, path: str, raw: bytes, **extra):
    return client.generic("POST", path, raw, content_type="application/json", **extra)


# --- size ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_middleware", [False, True], ids=["parser", "middleware"])
def test_a_100_mb_content_length_is_413_without_reading_the_body(settings, manager, with_middleware):
    if with_middleware:
        settings.MIDDLEWARE = SIZE_LIMIT_MIDDLEWARE
    client, organization = manager
    body = UnreadableBody(b'{"name": "vip"}')

    response = post_json(
        client, "/api/v1/tags/", b'{"name": "vip"}', CONTENT_LENGTH=str(HUNDRED_MB), **{"wsgi.input": body}
    )

    assert response.status_code == 413
    assert "larger than 1024 KB" in response.json()["detail"]
    assert body.reads == 0
    assert not Tag.objects.filter(organization=organization).exists()


def test_a_body_larger_than_announced_limit_is_413(settings, manager):
    settings.API_MAX_BODY_BYTES = 4096
    client, organization = manager
    raw = json.dumps({"name": "vip", "padding": "x" * 5000}).encode()
    response = post_json(client, "/api/v1/tags/", raw)
    assert response.status_code == 413
    assert not Tag.objects.filter(organization=organization).exists()
    assert post_json(client, "/api/v1/tags/", b'{"name": "vip"}').status_code == 201


def test_a_body_without_content_length_is_read_only_up_to_the_limit(settings):
    settings.API_MAX_BODY_BYTES = 4096
    stream = io.BytesIO(b"[" + b"1," * 100_000 + b"1]")
    with pytest.raises(RequestTooLarge):
        BoundedJSONParser().parse(stream, "application/json", {"request": SimpleNamespace(META={})})
    assert stream.tell() == 4097


def test_a_20_mb_attribute_is_413_and_above_the_field_cap_400_naming_attributes(settings, manager):
    client, organization = manager
    raw = json.dumps({"email": "big@example.com", "attributes": {"notes": "x" * (20 * 1024 * 1024)}}).encode()

    assert post_json(client, "/api/v1/contacts/", raw).status_code == 413

    # Even where an operator allows large bodies, one stored JSON value stays capped.
    settings.API_MAX_BODY_BYTES = 32 * 1024 * 1024
    response = post_json(client, "/api/v1/contacts/", raw)
    assert response.status_code == 400
    assert "larger than 64 KB" in response.json()["attributes"][0]
    assert not Contact.objects.filter(organization=organization).exists()


# --- what a body may hold -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"name": "a\\u0000b"}', "NUL characters"),
        (b'{"name": "a\x00b"}', "NUL characters"),
        (b'{"name\\u0000": "vip"}', "NUL characters"),
        (b'{"name": "a\\ud800b"}', "lone surrogate"),
        (b'{"name": "a\xed\xa0\x80b"}', "not valid utf-8"),
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 20 levels"),
        (b'{"a": ' * 100 + b"1" + b"}" * 100, "nested deeper than 24 levels"),
        (b'{"name": NaN}', "NaN is not a JSON number"),
        (b'{"name": "vip"', "JSON parse error"),
    ],
    ids=[
        "escaped-nul",
        "raw-nul",
        "nul-in-key",
        "escaped-surrogate",
        "encoded-surrogate",
        "10000-deep",
        "100-deep",
        "nan",
        "truncated",
    ],
)
def test_a_body_that_cannot_be_stored_is_400_naming_why(manager, raw, reason):
    client, organization = manager
    response = post_json(client, "/api/v1/tags/", raw)
    assert response.status_code == 400, response.content
    assert reason in response.json()["detail"]
    assert not Tag.objects.filter(organization=organization).exists()


# --- the middleware ---------------------------------------------------------------------------------------


def test_the_middleware_answers_413_outside_the_api_in_plain_text(settings, client):
    settings.MIDDLEWARE = SIZE_LIMIT_MIDDLEWARE
    body = UnreadableBody(b"username=a&password=b")
    response = client.generic(
        "POST",
        "/admin/login/",
        b"username=a&password=b",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(HUNDRED_MB),
        **{"wsgi.input": body},
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")
    assert response["X-Request-ID"]
    assert body.reads == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/contacts/import",
        "/api/v1/contacts/imports/upload/",
        "/admin/contacts/importjob/add/",
    ],
)
def test_the_middleware_lets_csv_imports_up_to_their_own_limit(settings, path):
    settings.IMPORT_MAX_BYTES = 8 * 1024 * 1024
    passed = []

    def view(request):
        passed.append(request.path)
        return HttpResponse("ok")

    middleware = RequestSizeLimitMiddleware(view)
    factory = RequestFactory()
    within = factory.post(path, data=b"", content_type="multipart/form-data; boundary=x", CONTENT_LENGTH=str(5 << 20))
    beyond = factory.post(path, data=b"", content_type="multipart/form-data; boundary=x", CONTENT_LENGTH=str(10 << 20))

    assert middleware(within).status_code == 200
    assert middleware(beyond).status_code == 413
    assert passed == [path]


@pytest.mark.parametrize("path", ["/api/v1/contacts/", "/api/v1/contacts/importx", "/api/v1/no-such-route/"])
def test_the_middleware_holds_other_paths_to_the_api_limit(path):
    middleware = RequestSizeLimitMiddleware(lambda request: HttpResponse("ok"))
    request = RequestFactory().post(path, data=b"", content_type="application/json", CONTENT_LENGTH=str(2 << 20))
    response = middleware(request)
    assert response.status_code == 413
    assert "detail" in json.loads(response.content)
    small = RequestFactory().post(path, data=b"{}", content_type="application/json")
    assert middleware(small).status_code == 200


@pytest.mark.parametrize("path", ["/anymail/sparkpost/tracking/", "/webhooks/sms/twilio/"])
def test_provider_webhooks_may_post_batches_up_to_their_own_limit(settings, path):
    settings.WEBHOOK_MAX_BODY_BYTES = 8 * 1024 * 1024
    middleware = RequestSizeLimitMiddleware(lambda request: HttpResponse("ok"))
    factory = RequestFactory()
    batch = factory.post(path, data=b"[]", content_type="application/json", CONTENT_LENGTH=str(5 << 20))
    beyond = factory.post(path, data=b"[]", content_type="application/json", CONTENT_LENGTH=str(9 << 20))

    assert middleware(batch).status_code == 200
    assert middleware(beyond).status_code == 413
