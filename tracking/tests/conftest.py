import base64
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from tracking import buffer

WEBHOOK_USER = "hooks"
WEBHOOK_PASSWORD = "s3cret-webhook-password"
MAILGUN_SIGNING_KEY = "key-0123456789abcdef-test"


@pytest.fixture(autouse=True)
def _tracking_urls_and_providers(settings):
    settings.ROOT_URLCONF = "tracking.tests.urls"
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": f"{WEBHOOK_USER}:{WEBHOOK_PASSWORD}",
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }


@contextmanager
def provider(path: str):
    """The installation configured for the provider of an /anymail/<esp>/... path: only the
    configured provider's webhooks are mounted."""
    with override_settings(ANYMAIL_ESP_NAME=path.split("/")[2]):
        yield


def basic_auth(user: str = WEBHOOK_USER, password: str = WEBHOOK_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


needs_redis = pytest.mark.skipif(
    not getattr(django_settings, "REDIS_URL", ""), reason="the Redis stream buffer needs REDIS_URL"
)


@pytest.fixture
def flush():
    """Move buffered events into the database (nothing to do in the synchronous mode)."""

    def run() -> int:
        return buffer.flush(max_seconds=10, reclaim_idle_seconds=0).stored

    return run
