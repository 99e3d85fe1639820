"""The API against its own OpenAPI schema: schemathesis generates requests for every operation from
/api/schema/ and calls the app in process (WSGI), as an organization's owner.

Each response must not be a 5xx, and its status code, content type and body must be the ones the
schema documents for the operation. A few examples per operation keep the module within minutes.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory

EXAMPLES_PER_OPERATION = 8

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Left out, and why:
EXCLUDED = [
    # Looks up DNS TXT records on the public internet.
    ("POST", "/api/v1/sending-domains/{id}/verify/"),
    # Sends real email to the generated addresses (one message per address).
    ("POST", "/api/v1/campaigns/{id}/test-send/"),
    # POSTs a test delivery to the endpoint's URL on the network.
    ("POST", "/api/v1/webhooks/{id}/test/"),
]

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "positive", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": True},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=CONFIG)
for method, path in EXCLUDED:
    schema = schema.exclude(method=method, path=path)


@pytest.fixture
def in_test_transaction():
    """Requests go through Django's WSGI handler, which closes the database connection when a request
    ends; the test's transaction lives on that connection, so keep it open (as Django's test client does)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def owner_headers(db, in_test_transaction):
    organization = OrganizationFactory()
    membership = MembershipFactory(organization=organization, role=Role.OWNER)
    access = RefreshToken.for_user(membership.user).access_token
    return {"Authorization": f"Bearer {access}", "X-Organization": str(organization.pk)}


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, owner_headers):
    case.headers = {**(case.headers or {}), **owner_headers}
    case.call_and_validate(checks=CHECKS)
