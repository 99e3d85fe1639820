import pytest

from templates_app.sms import SmsInfo, sms_info


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsInfo("gsm7", 0, 0)),
        ("a" * 160, SmsInfo("gsm7", 160, 1)),
        ("a" * 161, SmsInfo("gsm7", 161, 2)),
        ("a" * 306, SmsInfo("gsm7", 306, 2)),
        ("a" * 307, SmsInfo("gsm7", 307, 3)),
        ("Prijs: €5 {korting} [nu]", SmsInfo("gsm7", 29, 1)),
        ("€" * 80, SmsInfo("gsm7", 160, 1)),
        ("€" * 81, SmsInfo("gsm7", 162, 2)),
        ("Ça coûte 5€", SmsInfo("ucs2", 11, 1)),
        ("Привет" * 11 + "abcd", SmsInfo("ucs2", 70, 1)),
        ("ж" * 71, SmsInfo("ucs2", 71, 2)),
        ("ж" * 134, SmsInfo("ucs2", 134, 2)),
        ("ж" * 135, SmsInfo("ucs2", 135, 3)),
        ("😀" * 35, SmsInfo("ucs2", 70, 1)),
        ("😀" * 36, SmsInfo("ucs2", 72, 2)),
    ],
)
def test_encoding_length_and_segments(text, expected):
    assert sms_info(text) == expected


def test_gsm7_basic_characters_like_accented_letters_do_not_switch_to_ucs2():
    assert sms_info("Hé Jürgen, wie gaat het? Ñ ß Ø å Ç ¿¡").encoding == "gsm7"
    assert sms_info("ça va").encoding == "ucs2"  # only the capital Ç is in the GSM alphabet


def test_an_extended_character_is_not_split_across_segments():
    # 152 + 2 septets do not fit a 153-septet segment: the escape pair starts the next one.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_info(text) == SmsInfo("gsm7", 306, 3)


def test_a_surrogate_pair_is_not_split_across_segments():
    text = "ж" * 66 + "😀" + "ж" * 66
    assert sms_info(text) == SmsInfo("ucs2", 134, 3)
