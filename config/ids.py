"""Time-ordered UUIDs (version 7, RFC 9562).

Random UUIDs land anywhere in an index, so every insert into a big table touches
a random page. Version 7 UUIDs start with the time in milliseconds: rows created
together sit together in the index, and inserts append.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80  # 48 bits of Unix time in ms
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 random bits
    value |= 0b10 << 62  # RFC variant
    value |= rand & ((1 << 62) - 1)  # 62 random bits
    return uuid.UUID(int=value)


def uuid7_hexes(count: int) -> list[str]:
    """`count` version 7 UUIDs as 32 hex digits, with one call for randomness (bulk imports)."""
    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    head = (millis << 80) | (0x7 << 76) | (0b10 << 62)
    randomness = os.urandom(10 * count)
    values = []
    for offset in range(0, 10 * count, 10):
        rand = int.from_bytes(randomness[offset : offset + 10], "big")
        values.append(f"{head | (((rand >> 62) & 0xFFF) << 64) | (rand & ((1 << 62) - 1)):032x}")
    return values
