"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The secret is `whsec_` followed by base64 key bytes. A message is signed with HMAC-SHA256 over
`<webhook-id>.<webhook-timestamp>.<body>` using the decoded key, sent as
`webhook-signature: v1,<base64 signature>` (several space-separated during a key rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
# How far a receiver lets a timestamp drift before it refuses the message (replay protection).
TOLERANCE_SECONDS = 5 * 60


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (a fresh timestamp on every attempt)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, received: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """What a receiver does: the timestamp is recent and one of the `v1` signatures matches."""
    lowered = {key.lower(): value for key, value in received.items()}
    msg_id, stamp = lowered.get("webhook-id", ""), lowered.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(stamp)) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(candidate, expected) for candidate in lowered.get("webhook-signature", "").split())
