"""A SECRET_KEY rotation keeps the links in mail already sent working while the old key is a fallback."""

import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from campaigns.models import MessageStatus
from contacts.models import ContactStatus
from tracking import tokens
from tracking.models import EventType, MessageEvent
from tracking.tests.factories import SentMessageFactory

OLD_KEY = "old-key-" + "x" * 50
NEW_KEY = "new-key-" + "y" * 50
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_tokens_signed_with_a_fallback_key_verify_and_new_ones_use_the_new_key(settings):
    settings.SECRET_KEY = OLD_KEY
    old_open = tokens.message_token("open", 42)
    old_click = tokens.click_token(42, 1, "https://shop.example.com/")

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    assert tokens.read_message_token("open", old_open) == 42
    assert tokens.read_click_token(old_click).url == "https://shop.example.com/"
    new_open = tokens.message_token("open", 42)
    assert new_open != old_open

    # Once the old key leaves the fallbacks, its links stop working; the new key's do not.
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(tokens.BadToken):
        tokens.read_message_token("open", old_open)
    assert tokens.read_message_token("open", new_open) == 42


def test_a_fallback_key_does_not_let_one_purpose_stand_for_another(settings):
    settings.SECRET_KEY = OLD_KEY
    old_open = tokens.message_token("open", 42)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    with pytest.raises(tokens.BadToken):
        tokens.read_message_token("unsubscribe", old_open)


@pytest.mark.django_db
def test_unsubscribe_and_click_links_sent_before_a_rotation_still_work(client, flush, settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    message = SentMessageFactory()
    unsubscribe = path_of(tokens.unsubscribe_url(message.pk))
    click = path_of(tokens.click_url(message.pk, 0, "https://shop.example.com/sale"))

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    response = client.get(click, HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.com/sale"
    assert client.post(unsubscribe).status_code == 200
    flush()

    assert MessageEvent.objects.filter(message=message, type=EventType.CLICKED).count() == 1
    message.refresh_from_db()
    message.contact.refresh_from_db()
    assert message.status == MessageStatus.CLICKED
    assert message.contact.status == ContactStatus.UNSUBSCRIBED


@pytest.mark.django_db
def test_without_the_fallback_old_links_are_404_and_record_nothing(client, flush, settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    message = SentMessageFactory()
    unsubscribe = path_of(tokens.unsubscribe_url(message.pk))

    settings.SECRET_KEY = NEW_KEY
    assert client.post(unsubscribe).status_code == 404
    flush()
    message.contact.refresh_from_db()
    assert message.contact.status == ContactStatus.SUBSCRIBED


def test_secret_key_fallbacks_are_read_from_the_environment():
    env = {**os.environ, "SECRET_KEY": NEW_KEY, "SECRET_KEY_FALLBACKS": f"{OLD_KEY}, older-key"}
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str([OLD_KEY, "older-key"])
