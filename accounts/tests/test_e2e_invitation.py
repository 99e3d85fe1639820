"""End to end through a real Celery worker process: invite -> task on the broker -> SMTP."""

import os
import re

import pytest
from django.conf import settings

from accounts.models import Membership, Role
from accounts.tests.factories import MembershipFactory
from conftest import bearer_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_invitation_email_is_sent_by_a_real_worker(start_worker, smtp_sink, api_client):
    if os.environ.get("CI"):
        # CI runs the suite against the real Redis broker; falling back would hide a missing service.
        assert settings.CELERY_BROKER_URL.startswith("redis://"), settings.CELERY_BROKER_URL
    worker = start_worker(
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
        }
    )
    owner = MembershipFactory(role=Role.OWNER)
    client = bearer_client(owner.user, owner.organization)

    response = client.post("/api/v1/members/", {"email": "agent@example.com", "role": "agent"}, format="json")
    assert response.status_code == 201, response.content

    [(recipients, message)] = smtp_sink.wait_for(1, timeout=60)
    assert recipients == ["agent@example.com"]
    assert message["Subject"] == f"You have been invited to {owner.organization.name}"
    body = message.get_payload(decode=True).decode()
    assert owner.user.email in body
    assert "accounts.send_invitation" in worker.log
    assert "succeeded" in worker.log

    # The link the worker mailed is valid in this process: same database, same secret.
    uid, token = re.search(r"/invite/accept\?uid=([\w-]+)&token=([\w-]+)", body).groups()
    accepted = api_client.post(
        "/api/v1/auth/invitations/accept", {"uid": uid, "token": token, "password": "Agent-pass-word-7"}, format="json"
    )
    assert accepted.status_code == 204
    assert Membership.objects.get(user__email="agent@example.com").role == Role.AGENT
