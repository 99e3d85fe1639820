"""Signed, compact tokens for tracking and unsubscribe links.

A token carries the message id (and for clicks the link's index and original URL)
plus a truncated HMAC-SHA256 (132 bits) keyed by SECRET_KEY and a purpose salt,
so a token made for opens cannot be used to unsubscribe. Tokens are signed with
SECRET_KEY and verified against it and then each key in SECRET_KEY_FALLBACKS, as
Django's own signing does, so a key rotation does not break links in sent mail. A forged or tampered
token does not verify and the endpoints answer 404.

    open         /t/o/<token>.gif
    click        /t/c/<token>          (redirects only to the URL signed into the token)
    unsubscribe  /u/<token>
    view         /v/<token>
    reply        replies+<token>@example.com   (a Reply-To address; see reply_address)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

SIGNATURE_CHARS = 22
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class BadToken(ValueError):
    """The token is malformed or its signature does not match."""


@lru_cache(maxsize=1024)
def _b62(number: int) -> str:
    if number < 0:
        raise ValueError("negative")
    digits = []
    while True:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
        if not number:
            return "".join(reversed(digits))


def _unb62(text: str) -> int:
    number = 0
    for char in text:
        index = _ALPHABET.find(char)
        if index < 0:
            raise BadToken("bad digit")
        number = number * 62 + index
    return number


@lru_cache(maxsize=64)
def _hmac_states(purpose: str, secret: str):
    """HMAC-SHA256's inner and outer hash states for salted_hmac's derived key, made once per purpose
    and secret: a send signs a dozen URLs a message, and copying two states is the cheap part of HMAC."""
    key = hashlib.sha256(f"tracking.{purpose}".encode() + secret.encode()).digest().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))
    return inner, outer


def _signature(purpose: str, payload: str, secret: str | None = None) -> str:
    # The same HMAC as salted_hmac(f"tracking.{purpose}", payload, algorithm="sha256") (RFC 2104).
    inner, outer = _hmac_states(purpose, settings.SECRET_KEY if secret is None else secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(payload.encode())
    outer.update(inner.digest())
    return base64.urlsafe_b64encode(outer.digest()).decode()[:SIGNATURE_CHARS]


def _sign(purpose: str, payload: str) -> str:
    return f"{payload}.{_signature(purpose, payload)}"


def _verify(purpose: str, token: str) -> str:
    payload, _, signature = token.rpartition(".")
    if not payload or len(signature) != SIGNATURE_CHARS:
        raise BadToken("malformed")
    # Signed with the current key, or with one it replaced: links in mail sent before a key
    # rotation keep working for as long as the old key stays in SECRET_KEY_FALLBACKS.
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        if hmac.compare_digest(signature, _signature(purpose, payload, secret)):
            return payload
    raise BadToken("signature")


def message_token(purpose: str, message_id: int) -> str:
    return _sign(purpose, _b62(message_id))


def read_message_token(purpose: str, token: str) -> int:
    return _unb62(_verify(purpose, token))


@dataclass(frozen=True)
class Click:
    message_id: int
    link_index: int
    url: str


def click_token(message_id: int, link_index: int, url: str) -> str:
    return _sign("click", f"{_b62(message_id)}.{_link_part(link_index, url)}")


@lru_cache(maxsize=4096)
def _link_part(link_index: int, url: str) -> str:
    # The same links go into every message of a campaign: encoded once.
    return f"{_b62(link_index)}.{base64.urlsafe_b64encode(url.encode()).decode().rstrip('=')}"


def read_click_token(token: str) -> Click:
    payload = _verify("click", token)
    try:
        message, index, encoded = payload.split(".", 2)
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadToken("payload") from None
    return Click(message_id=_unb62(message), link_index=_unb62(index), url=url)


def _url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def open_url(message_id: int) -> str:
    return _url(f"/t/o/{message_token('open', message_id)}.gif")


def click_url(message_id: int, link_index: int, url: str) -> str:
    return _url(f"/t/c/{click_token(message_id, link_index, url)}")


def unsubscribe_url(message_id: int) -> str:
    return _url(f"/u/{message_token('unsubscribe', message_id)}")


def view_url(message_id: int) -> str:
    return _url(f"/v/{message_token('view', message_id)}")


def reply_address(message_id: int, mailbox: str) -> str:
    """A Reply-To address that identifies the message: `replies@example.com` becomes
    `replies+<token>@example.com`; a reply to it is matched to the message without headers."""
    local, _, domain = mailbox.rpartition("@")
    return f"{local}+{message_token('reply', message_id)}@{domain}"


def reply_token_of(address: str) -> int | None:
    """The message id of a reply address made by `reply_address`, or None."""
    local = address.rpartition("@")[0]
    _, plus, token = local.partition("+")
    if not plus:
        return None
    try:
        return read_message_token("reply", token)
    except BadToken:
        return None
