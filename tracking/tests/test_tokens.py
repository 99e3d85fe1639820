import pytest

from tracking import tokens


def test_message_tokens_round_trip_and_are_compact():
    token = tokens.message_token("open", 123456789)
    assert tokens.read_message_token("open", token) == 123456789
    assert len(token) < 40


def test_a_token_for_one_purpose_does_not_work_for_another():
    token = tokens.message_token("open", 42)
    with pytest.raises(tokens.BadToken):
        tokens.read_message_token("unsubscribe", token)


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: "9" + t, lambda t: t[:5]]
)
def test_tampered_tokens_are_refused(mangle):
    token = tokens.message_token("unsubscribe", 42)
    with pytest.raises(tokens.BadToken):
        tokens.read_message_token("unsubscribe", mangle(token))


def test_click_tokens_carry_the_signed_url():
    token = tokens.click_token(7, 3, "https://shop.example.com/sale?a=1&b=ü")
    click = tokens.read_click_token(token)
    assert (click.message_id, click.link_index, click.url) == (7, 3, "https://shop.example.com/sale?a=1&b=ü")
    payload, _, signature = token.rpartition(".")
    message, index, _encoded = payload.split(".")
    forged = f"{message}.{index}.aHR0cHM6Ly9ldmlsLmV4YW1wbGU.{signature}"
    with pytest.raises(tokens.BadToken):
        tokens.read_click_token(forged)


def test_urls_use_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    assert tokens.open_url(5).startswith("https://cc.example.com/t/o/")
    assert tokens.open_url(5).endswith(".gif")
    assert tokens.unsubscribe_url(5).startswith("https://cc.example.com/u/")


@pytest.mark.parametrize("purpose", ["open", "click", "unsubscribe", "view", "reply"])
def test_signatures_are_djangos_salted_hmac_so_links_already_sent_keep_working(purpose, settings):
    import base64

    from django.utils.crypto import salted_hmac

    for secret in ("one-secret", "another-secret-é"):
        settings.SECRET_KEY = secret
        for payload in ("1", "zz.3.aHR0cHM6Ly9leGFtcGxlLmNvbQ", "é"):
            expected = salted_hmac(f"tracking.{purpose}", payload, algorithm="sha256").digest()
            assert tokens._signature(purpose, payload) == base64.urlsafe_b64encode(expected).decode()[:22]


def test_a_new_secret_key_invalidates_tokens(settings):
    token = tokens.message_token("open", 42)
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    with pytest.raises(tokens.BadToken):
        tokens.read_message_token("open", token)
