"""DNS look-ups for sending-domain verification: the one boundary tests replace.

`txt_records(name)` returns the TXT strings published at `name` (an empty list when the
name or its TXT records do not exist) and raises `LookupFailed` when DNS could not answer
(timeout, no server), so a temporary outage is reported as such rather than as a missing record.
"""

from __future__ import annotations

DNS_TIMEOUT_SECONDS = 5.0


class LookupFailed(Exception):
    """DNS did not answer; try again later."""


def txt_records(name: str) -> list[str]:
    """The TXT strings at `name` (each record's strings joined, as RFC 7208 reads them)."""
    try:
        import dns.exception
        import dns.resolver
    except ImportError:  # a deployment without the requirement: say so rather than fail with a 500
        raise LookupFailed("DNS look-ups need the dnspython package on this server") from None

    try:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = DNS_TIMEOUT_SECONDS
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration) as exc:
        raise LookupFailed(f"DNS did not answer for {name}: {exc.__class__.__name__}") from None
    except dns.exception.DNSException as exc:
        raise LookupFailed(f"DNS look-up of {name} failed: {exc}") from None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
