import pytest

from contacts.normalize import InvalidValue, normalize_email, normalize_phone, normalize_timezone, typed_attribute


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Ana@Example.COM ", "ana@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("o'brien@example.com", "o'brien@example.com"),  # not in the fast pattern: the full validator decides
    ],
)
def test_valid_emails(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "plain", "a..b@example.com", ".a@example.com", "a@-example.com", "a@example", "a@b@c.com"]
)
def test_invalid_emails(raw):
    with pytest.raises(InvalidValue):
        normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+31 6 12345678", "+31612345678"), ("0031612345678", "+31612345678"), ("+1 (415) 555-2671", "+14155552671")],
)
def test_phones_become_e164(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["0612345678", "12345", "+31 6 1234", "call me"])
def test_invalid_phones(raw):
    with pytest.raises(InvalidValue):
        normalize_phone(raw)


def test_timezones():
    assert normalize_timezone("Europe/Amsterdam") == "Europe/Amsterdam"
    with pytest.raises(InvalidValue):
        normalize_timezone("Europe/Atlantis")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        ("-7", -7),
        ("3.5", 3.5),
        ("0", 0),
        ("0.5", 0.5),
        ("0123", "0123"),
        ("TRUE", True),
        ("nan", "nan"),
        ("12 apples", "12 apples"),
        ("1e400", "1e400"),
    ],
)
def test_typed_attributes(raw, expected):
    assert typed_attribute(raw) == expected


def _full_parser(text: str) -> str | None:
    """What the parser alone says of a number (the reference the E.164 fast path must agree with)."""
    import phonenumbers

    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_the_e164_fast_path_agrees_with_the_parser_for_every_region():
    import random

    import phonenumbers

    rng = random.Random(5)
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            # The example, a near neighbour, a shorter and a longer one: valid and invalid alike.
            variants = [e164, e164[:-1] + str(rng.randrange(10)), e164[:-2], e164 + "7"]
            for text in variants:
                expected = _full_parser(text)
                if expected is None:
                    with pytest.raises(InvalidValue):
                        normalize_phone(text)
                else:
                    assert normalize_phone(text) == expected, text
                checked += 1
    assert checked > 800
    # Italian fixed lines keep their leading zero (the parser's job, not the fast path's).
    assert normalize_phone("+390612345678") == _full_parser("+390612345678") == "+390612345678"
