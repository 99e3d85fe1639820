"""Public endpoints, no login: open pixel, click redirect, unsubscribe, view in browser.

    GET /t/o/<token>.gif   1x1 GIF, records an open
    GET /t/c/<token>       302 to the URL signed into the token, records a click
    GET /u/<token>         unsubscribe page: a button, and "this list only" or "everything"
    POST /u/<token>        unsubscribe (the page's form, or RFC 8058 one-click from the mail client)
    GET /v/<token>         the message as sent, without tracking

A token that does not verify is a 404 and records nothing. The pixel and the redirect do no
database work: they verify the token, append one record to the buffer and answer. Hits on one
link beyond TRACKING_EVENTS_PER_TOKEN_PER_MINUTE are counted, not stored (`buffer.push_hit`);
the answer is the same GIF or redirect either way, so a replaying client learns nothing. The
unsubscribe POST needs no login, no CSRF token and no cookie (mail clients post it blind),
is idempotent and answers 200; a GET never changes anything.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.clientip import client_ip as config_client_ip
from tracking import buffer, selectors, services, tokens
from tracking.models import EventType
from tracking.records import EventRecord, clean_ip, hit_key
from tracking.rendering import render_for_browser

# A transparent 1x1 GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_STORE = "no-store, no-cache, must-revalidate, max-age=0, private"
NOT_FOUND = "This link is not valid."


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as every limit reads it (X-Forwarded-For only through NUM_PROXIES), if valid."""
    return clean_ip(config_client_ip(request))


def _record(request: HttpRequest, **fields) -> EventRecord:
    return EventRecord(
        occurred_at=timezone.now(),
        dedupe_key=hit_key(),
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        method=request.method,
        **fields,
    )


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = NO_STORE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    try:
        message_id = tokens.read_message_token("open", token)
    except tokens.BadToken:
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    buffer.push_hit(_record(request, type=EventType.OPENED, message_id=message_id), key=f"open:{message_id}")
    return _no_store(HttpResponse(PIXEL, content_type="image/gif"))


@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = tokens.read_click_token(token)
    except tokens.BadToken:
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    parts = urlsplit(link.url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c in link.url for c in "\r\n"):
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    buffer.push_hit(
        _record(request, type=EventType.CLICKED, message_id=link.message_id, url=link.url, link_index=link.link_index),
        key=f"click:{link.message_id}:{link.link_index}",
    )
    response = _no_store(HttpResponseRedirect(link.url))
    response["Referrer-Policy"] = "no-referrer"
    return response


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        message_id = tokens.read_message_token("unsubscribe", token)
    except tokens.BadToken:
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    message = selectors.message_for_link(message_id=message_id)
    if message is None:
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    lists = services.campaign_lists(campaign=message.campaign)
    context = {"organization": message.campaign.organization, "address": message.to_address, "lists": lists}
    if request.method != "POST":
        return _no_store(render(request, "tracking/unsubscribe.html", context))
    # RFC 8058 one-click posts only "List-Unsubscribe=One-Click": that is "everything".
    scope = request.POST.get("scope")
    if scope not in services.UnsubscribeScope.CHOICES:
        scope = services.UnsubscribeScope.ALL
    scope = services.message_unsubscribe(
        message=message,
        scope=scope,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
    )
    return _no_store(render(request, "tracking/unsubscribed.html", {**context, "scope": scope}))


@require_http_methods(["GET", "HEAD"])
def view_in_browser(request: HttpRequest, token: str) -> HttpResponse:
    try:
        message_id = tokens.read_message_token("view", token)
    except tokens.BadToken:
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    message = selectors.message_for_link(message_id=message_id)
    page = render_for_browser(message) if message is not None else None
    if page is None:
        return HttpResponseNotFound(NOT_FOUND, content_type="text/plain")
    response = _no_store(HttpResponse(page, content_type="text/html; charset=utf-8"))
    # The body is organization-authored HTML: no scripts, no forms, a unique origin (no cookies).
    response["Content-Security-Policy"] = (
        "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation; "
        "default-src 'none'; img-src * data:; style-src 'unsafe-inline' *; font-src * data:"
    )
    response["Referrer-Policy"] = "no-referrer"
    return response
