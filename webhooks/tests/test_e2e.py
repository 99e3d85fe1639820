"""End to end through a real Celery worker: an open recorded through the pixel is fanned out by the
`webhooks.fanout` beat task and POSTed, signed, to a local HTTP server by `webhooks.deliver`."""

import json
from urllib.parse import urlsplit

import pytest

import conftest as project_conftest
from campaigns.models import CampaignStatus
from campaigns.tests.factories import CampaignFactory
from campaigns.tests.test_e2e_ab import BROWSER
from campaigns.tests.test_e2e_sequences import wait_until
from tracking import buffer, conf, tokens
from tracking.models import EventType, MessageEvent
from tracking.tasks import flush_task
from tracking.tests.factories import SentMessageFactory
from webhooks import signing
from webhooks.models import Delivery, DeliveryStatus, FanoutState
from webhooks.tasks import fanout_task
from webhooks.tests.factories import EndpointFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def webhooks_worker(start_worker, monkeypatch):
    """A worker that also consumes the webhooks queue, allowed to post to 127.0.0.1."""
    queues = project_conftest.WORKER_QUEUES
    if "webhooks" not in queues.split(","):
        monkeypatch.setattr(project_conftest, "WORKER_QUEUES", f"{queues},webhooks")
    return start_worker(env={"WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"})


def test_an_open_through_the_pixel_is_posted_signed_to_the_endpoint(webhooks_worker, receiver, client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    if conf.buffer_mode() == conf.BUFFER_REDIS:
        buffer.client().delete(conf.stream_key())
    worker = webhooks_worker
    message = SentMessageFactory(campaign=CampaignFactory(status=CampaignStatus.RUNNING))
    endpoint = EndpointFactory(organization=message.organization, url=receiver.url("/cc"), events=["message.opened"])
    fanout_task.delay()  # the watermarks start here
    wait_until(lambda: FanoutState.objects.filter(source="message_events").exists(), 30, worker, "the first fan-out")

    assert client.get(urlsplit(tokens.open_url(message.pk)).path, HTTP_USER_AGENT=BROWSER).status_code == 200
    flush_task.delay()  # the open waits in the tracking buffer (Redis) until the worker flushes it
    opens = MessageEvent.objects.filter(message_id=message.pk, type=EventType.OPENED, machine=False)
    wait_until(opens.exists, 30, worker, "the open to be stored")
    fanout_task.delay()  # creates the delivery and sends webhooks.deliver

    [got] = receiver.wait_for(1, timeout=30)
    assert got.path == "/cc"
    assert signing.verify(endpoint.secret, got.headers, got.body)
    body = json.loads(got.body)
    assert (body["type"], body["organization"], body["id"]) == (
        "message.opened",
        str(message.organization_id),
        got.headers["webhook-id"],
    )
    assert body["data"]["message"] == str(message.pk)
    assert body["data"]["contact"] == str(message.contact.public_id)
    assert body["data"]["first"] is True
    wait_until(
        lambda: Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.DELIVERED).count() == 1,
        30,
        worker,
        "the delivery to be recorded",
    )
    assert len(receiver.requests()) == 1
