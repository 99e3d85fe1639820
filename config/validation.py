"""Input bounds shared by the API, the admin, the public forms and the workers.

One home for "is this value sane enough to store": dates within
``DATE_MIN_YEAR``..``DATE_MAX_YEAR``, JSON values within ``JSON_FIELD_MAX_BYTES``,
``JSON_MAX_DEPTH`` and ``JSON_MAX_KEYS``, and text that PostgreSQL can hold (no NUL
characters, no lone surrogates). Each check raises Django's ``ValidationError``
with a reason a person can act on; DRF serializers use the field classes below.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from rest_framework import serializers


def date_bounds() -> tuple[dt.date, dt.date]:
    return dt.date(settings.DATE_MIN_YEAR, 1, 1), dt.date(settings.DATE_MAX_YEAR, 12, 31)


def _range_message() -> str:
    return f"Must be between the years {settings.DATE_MIN_YEAR} and {settings.DATE_MAX_YEAR}."


def check_date(value: dt.date | dt.datetime | None) -> None:
    """Refuse dates and datetimes outside the configured years (year 1 poisons time zone maths)."""
    if value is None:
        return
    year = value.year
    if year < settings.DATE_MIN_YEAR or year > settings.DATE_MAX_YEAR:
        raise ValidationError(_range_message(), code="date_out_of_range")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "may not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "may not contain lone surrogate characters"
    return None


def check_text(value: str) -> None:
    """Refuse text PostgreSQL cannot store."""
    problem = _text_problem(value)
    if problem:
        raise ValidationError(f"Text {problem}.", code="invalid_text")


def json_problem(value: Any, *, max_depth: int | None = None, max_keys: int | None = None) -> str | None:
    """Why a decoded JSON value cannot be stored, or None. Iterative: deep values cannot overflow."""
    max_depth = settings.JSON_MAX_DEPTH if max_depth is None else max_depth
    max_keys = settings.JSON_MAX_KEYS if max_keys is None else max_keys
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                keys += len(item)
                if keys > max_keys:
                    return f"has more than {max_keys} keys"
                for key, child in item.items():
                    if isinstance(key, str) and (problem := _text_problem(key)):
                        return f"has a key that {problem}"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if problem := _text_problem(item):
                return f"has text that {problem}"
        elif isinstance(item, float) and item != item:  # NaN cannot be stored as JSON
            return "has a number that is not a number (NaN)"
    return None


# A whole request body holds several stored values plus their envelope: one level and many
# more keys than a single value may have. Its size is bounded by API_MAX_BODY_BYTES instead.
BODY_EXTRA_DEPTH = 4
BODY_MAX_KEYS_FACTOR = 100


def parse_json_body(raw: bytes, *, encoding: str = "utf-8") -> Any:
    """Decode a request body as strict JSON that can be stored; ValueError says why not.

    Refuses bodies that are not valid text in `encoding`, not JSON, or that hold NaN/Infinity,
    NUL characters, lone surrogates, or nesting beyond JSON_MAX_DEPTH (+ BODY_EXTRA_DEPTH for
    the envelope). Size is the caller's business: read at most API_MAX_BODY_BYTES first.
    """
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ValueError(f"the body is not valid {encoding} text") from None
    if "\x00" in text:
        raise ValueError("the body contains NUL characters")

    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        raise ValueError(f"the body is nested deeper than {settings.JSON_MAX_DEPTH} levels") from None
    problem = json_problem(
        value,
        max_depth=settings.JSON_MAX_DEPTH + BODY_EXTRA_DEPTH,
        max_keys=settings.JSON_MAX_KEYS * BODY_MAX_KEYS_FACTOR,
    )
    if problem:
        raise ValueError(f"the body {problem}")
    return value


def check_json(value: Any, *, max_bytes: int | None = None, max_keys: int | None = None) -> None:
    """Refuse JSON values too large, too deep, with too many keys, or with text PostgreSQL rejects."""
    problem = json_problem(value, max_keys=max_keys)
    if problem is None:
        max_bytes = settings.JSON_FIELD_MAX_BYTES if max_bytes is None else max_bytes
        try:
            size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except (TypeError, ValueError):
            problem = "is not plain JSON"
        else:
            if size > max_bytes:
                problem = f"is larger than {max_bytes // 1024} KB ({size // 1024} KB)"
    if problem:
        raise ValidationError(f"This value {problem}.", code="invalid_json_value")


@deconstructible
class JSONValidator:
    """check_json as a model field validator with its own limits (None: the settings')."""

    def __init__(self, *, max_bytes: int | None = None, max_keys: int | None = None):
        self.max_bytes = max_bytes
        self.max_keys = max_keys

    def __call__(self, value: Any) -> None:
        check_json(value, max_bytes=self.max_bytes, max_keys=self.max_keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONValidator) and (self.max_bytes, self.max_keys) == (other.max_bytes, other.max_keys)

    def __hash__(self) -> int:
        return hash((self.max_bytes, self.max_keys))


def _as_drf(check, value):
    try:
        check(value)
    except ValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class BoundedDateTimeField(serializers.DateTimeField):
    """A DateTimeField that refuses times outside DATE_MIN_YEAR..DATE_MAX_YEAR."""

    def to_internal_value(self, value):
        result = super().to_internal_value(value)
        _as_drf(check_date, result)
        return result


class BoundedDateField(serializers.DateField):
    """A DateField that refuses dates outside DATE_MIN_YEAR..DATE_MAX_YEAR."""

    def to_internal_value(self, value):
        result = super().to_internal_value(value)
        _as_drf(check_date, result)
        return result


class BoundedJSONField(serializers.JSONField):
    """A JSONField bounded in size, depth, key count and text content."""

    def __init__(self, *args, max_bytes: int | None = None, max_keys: int | None = None, **kwargs):
        self.max_bytes = max_bytes
        self.max_keys = max_keys
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        result = super().to_internal_value(data)
        _as_drf(JSONValidator(max_bytes=self.max_bytes, max_keys=self.max_keys), result)
        return result
