"""Delivery to a real HTTP server on 127.0.0.1: signed per Standard Webhooks, retried on the
backoff schedule, at least once across a crash, endpoints that keep failing disabled."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from webhooks import delivery, signing
from webhooks.models import Delivery, DeliveryStatus
from webhooks.tests.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_targets(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 0
    settings.WEBHOOKS_DISABLE_AFTER_HOURS = 24


def due_again(row: Delivery) -> None:
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_delivery_is_posted_signed_and_marked_delivered(receiver):
    endpoint = EndpointFactory(url=receiver.url("/in?source=cc"), failure_streak=3, failing_since=timezone.now())
    row = DeliveryFactory(endpoint=endpoint)

    assert delivery.deliver_due(max_seconds=10) == {"delivered": 1, "retrying": 0, "failed": 0}

    [got] = receiver.requests()
    assert got.path == "/in?source=cc"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == row.event_id
    # The receiving side verifies the signature with the secret it was shown.
    assert signing.verify(endpoint.secret, got.headers, got.body)
    assert not signing.verify(signing.new_secret(), got.headers, got.body)
    assert json.loads(got.body) == row.payload
    assert set(json.loads(got.body)) == {"id", "type", "timestamp", "organization", "data"}
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_response_code, row.last_error) == ("delivered", 1, 204, "")
    assert row.delivered_at is not None
    assert row.next_attempt_at is None
    endpoint.refresh_from_db()
    assert (endpoint.failure_streak, endpoint.failing_since) == (0, None)


def test_the_retry_schedule_spans_about_a_day_then_fails():
    at = timezone.now()
    waits = [delivery.next_attempt_after(n, at) - at for n in range(1, delivery.MAX_ATTEMPTS)]
    assert waits == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ]
    assert timedelta(hours=24) <= sum(waits, timedelta()) <= timedelta(hours=30)
    assert delivery.next_attempt_after(delivery.MAX_ATTEMPTS, at) is None


def test_a_failing_delivery_is_retried_on_the_schedule_then_failed(receiver):
    receiver.status = 503
    endpoint = EndpointFactory(url=receiver.url())
    row = DeliveryFactory(endpoint=endpoint)
    for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
        before = timezone.now()
        assert delivery.deliver_due(max_seconds=10)["delivered"] == 0
        row.refresh_from_db()
        assert (row.attempts, row.last_response_code, row.last_error) == (attempt, 503, "HTTP 503")
        assert row.last_response_body == "ok"
        if attempt < delivery.MAX_ATTEMPTS:
            assert row.status == DeliveryStatus.PENDING
            wait = delivery.RETRY_DELAYS[attempt - 1]
            assert before + wait <= row.next_attempt_at <= timezone.now() + wait
            assert delivery.deliver_due(max_seconds=10) == {"delivered": 0, "retrying": 0, "failed": 0}  # not due
            due_again(row)
    assert (row.status, row.next_attempt_at) == (DeliveryStatus.FAILED, None)
    assert len(receiver.requests()) == delivery.MAX_ATTEMPTS
    assert len({got.headers["webhook-id"] for got in receiver.requests()}) == 1
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == delivery.MAX_ATTEMPTS
    assert endpoint.enabled


@pytest.mark.parametrize("answer", [302, 404, 500])
def test_redirects_and_errors_are_failed_attempts(receiver, answer):
    receiver.status = answer
    row = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    delivery.deliver_due(max_seconds=10)
    row.refresh_from_db()
    assert (row.status, row.last_response_code, row.attempts) == (DeliveryStatus.PENDING, answer, 1)
    assert len(receiver.requests()) == 1


def test_an_unreachable_endpoint_is_a_failed_attempt_with_the_error(receiver):
    row = DeliveryFactory(endpoint=EndpointFactory(url="http://127.0.0.1:9/nothing-listens"))
    delivery.deliver_due(max_seconds=10)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING
    assert row.attempts == 1
    assert row.last_response_code is None
    assert "Error" in row.last_error


def test_a_private_address_is_refused_again_at_delivery_time(receiver, settings):
    # Saved while private targets were allowed (or resolving elsewhere then): checked again now.
    row = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    delivery.deliver_due(max_seconds=10)
    row.refresh_from_db()
    assert receiver.requests() == []
    assert row.status == DeliveryStatus.PENDING
    assert "private or reserved address" in row.last_error


def test_a_worker_that_dies_after_the_post_leaves_the_delivery_to_be_sent_again(receiver, settings):
    row = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    [claimed] = delivery.claim(limit=10)
    delivery.attempt(claimed)  # posted; the worker dies before recording it
    assert len(receiver.requests()) == 1
    assert delivery.claim(limit=10) == []  # leased: nobody else takes it meanwhile

    after_lease = timezone.now() + timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS + 1)
    [again] = delivery.claim(limit=10, now=after_lease)
    outcome = delivery.attempt(again)
    delivery.record([again], [outcome])
    row.refresh_from_db()
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)
    first, second = receiver.requests()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row.event_id
    assert first.body == second.body


def test_claims_do_not_overlap_and_skip_disabled_endpoints():
    endpoint = EndpointFactory()
    rows = [DeliveryFactory(endpoint=endpoint) for _ in range(3)]
    DeliveryFactory(endpoint=EndpointFactory(enabled=False))
    first = delivery.claim(limit=2)
    second = delivery.claim(limit=2)
    assert {d.pk for d in first} | {d.pk for d in second} == {row.pk for row in rows}
    assert not {d.pk for d in first} & {d.pk for d in second}
    assert delivery.claim(limit=2) == []


def test_an_endpoint_failing_for_a_day_is_disabled_with_its_pending_deliveries(receiver):
    receiver.status = 500
    endpoint = EndpointFactory(
        url=receiver.url(), failure_streak=40, failing_since=timezone.now() - timedelta(hours=24, minutes=1)
    )
    due = DeliveryFactory(endpoint=endpoint)
    later = DeliveryFactory(endpoint=endpoint, next_attempt_at=timezone.now() + timedelta(hours=1))

    delivery.deliver_due(max_seconds=10)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_at is not None
    assert "failed for 24 hours" in endpoint.disabled_reason
    assert endpoint.failure_streak == 41
    for row in (due, later):
        row.refresh_from_db()
        assert row.status == DeliveryStatus.FAILED
    event = AuditEvent.objects.get(action="webhook.disabled")
    assert (event.actor, event.object_id) == (None, str(endpoint.pk))


def test_a_success_resets_the_failure_count_so_a_flaky_endpoint_stays_enabled(receiver):
    endpoint = EndpointFactory(
        url=receiver.url(), failure_streak=40, failing_since=timezone.now() - timedelta(hours=30)
    )
    DeliveryFactory(endpoint=endpoint)
    delivery.deliver_due(max_seconds=10)
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert (endpoint.failure_streak, endpoint.failing_since) == (0, None)


def test_an_endpoint_is_disabled_after_n_failures_in_a_row_when_set(receiver, settings):
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 3
    receiver.status = 500
    endpoint = EndpointFactory(url=receiver.url())
    for _ in range(2):
        DeliveryFactory(endpoint=endpoint)
    delivery.deliver_due(max_seconds=10)
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.failure_streak == 2
    DeliveryFactory(endpoint=endpoint)
    delivery.deliver_due(max_seconds=10)
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "3 delivery attempts in a row failed."
