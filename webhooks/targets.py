"""Where a webhook may be sent, and sending it there.

An endpoint's URL is http(s) and its host must resolve to public addresses only: private,
loopback, link-local, multicast, reserved and other non-global ranges are refused, so the API
cannot be used to reach the machines behind it (SSRF). The check is made when the URL is saved and
again on every delivery, and the request then connects to the very address that was checked, so a
name that resolves differently a moment later (DNS rebinding) cannot slip through. Redirects are
not followed. WEBHOOKS_ALLOW_PRIVATE_TARGETS turns the address check off (development, tests,
receivers on the same network).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import certifi
import urllib3
from django.conf import settings

SCHEMES = {"http": 80, "https": 443}
EXCERPT_BYTES = 1024
USER_AGENT = "CampaignCentral-Webhooks/1.0"


class UnsafeTarget(ValueError):
    """The URL may not receive webhooks; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written, lower case, without brackets
    port: int
    path: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


@dataclass(frozen=True)
class Reply:
    status: int
    excerpt: str


def parse(url: str) -> Target:
    """The URL's parts; raises UnsafeTarget for anything but an absolute http(s) URL."""
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"Not a valid URL: {exc}.") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeTarget("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise UnsafeTarget("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeTarget("Credentials in the URL are not supported; put a token in the path or query instead.")
    scheme = parts.scheme.lower()
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=parts.hostname.lower(), port=port or SCHEMES[scheme], path=path)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def resolve(target: Target, *, allow_private: bool | None = None) -> list[str]:
    """The addresses the host resolves to, all of them checked; raises UnsafeTarget."""
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS if allow_private is None else allow_private
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"The host {target.host} could not be resolved ({exc}).") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UnsafeTarget(f"The host {target.host} could not be resolved.")
    if not allow_private:
        # One private address is enough to refuse: a client could be given any of them.
        private = [address for address in addresses if not is_public(address)]
        if private:
            raise UnsafeTarget(
                f"The host {target.host} resolves to a private or reserved address ({private[0]}); "
                "webhooks go to public addresses only."
            )
    return addresses


def check_url(url: str) -> Target:
    """Validate a URL as the API saves it: http(s), resolving to allowed addresses."""
    target = parse(url)
    resolve(target)
    return target


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Reply:
    """POST `body` to the URL, connecting to an address checked just now; raises UnsafeTarget or an
    urllib3/OS error when no reply came."""
    target = parse(url)
    address = resolve(target)[0]
    pool_kwargs = {
        "host": address,
        "port": target.port,
        "timeout": urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
        "retries": False,
        "maxsize": 1,
    }
    if target.scheme == "https":
        # TLS to the checked address, with the certificate verified against the URL's host name.
        pool = urllib3.HTTPSConnectionPool(
            **pool_kwargs,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(**pool_kwargs)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={
                "Host": target.host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **headers,
            },
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        try:
            excerpt = response.read(EXCERPT_BYTES, decode_content=False)
        finally:
            response.release_conn()
            response.close()
        return Reply(status=response.status, excerpt=excerpt.decode("utf-8", "replace"))
    finally:
        pool.close()
