"""Request parsers: JSON bodies within the limits of config.validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from config.validation import parse_json_body

READ_CHUNK = 64 * 1024


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int):
        super().__init__(f"The request body is larger than {limit // 1024} KB.")


def declared_length(meta: Mapping[str, Any]) -> int | None:
    """The Content-Length the client announced, or None when absent or malformed."""
    try:
        length = int(meta.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def read_at_most(stream, limit: int) -> bytes:
    """Up to `limit` bytes; never asks the stream for more, whatever the client announced."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the body bounded before it is parsed.

    A body larger than API_MAX_BODY_BYTES is a 413: refused from its Content-Length without
    reading it, and a body without one (chunked) is read only up to the limit. A body with
    NUL characters, lone surrogates, NaN or nesting deeper than JSON_MAX_DEPTH is a 400 that
    names the reason (PostgreSQL cannot store such text, and deep values overflow the stack).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.API_MAX_BODY_BYTES
        length = declared_length(getattr(parser_context.get("request"), "META", {}))
        if length is not None and length > limit:
            raise RequestTooLarge(limit)
        raw = read_at_most(stream, limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return parse_json_body(raw, encoding=encoding)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
