"""Was it a person or a machine? Heuristics for opens and clicks. Pure functions, no database.

Mail privacy proxies fetch the open pixel whether or not anyone reads the message,
and security gateways follow every link of an incoming message to scan it. Those
hits are stored like any other (`machine=True`, the raw counts stay), but they are
neither unique opens or clicks nor do they move a message to opened or clicked.

An open is a machine's when
  * the user agent is Apple Mail Privacy Protection's prefetcher: exactly ``Mozilla/5.0``,
    with no platform or engine, or the address is Apple's own (17.0.0.0/8);
  * the user agent names a proxy that prefetches on delivery (``YahooMailProxy``) or a
    known scanner (see below), or there is none at all;
  * it names Gmail's ``GoogleImageProxy`` and came within the organization's machine window
    after sending. Gmail's proxy fetches images when the recipient opens the message, so a
    later Gmail open is counted as a person's; one within seconds of sending is a prefetch.
A click is a machine's when
  * it came within the machine window (default 2 s) after the message was sent (no person
    reads and clicks that fast; gateways scanning links on arrival do);
  * it is a HEAD request, there is no user agent, or the user agent names a known scanner,
    crawler or HTTP library (Barracuda, Mimecast, Proofpoint, Safe Links' BingPreview,
    curl, python-requests, HeadlessChrome, "bot", "spider", ...).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from functools import lru_cache

APPLE_MPP_AGENTS = frozenset({"Mozilla/5.0"})
APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
PREFETCHING_PROXIES = re.compile(r"YahooMailProxy", re.I)
ON_OPEN_PROXIES = re.compile(r"GoogleImageProxy", re.I)
SCANNERS = re.compile(
    r"barracuda|mimecast|proofpoint|bingpreview|symantec|messagelabs|trendmicro|trend micro|forcepoint|"
    r"fortiguard|sophos|cisco|ironport|zscaler|safelinks|linkcheck|scanner|validator|"
    r"curl/|wget/|python-requests|python-urllib|aiohttp|go-http-client|okhttp|java/|libwww|httpclient|"
    r"headlesschrome|phantomjs|bot\b|bot/|spider|crawler|slurp|preview",
    re.I,
)


@lru_cache(maxsize=4096)
def _apple_address(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in APPLE_NETWORKS)


def within_window(occurred_at: datetime, sent_at: datetime | None, window_seconds: int) -> bool:
    """True when the event came less than `window_seconds` after the message was sent."""
    if sent_at is None or window_seconds <= 0:
        return False
    return occurred_at - sent_at < timedelta(seconds=window_seconds)


@lru_cache(maxsize=8192)
def _names_scanner(user_agent: str) -> bool:
    return SCANNERS.search(user_agent) is not None


@lru_cache(maxsize=8192)
def names_machine(user_agent: str) -> bool:
    """The user agent names a known scanner, crawler, HTTP library or prefetching proxy."""
    return _names_scanner(user_agent) or PREFETCHING_PROXIES.search(user_agent) is not None


def is_machine_open(
    *, user_agent: str, ip: str | None, occurred_at: datetime, sent_at: datetime | None, window_seconds: int
) -> bool:
    """True when a pixel fetch was a privacy proxy's or a scanner's, not a person opening the message."""
    agent = (user_agent or "").strip()
    if not agent or agent in APPLE_MPP_AGENTS or (ip and _apple_address(ip)):
        return True
    if names_machine(agent):
        return True
    return bool(ON_OPEN_PROXIES.search(agent)) and within_window(occurred_at, sent_at, window_seconds)


def is_machine_click(
    *, user_agent: str, method: str, occurred_at: datetime, sent_at: datetime | None, window_seconds: int
) -> bool:
    """True when a link was followed by a scanner or a library, not a person clicking."""
    agent = (user_agent or "").strip()
    if method == "HEAD" or not agent or _names_scanner(agent):
        return True
    return within_window(occurred_at, sent_at, window_seconds)
