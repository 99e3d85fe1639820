"""The client's address, the one way: throttles, login lockouts, consent and event IPs all use it.

``X-Forwarded-For`` is trusted only as far as ``NUM_PROXIES`` says proxies of ours stand in front.
With 0 (the default) the header is ignored, so a client cannot choose the address it is counted
under. With N, the address the N-th proxy from the right appended is the client, exactly as DRF's
``BaseThrottle.get_ident`` reads it with ``REST_FRAMEWORK["NUM_PROXIES"]`` (settings keep the two equal).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    """The address a request is counted and recorded under ("" when the server gave none)."""
    meta = request.META
    remote_addr = (meta.get("REMOTE_ADDR") or "").strip()
    num_proxies = getattr(settings, "NUM_PROXIES", 0) or 0
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if num_proxies <= 0 or not forwarded:
        return remote_addr
    addresses = forwarded.split(",")
    return addresses[-min(num_proxies, len(addresses))].strip()


def client_address(request) -> str | None:
    """`client_ip` as a valid IP address to store, or None (a proxy's header is checked, not trusted)."""
    try:
        return str(ipaddress.ip_address(client_ip(request)))
    except ValueError:
        return None
