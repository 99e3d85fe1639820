"""The Redis stream buffer loses nothing: entries are acknowledged only after the insert, a dead
worker's entries are taken over, and a replay stores nothing twice."""

from urllib.parse import urlsplit

import pytest

from campaigns.models import MessageStatus
from tracking import buffer, conf, tokens
from tracking.models import MessageEvent
from tracking.records import EventRecord
from tracking.services import event_ingest_batch
from tracking.tests.conftest import needs_redis
from tracking.tests.factories import sent_messages

pytestmark = pytest.mark.django_db
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)


def hit_pixels(client, messages) -> None:
    for message in messages:
        response = client.get(urlsplit(tokens.open_url(message.pk)).path, HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 200


@pytest.fixture
def redis_buffer(settings):
    settings.TRACKING_BUFFER = conf.BUFFER_REDIS
    return buffer


@needs_redis
def test_a_worker_killed_before_acknowledging_loses_nothing(client, redis_buffer):
    messages = sent_messages(5)
    hit_pixels(client, messages)
    assert not MessageEvent.objects.exists()  # buffered: no database work per hit
    assert redis_buffer.backlog() == 5

    # A worker reads the batch and dies before its insert and acknowledgement.
    assert len(redis_buffer.read_without_ack(count=100, consumer="worker-that-died")) == 5
    assert redis_buffer.pending_count() == 5
    # While the entries may still belong to a live worker, nobody else takes them.
    assert redis_buffer.flush(reclaim_idle_seconds=60).stored == 0
    assert not MessageEvent.objects.exists()

    result = redis_buffer.flush(reclaim_idle_seconds=0)  # ... idle long enough: taken over

    assert (result.reclaimed, result.stored) == (5, 5)
    assert redis_buffer.pending_count() == 0
    assert redis_buffer.backlog() == 0
    assert MessageEvent.objects.count() == 5
    assert set(MessageEvent.objects.values_list("message_id", flat=True)) == {m.pk for m in messages}


@needs_redis
def test_a_batch_inserted_but_not_acknowledged_is_replayed_without_duplicates(client, redis_buffer):
    messages = sent_messages(4)
    hit_pixels(client, messages)
    redis_buffer.read_without_ack(count=100, consumer="worker-that-died")
    # The dead worker got as far as its insert (its transaction committed), not the acknowledgement.
    entries = redis_buffer.client().xrange(conf.stream_key())
    event_ingest_batch(records=[EventRecord.from_json(fields[buffer.FIELD]) for _id, fields in entries])

    result = redis_buffer.flush(reclaim_idle_seconds=0)

    assert (result.reclaimed, result.stored) == (4, 0)
    assert MessageEvent.objects.count() == 4
    assert MessageEvent.objects.filter(is_unique=True).count() == 4
    assert redis_buffer.backlog() == 0
    for message in messages:
        message.refresh_from_db()
        assert message.status == MessageStatus.OPENED


@needs_redis
def test_an_unreadable_entry_goes_to_the_dead_letter_stream_and_the_rest_is_stored(client, redis_buffer):
    [message] = sent_messages(1)
    redis_buffer.client().xadd(conf.stream_key(), {buffer.FIELD: b"{not json"})
    hit_pixels(client, [message])

    result = redis_buffer.flush()

    assert (result.read, result.stored, result.dead) == (2, 1, 1)
    assert redis_buffer.backlog() == 0
    assert redis_buffer.client().xlen(buffer.dead_letter_key()) == 1
    assert MessageEvent.objects.get().message_id == message.pk


def test_when_redis_is_down_a_hit_is_stored_directly(client, settings):
    settings.TRACKING_BUFFER = conf.BUFFER_REDIS
    settings.TRACKING_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    [message] = sent_messages(1)

    hit_pixels(client, [message])

    assert MessageEvent.objects.filter(message=message).count() == 1


def test_the_synchronous_buffer_stores_each_hit_at_once(client, settings):
    settings.TRACKING_BUFFER = conf.BUFFER_SYNC
    messages = sent_messages(3)

    hit_pixels(client, messages)

    assert MessageEvent.objects.count() == 3
    assert buffer.flush().read == 0
