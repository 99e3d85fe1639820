"""Standard Webhooks signatures, checked against the specification's published test vector."""

import base64

from webhooks import signing

# https://github.com/standard-webhooks/standard-webhooks (the reference libraries' test vector)
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_matches_the_published_test_vector():
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_headers_carry_id_timestamp_and_signature_and_verify():
    headers = signing.headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert signing.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


def test_verification_refuses_a_changed_body_another_secret_and_an_old_timestamp():
    headers = signing.headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP)
    assert not signing.verify(VECTOR_SECRET, headers, b'{"test": 2432232315}', now=VECTOR_TIMESTAMP)
    assert not signing.verify(signing.new_secret(), headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    late = VECTOR_TIMESTAMP + signing.TOLERANCE_SECONDS + 1
    assert not signing.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=late)


def test_a_new_secret_is_whsec_and_32_random_bytes():
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_")
    assert first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
