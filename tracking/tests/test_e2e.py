"""End to end through a real Celery worker: pixel hits are buffered, `tracking.flush` runs on the
worker, and every hit is stored."""

import time
from urllib.parse import urlsplit

import pytest

from campaigns.models import MessageStatus
from tracking import buffer, tokens
from tracking.models import MessageEvent
from tracking.tasks import flush_task
from tracking.tests.conftest import needs_redis
from tracking.tests.factories import sent_messages

pytestmark = [pytest.mark.e2e, needs_redis, pytest.mark.django_db(transaction=True)]
HITS_PER_MESSAGE = 4
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


def test_pixel_hits_are_flushed_by_the_worker(start_worker, client):
    worker = start_worker()
    messages = sent_messages(10)
    for message in messages:
        for _ in range(HITS_PER_MESSAGE):
            response = client.get(urlsplit(tokens.open_url(message.pk)).path, HTTP_USER_AGENT=BROWSER)
            assert response.status_code == 200
    expected = len(messages) * HITS_PER_MESSAGE
    assert buffer.backlog() == expected
    assert not MessageEvent.objects.exists()

    flush_task.delay()

    deadline = time.monotonic() + 60
    while MessageEvent.objects.count() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert MessageEvent.objects.count() == expected, worker.log[-4000:]
    assert "tracking.flush" in worker.log
    assert buffer.backlog() == 0
    assert MessageEvent.objects.filter(is_unique=True).count() == len(messages)
    for message in messages:
        message.refresh_from_db()
        assert message.status == MessageStatus.OPENED
