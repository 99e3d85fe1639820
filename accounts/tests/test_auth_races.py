"""Concurrent use of one refresh token, and parallel password guesses against the lockout."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connections
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD, UserFactory

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


def in_parallel(count: int, request) -> list:
    """Run request(client) in `count` threads released together; the responses' status codes."""
    barrier = threading.Barrier(count)
    codes: list = [None] * count

    def run(index: int) -> None:
        try:
            client = APIClient()
            barrier.wait(timeout=30)
            codes[index] = request(client).status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return codes


@pytest.mark.django_db(transaction=True)
def test_one_refresh_token_posted_in_parallel_refreshes_once():
    user = UserFactory()
    tokens = APIClient().post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").json()

    codes = in_parallel(8, lambda client: client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json"))

    assert sorted(codes) == [200] + [401] * 7


@pytest.mark.django_db(transaction=True)
def test_one_refresh_token_posted_in_parallel_with_a_trailing_slash_refreshes_once():
    user = UserFactory()
    tokens = APIClient().post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").json()

    codes = in_parallel(6, lambda client: client.post(REFRESH + "/", {"refresh": tokens["refresh"]}, format="json"))

    assert sorted(codes) == [200] + [401] * 5


class CountingHasher(MD5PasswordHasher):
    """MD5 (the tests' hasher) that counts password checks and makes each take a while, so that
    parallel guesses overlap the way they do against a real, slow hasher."""

    checks = 0
    lock = threading.Lock()

    def verify(self, password, encoded):
        with CountingHasher.lock:
            CountingHasher.checks += 1
        time.sleep(0.05)
        return super().verify(password, encoded)


@pytest.mark.skipif(
    not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"),
    reason="counting is atomic on Redis (REDIS_URL); the embedded file cache is for one host",
)
@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_are_checked_at_most_the_limit(settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    user = UserFactory()
    CountingHasher.checks = 0

    wrong = {"email": user.email, "password": "wrong"}

    codes = in_parallel(16, lambda client: client.post(LOGIN, wrong, format="json"))

    assert CountingHasher.checks <= settings.LOGIN_FAILURE_LIMIT
    assert codes.count(401) == CountingHasher.checks
    assert codes.count(429) == 16 - CountingHasher.checks
    # Still locked out, even with the right password.
    right = APIClient().post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json")
    assert right.status_code == 429


def test_a_request_without_a_password_does_not_count_as_a_failure(api_client, settings, db):
    user = UserFactory()
    for _ in range(settings.LOGIN_FAILURE_LIMIT + 2):
        assert api_client.post(LOGIN, {"email": user.email}, format="json").status_code == 400
    assert api_client.post(LOGIN, {"email": user.email, "password": PASSWORD}, format="json").status_code == 200
