"""End to end through a real Celery worker process: assign via the API -> task on the broker -> SMTP."""

import os
import time

import pytest
from django.conf import settings

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from callbacks.tests.factories import CallbackRequestFactory, agent_of
from conftest import bearer_client
from contacts.tests.factories import ContactFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_assignment_email_reaches_the_agent_through_a_real_worker(start_worker, smtp_sink):
    if os.environ.get("CI"):
        assert settings.CELERY_BROKER_URL.startswith("redis://"), settings.CELERY_BROKER_URL
    worker = start_worker(
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
        }
    )
    manager = MembershipFactory(role=Role.MANAGER)
    organization = manager.organization
    agent = agent_of(organization, user__email="agent.ana@example.com")
    contact = ContactFactory(organization=organization, first_name="Bram", last_name="de Vries")
    callback = CallbackRequestFactory(
        organization=organization, contact=contact, phone="+31201234567", reason="Wants to upgrade", priority="high"
    )
    client = bearer_client(manager.user, organization)

    response = client.post(f"/api/v1/callbacks/{callback.pk}/assign", {"agent": str(agent.pk)}, format="json")
    assert response.status_code == 200, response.content

    [(recipients, message)] = smtp_sink.wait_for(1, timeout=60)
    assert recipients == ["agent.ana@example.com"]
    assert message["Subject"] == "Callback assigned to you: Bram de Vries"
    body = message.get_payload(decode=True).decode()
    assert "+31201234567" in body
    assert "Wants to upgrade" in body
    assert f"/admin/callbacks/callbackrequest/{callback.pk}/change/" in body
    assert "callbacks.notify_assignment" in worker.log
    # The mail reaches the sink a moment before the worker logs the task's end.
    deadline = time.monotonic() + 10
    while "succeeded" not in worker.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "succeeded" in worker.log
