"""SMS length: GSM-7 or UCS-2 encoding and the number of segments a text is sent in.

A text that fits the GSM 03.38 alphabet is sent in 7-bit characters: 160 in
one message, 153 per segment once it is split (the rest of each segment holds
the concatenation header). Characters of the extension table (``^ { } \\ [ ~ ] |
€`` and form feed) take two. Any other character switches the whole text to
UCS-2: 70 UTF-16 code units in one message, 67 per segment; characters outside
the Basic Multilingual Plane (most emoji) take two. A two-unit character is
never split across segments, so a segment may hold one unit less.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_SEGMENT = 160, 153
UCS2_SINGLE, UCS2_SEGMENT = 70, 67


@dataclass(frozen=True)
class SmsInfo:
    encoding: str  # "gsm7" or "ucs2"
    length: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_info(text: str) -> SmsInfo:
    """Encoding, length and segment count of an SMS text."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text):
        widths = [2 if char in GSM7_EXTENDED else 1 for char in text]
        return SmsInfo("gsm7", sum(widths), _segments(widths, GSM7_SINGLE, GSM7_SEGMENT))
    widths = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return SmsInfo("ucs2", sum(widths), _segments(widths, UCS2_SINGLE, UCS2_SEGMENT))


def _segments(widths: list[int], single: int, per_segment: int) -> int:
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for width in widths:
        if used + width > per_segment:
            segments += 1
            used = 0
        used += width
    return segments
