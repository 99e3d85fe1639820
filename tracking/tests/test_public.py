"""The public endpoints: open pixel, click redirect, one-click unsubscribe, view in browser."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from campaigns import sending
from campaigns.models import Message, MessageStatus
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory
from contacts.models import ContactStatus, ListMembership
from contacts.tests.factories import ContactFactory, ContactListFactory
from templates_app.services import template_snapshot
from tracking import buffer, conf, tokens
from tracking.models import EventType, MessageEvent
from tracking.public import PIXEL
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db
M = MessageStatus
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def path_of(url: str) -> str:
    return urlsplit(url).path


def forged(token: str) -> str:
    payload, _, signature = token.rpartition(".")
    return f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"


def nothing_buffered() -> bool:
    return conf.buffer_mode() != conf.BUFFER_REDIS or buffer.backlog() == 0


# --- open pixel ---------------------------------------------------------------------------------


def test_the_pixel_is_a_gif_that_records_a_unique_open(client, flush):
    message = SentMessageFactory()
    url = path_of(tokens.open_url(message.pk))

    response = client.get(url, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.77")
    again = client.get(url, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.77")
    flush()

    assert response.status_code == again.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == PIXEL
    assert len(PIXEL) == 43
    assert "no-store" in response["Cache-Control"]
    events = list(MessageEvent.objects.filter(message=message).order_by("id"))
    assert [(e.type, e.is_unique, e.machine) for e in events] == [
        (EventType.OPENED, True, False),
        (EventType.OPENED, False, False),
    ]
    first = events[0]
    assert (first.organization_id, first.campaign_id, first.contact_id) == (
        message.organization_id,
        message.campaign_id,
        message.contact_id,
    )
    assert first.ip == "203.0.113.0"  # anonymized: the organization's default
    assert first.user_agent == BROWSER
    message.refresh_from_db()
    assert message.status == M.OPENED


def test_a_forged_or_misused_token_is_a_404_and_records_nothing(client, flush):
    message = SentMessageFactory()
    token = tokens.message_token("open", message.pk)
    unsubscribe_token = tokens.message_token("unsubscribe", message.pk)

    assert client.get(f"/t/o/{forged(token)}.gif").status_code == 404
    assert client.get(f"/t/o/{unsubscribe_token}.gif").status_code == 404  # a token for another purpose
    assert client.get("/t/o/garbage.gif").status_code == 404
    assert (
        client.get(f"/t/c/{forged(tokens.click_token(message.pk, 0, 'https://shop.example.com/'))}").status_code == 404
    )
    assert client.get(f"/u/{forged(unsubscribe_token)}").status_code == 404
    assert client.post(f"/u/{forged(unsubscribe_token)}").status_code == 404
    assert client.get(f"/v/{forged(tokens.message_token('view', message.pk))}").status_code == 404

    assert nothing_buffered()
    flush()
    assert not MessageEvent.objects.exists()
    message.refresh_from_db()
    assert message.status == M.SENT
    message.contact.refresh_from_db()
    assert message.contact.status == ContactStatus.SUBSCRIBED


def test_apple_privacy_proxy_opens_are_kept_but_flagged(client, flush):
    message = SentMessageFactory()
    client.get(path_of(tokens.open_url(message.pk)), HTTP_USER_AGENT="Mozilla/5.0", REMOTE_ADDR="17.58.1.2")
    flush()

    event = MessageEvent.objects.get(message=message)
    assert event.machine
    assert not event.is_unique
    message.refresh_from_db()
    assert message.status == M.DELIVERED  # proves delivery, not an open


# --- click redirect --------------------------------------------------------------------------------


def test_a_click_redirects_to_its_url_and_is_recorded(client, flush):
    message = SentMessageFactory()
    response = client.get(
        path_of(tokens.click_url(message.pk, 2, "https://shop.example.com/sale?a=1&b=2")), HTTP_USER_AGENT=BROWSER
    )
    flush()

    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.com/sale?a=1&b=2"
    event = MessageEvent.objects.get(message=message)
    assert (event.type, event.url, event.link_index, event.is_unique) == (
        EventType.CLICKED,
        "https://shop.example.com/sale?a=1&b=2",
        2,
        True,
    )
    message.refresh_from_db()
    assert message.status == M.CLICKED


def test_a_click_token_never_redirects_outside_http(client, flush):
    message = SentMessageFactory()
    for url in ("javascript:alert(1)", "data:text/html,hi", "//evil.example.com/", "https:///nohost"):
        assert client.get(path_of(tokens.click_url(message.pk, 0, url))).status_code == 404
    flush()
    assert not MessageEvent.objects.exists()


def test_a_scanner_clicking_on_arrival_is_flagged_not_counted(client, flush):
    message = SentMessageFactory(sent_at=timezone.now())
    client.get(path_of(tokens.click_url(message.pk, 0, "https://shop.example.com/")), HTTP_USER_AGENT=BROWSER)
    flush()

    event = MessageEvent.objects.get(message=message)
    assert event.machine
    assert not event.is_unique
    message.refresh_from_db()
    assert message.status == M.DELIVERED


def test_click_links_of_a_sent_message_lead_only_to_the_urls_it_contained(
    client, flush, django_capture_on_commit_callbacks
):
    campaign = CampaignFactory(status="running")
    campaign.template = EmailTemplateFactory(
        organization=campaign.organization,
        html_body='<html><body><a href="https://shop.example.com/sale">Sale</a> '
        '<a href="https://blog.example.com/{{ contact.first_name }}">Blog</a> '
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
    )
    campaign.template_version = template_snapshot(template=campaign.template)
    campaign.planned_at = timezone.now()
    campaign.save()
    contact = ContactFactory(organization=campaign.organization, first_name="Ana")
    message = Message.objects.create(
        organization=campaign.organization,
        campaign=campaign,
        contact=contact,
        to_address=contact.email,
        status=M.QUEUED,
        scheduled_at=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        sending.dispatch_due()
    html = mail.outbox[0].alternatives[0][0]
    # Read a minute later, not by a scanner on arrival.
    Message.objects.filter(pk=message.pk).update(sent_at=timezone.now() - timedelta(minutes=1))
    click_paths = [path_of(url) for url in re.findall(r'href="([^"]+/t/c/[^"]+)"', html)]
    assert len(click_paths) == 2

    targets = set()
    for path in click_paths:
        response = client.get(path, HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 302
        targets.add(response["Location"])
    assert targets == {"https://shop.example.com/sale", "https://blog.example.com/Ana"}

    # The same token with another URL put in is not one we signed.
    token = click_paths[0].removeprefix("/t/c/")
    payload, _, signature = token.rpartition(".")
    message_part, index_part, _url = payload.split(".")
    evil = "aHR0cHM6Ly9ldmlsLmV4YW1wbGUuY29tLw"  # https://evil.example.com/
    assert client.get(f"/t/c/{message_part}.{index_part}.{evil}.{signature}").status_code == 404

    pixel = re.search(r'src="([^"]+/t/o/[^"]+\.gif)"', html).group(1)
    assert client.get(path_of(pixel), HTTP_USER_AGENT=BROWSER).status_code == 200
    flush()
    message.refresh_from_db()
    assert message.status == M.CLICKED
    assert MessageEvent.objects.filter(message=message, type=EventType.CLICKED).count() == 2
    assert MessageEvent.objects.filter(message=message, type=EventType.OPENED).count() == 1


# --- unsubscribe ------------------------------------------------------------------------------------


def one_click_client() -> Client:
    # No session, no CSRF cookie or token: what a mail client sends (RFC 8058).
    return Client(enforce_csrf_checks=True)


def test_get_only_shows_the_page(client):
    message = SentMessageFactory()
    response = client.get(path_of(tokens.unsubscribe_url(message.pk)))

    assert response.status_code == 200
    assert b"<form" in response.content
    assert b'type="submit"' in response.content
    assert message.to_address.encode() in response.content
    message.contact.refresh_from_db()
    assert message.contact.status == ContactStatus.SUBSCRIBED
    assert not MessageEvent.objects.exists()
    assert not response.cookies


def test_one_click_post_without_cookies_unsubscribes_from_everything_once():
    message = SentMessageFactory()
    other_campaign = CampaignFactory(organization=message.organization, status="running")
    queued = SentMessageFactory(campaign=other_campaign, contact=message.contact, status=M.QUEUED, sent_at=None)
    url = path_of(tokens.unsubscribe_url(message.pk))
    client = one_click_client()

    first = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    second = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    assert first.status_code == second.status_code == 200
    assert not first.cookies
    assert not second.cookies
    assert "Set-Cookie" not in first
    message.contact.refresh_from_db()
    assert message.contact.status == ContactStatus.UNSUBSCRIBED
    event = MessageEvent.objects.get(message=message)  # posted twice, stored once
    assert event.type == EventType.UNSUBSCRIBED
    message.refresh_from_db()
    assert message.status == M.DELIVERED
    queued.refresh_from_db()
    assert queued.status == M.SKIPPED  # nothing more goes out to them


def test_this_list_only_leaves_other_mail_alone():
    newsletter = ContactListFactory(name="Newsletter")
    offers = ContactListFactory(organization=newsletter.organization, name="Offers")
    contact = ContactFactory(organization=newsletter.organization, lists=[newsletter, offers])
    campaign = CampaignFactory(
        organization=newsletter.organization, status="running", audience={"lists": [str(newsletter.pk)]}
    )
    message = SentMessageFactory(campaign=campaign, contact=contact)
    url = path_of(tokens.unsubscribe_url(message.pk))

    page = Client().get(url)
    assert b"Newsletter" in page.content
    assert b'value="list"' in page.content
    response = one_click_client().post(url, {"scope": "list"})

    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.status == ContactStatus.SUBSCRIBED
    memberships = {m.contact_list_id: m.unsubscribed_at for m in ListMembership.objects.filter(contact=contact)}
    assert memberships[newsletter.pk] is not None
    assert memberships[offers.pk] is None


# --- view in browser -----------------------------------------------------------------------------


def test_view_in_browser_shows_the_message_untracked(client):
    campaign = CampaignFactory(status="running")
    campaign.template = EmailTemplateFactory(
        organization=campaign.organization,
        html_body='<html><body><p>Hi {{ contact.first_name }}</p><a href="https://shop.example.com/">Shop</a>'
        "<script>alert(1)</script></body></html>",
    )
    campaign.template_version = template_snapshot(template=campaign.template)
    campaign.save()
    message = SentMessageFactory(
        campaign=campaign, contact=ContactFactory(organization=campaign.organization, first_name="Ana")
    )

    response = client.get(path_of(tokens.view_url(message.pk)))

    assert response.status_code == 200
    assert b"Hi Ana" in response.content
    assert b'href="https://shop.example.com/"' in response.content
    assert b"/t/o/" not in response.content
    assert b"/t/c/" not in response.content
    assert "sandbox" in response["Content-Security-Policy"]
    assert not MessageEvent.objects.exists()
    unsent = SentMessageFactory(campaign=campaign, status=M.QUEUED, sent_at=None)
    assert client.get(path_of(tokens.view_url(unsent.pk))).status_code == 404


# --- limits ----------------------------------------------------------------------------------------


@pytest.fixture(params=[conf.BUFFER_SYNC, conf.BUFFER_REDIS])
def buffer_mode(request, settings, monkeypatch):
    """Both buffers, within one clock minute (the cap counts per link per minute)."""
    if request.param == conf.BUFFER_REDIS and not settings.REDIS_URL:
        pytest.skip("the Redis stream buffer needs REDIS_URL")
    settings.TRACKING_BUFFER = request.param
    monkeypatch.setattr(buffer, "current_minute", lambda: 29_000_000)
    return request.param


def test_opens_of_one_link_beyond_the_cap_are_counted_not_stored(client, flush, settings, buffer_mode):
    cap = settings.TRACKING_EVENTS_PER_TOKEN_PER_MINUTE
    assert cap == 20  # the documented default
    message, other = SentMessageFactory(), SentMessageFactory()
    url = path_of(tokens.open_url(message.pk))

    responses = [client.get(url, HTTP_USER_AGENT=BROWSER) for _ in range(100)]
    other_response = client.get(path_of(tokens.open_url(other.pk)), HTTP_USER_AGENT=BROWSER)
    flush()

    # The same GIF whether stored or not: a replaying client cannot tell.
    assert {(r.status_code, r.content, r["Content-Type"]) for r in responses} == {(200, PIXEL, "image/gif")}
    assert all("no-store" in r["Cache-Control"] for r in responses)
    assert MessageEvent.objects.filter(message=message, type=EventType.OPENED).count() == cap
    assert buffer.capped_count() == 100 - cap
    assert other_response.status_code == 200
    assert MessageEvent.objects.filter(message=other, type=EventType.OPENED).count() == 1  # another link is unaffected


def test_a_capped_click_still_redirects(client, flush, settings, buffer_mode):
    settings.TRACKING_EVENTS_PER_TOKEN_PER_MINUTE = 3
    message = SentMessageFactory()
    url = path_of(tokens.click_url(message.pk, 0, "https://shop.example.com/sale"))
    other_link = path_of(tokens.click_url(message.pk, 1, "https://shop.example.com/shoes"))

    responses = [client.get(url, HTTP_USER_AGENT=BROWSER) for _ in range(10)]
    other = client.get(other_link, HTTP_USER_AGENT=BROWSER)
    flush()

    assert {(r.status_code, r["Location"]) for r in responses} == {(302, "https://shop.example.com/sale")}
    assert other.status_code == 302
    clicks = MessageEvent.objects.filter(message=message, type=EventType.CLICKED)
    assert sorted(clicks.values_list("link_index", flat=True)) == [0, 0, 0, 1]
    assert buffer.capped_count() == 7


def test_the_cap_starts_again_the_next_minute(client, flush, settings, buffer_mode, monkeypatch):
    settings.TRACKING_EVENTS_PER_TOKEN_PER_MINUTE = 2
    message = SentMessageFactory()
    url = path_of(tokens.open_url(message.pk))

    for _ in range(5):
        client.get(url, HTTP_USER_AGENT=BROWSER)
    monkeypatch.setattr(buffer, "current_minute", lambda: 29_000_001)
    for _ in range(5):
        client.get(url, HTTP_USER_AGENT=BROWSER)
    flush()

    assert MessageEvent.objects.filter(message=message).count() == 4


def test_a_forged_forwarded_for_header_is_not_the_stored_address(client, flush):
    message = SentMessageFactory()

    client.get(
        path_of(tokens.open_url(message.pk)),
        HTTP_USER_AGENT=BROWSER,
        REMOTE_ADDR="203.0.113.77",
        HTTP_X_FORWARDED_FOR="198.51.100.9",
    )
    flush()

    assert MessageEvent.objects.get(message=message).ip == "203.0.113.0"  # REMOTE_ADDR's, anonymized
