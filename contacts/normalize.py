"""Normalizing contact data: one set of rules for the API, the admin and CSV imports."""

from __future__ import annotations

import hashlib
import re
from zoneinfo import available_timezones

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_TIMEZONES = frozenset(available_timezones())
# A strict subset of what Django's EmailValidator accepts, checked first because it is
# much cheaper; anything it does not match still gets the full validator.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


class InvalidValue(ValueError):
    """A value that cannot be normalized; the message says why, for the user."""


def normalize_email(value: str) -> str:
    """Lower-cased, trimmed, syntactically valid address."""
    email = (value or "").strip().lower()
    if not email:
        raise InvalidValue("email is missing")
    if len(email) <= 254 and _PLAIN_EMAIL.fullmatch(email):
        return email
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidValue(f"{value.strip()!r} is not a valid email address") from None
    return email


def email_domain(email: str) -> str:
    return email.rpartition("@")[2]


def address_hash(address: str) -> str:
    """What stays of an erased email address or phone number: enough to recognise it, not to read it."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def normalize_phone(value: str) -> str:
    """E.164 (+31612345678) from an international number in any common notation."""
    text = (value or "").strip()
    if not text:
        raise InvalidValue("phone is missing")
    if text.startswith("00"):
        text = "+" + text[2:]
    if _E164.fullmatch(text):
        # Already E.164 (what most files hold): skip the parser, keep the validity check.
        number = _e164_number(text)
        if number is not None and phonenumbers.is_valid_number(number):
            return text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidValue(f"{value.strip()!r} is not an international phone number (like +31612345678)") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(f"{value.strip()!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _e164_number(text: str) -> phonenumbers.PhoneNumber | None:
    """The number of an E.164 string, or None when only the full parser can tell (leading zeros)."""
    digits = text[1:]
    for size in (1, 2, 3):  # country calling codes are a prefix code: the first one that exists is it
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            if not national or national[0] == "0":
                return None
            return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return None


def normalize_timezone(value: str) -> str:
    text = (value or "").strip()
    if text and text not in _TIMEZONES:
        raise InvalidValue(f"{text!r} is not a known time zone (use an IANA name like Europe/Amsterdam)")
    return text


def normalize_domain(value: str) -> str:
    domain = (value or "").strip().lower().lstrip("@")
    if not domain or "." not in domain or " " in domain or "@" in domain:
        raise InvalidValue(f"{value!r} is not a domain name")
    return domain


_BOOLEAN_INITIALS = frozenset("tTfF")


def typed_attribute(value: str) -> str | int | float | bool:
    """CSV cells are text; numbers and booleans become JSON numbers and booleans so segment
    comparisons work. Numbers with leading zeros (postcodes, ids) stay text."""
    text = value.strip()
    first = text[:1]
    if first in _BOOLEAN_INITIALS:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    if first.isdigit() or (first == "-" and text[1:2].isdigit()):
        digits = text.lstrip("-")
        if len(digits) > 1 and digits[0] == "0" and digits[1] != ".":
            return text
        try:
            return int(text) if digits.isdigit() and len(digits) <= 15 else _finite_float(text)
        except ValueError:
            return text
    return text


def _finite_float(text: str) -> float | str:
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return number
