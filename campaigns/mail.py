"""Campaign email: Django's own message, and a faster SMTP backend.

A campaign message is a plain ``EmailMultiAlternatives`` (``campaign_email``), so every
backend builds and reads it the stock way: Anymail's ESP backends (the production path)
read its attributes or call ``message()`` themselves; Django's console, file and locmem
backends do what they always do.

One part is ours, and only on the plain SMTP path: ``SMTPEmailBackend`` (Django's SMTP
backend, same settings, connection handling and errors) does two things faster than stock,
each kept because the send benchmark (docs/BENCHMARKS.md, send section) shows it is what
holds the goal of sending at least twice as fast as django-post-office over SMTP:

* ``wire_bytes`` writes the bytes of a message of a campaign's shape (a text part, or a
  multipart/alternative of text and HTML, UTF-8, no attachments) directly, instead of
  Django's ``message()`` tree serialized by ``email.generator``, which costs more per
  message than rendering it. Byte for byte what Django would send apart from the MIME
  boundary and header folding. Any other shape goes through Django's ``message()``.
* ``pipelined_sendmail`` sends MAIL FROM, the RCPT TOs and DATA in one write when the
  server offers PIPELINING (RFC 2920).

Header values are checked for line breaks here (``HeaderInjection``), on every path: a
value that could add a header of its own is refused before any backend sees it.
"""

from __future__ import annotations

import binascii
import contextlib
import secrets
import smtplib
from email import policy
from email.utils import formatdate
from functools import lru_cache
from time import time

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends import smtp

LINE_LIMIT = 998  # RFC 5322: at most 998 characters a line, CRLF excluded
FOLD_AT = 78  # RFC 5322: lines SHOULD be no longer than this; longer header values are folded
CRLF = b"\r\n"
# The standard library's modern header handling (email.headerregistry): parses addresses,
# quotes display names, RFC 2047-encodes non-ASCII and folds long values.
_SMTP = policy.SMTP
# Characters that make an address need the header parser (display names, quoting, comments).
_PLAIN_ADDRESS_BAD = frozenset(' <>,;:"()[]\\\t')


class HeaderInjection(ValueError):
    """A header value with a line break: it could add headers (or a body) of its own."""


def campaign_email(
    *,
    subject: str,
    text: str,
    html: str,
    sender: str,
    to: list[str],
    reply_to: list[str],
    headers: dict[str, str],
) -> EmailMultiAlternatives:
    """A campaign message as Django's ``EmailMultiAlternatives``; raises HeaderInjection for a
    header value with a line break (bad data: it fails the same way on every attempt)."""
    email = EmailMultiAlternatives(
        subject=subject, body=text, from_email=sender, to=to, reply_to=reply_to, headers=headers
    )
    if html:
        email.attach_alternative(html, "text/html")
    check_headers(email)
    return email


def check_headers(email: EmailMultiAlternatives) -> None:
    """Refuse a message whose subject, addresses or extra headers hold a line break."""
    check_header_value("Subject", email.subject)
    check_header_value("From", email.from_email)
    for name, values in (("To", email.to), ("Cc", email.cc), ("Bcc", email.bcc), ("Reply-To", email.reply_to)):
        for value in values:
            check_header_value(name, value)
    for name, value in email.extra_headers.items():
        check_header_value(name, name)
        check_header_value(name, value)


def check_header_value(name: str, value) -> None:
    """Raise HeaderInjection when a header value (or name) holds a line break."""
    value = str(value)
    if "\n" in value or "\r" in value:
        raise HeaderInjection(f"Header values can't contain newlines (got {value!r} for header {name!r})")


# --- the bytes of a campaign-shaped message (SMTP only) ----------------------------------------------------


def wire_bytes(email: EmailMultiAlternatives) -> bytes | None:
    """The message's bytes with CRLF line ends, or None when it is not of a shape written here
    (the caller then uses Django's ``message()``). Raises HeaderInjection as ``check_headers``."""
    check_headers(email)
    encoding = email.encoding or settings.DEFAULT_CHARSET
    if encoding.lower().replace("_", "-") != "utf-8" or email.attachments or email.cc:
        return None
    if not isinstance(email.body, str):
        return None
    html = None
    if email.alternatives:
        alternatives = email.alternatives
        if len(alternatives) != 1 or alternatives[0][1] != "text/html" or email.content_subtype != "plain":
            return None
        html = alternatives[0][0]
        if not isinstance(html, str) or not email.body:
            return None  # (Django leaves an empty text part out)
    extra = email.extra_headers
    lowered = {name.lower() for name in extra}
    if "message-id" not in lowered:
        return None  # a campaign message names its own Message-ID; Django makes one otherwise
    head: list[str] = []
    if html is None:
        part_headers, body = _text_part(email.body, email.content_subtype)
        head.extend([part_headers[0], "MIME-Version: 1.0", *part_headers[1:]])
    else:
        boundary = "=_" + secrets.token_hex(16)
        text_headers, text_body = _text_part(email.body, "plain")
        html_headers, html_body = _text_part(html, "html")
        marker = boundary.encode()
        if marker in text_body or marker in html_body:  # 128 random bits; checked all the same
            return None
        head.extend([f'Content-Type: multipart/alternative; boundary="{boundary}"', "MIME-Version: 1.0"])
        body = b"".join(
            [
                b"--" + marker + CRLF,
                _head([text_headers[0], "MIME-Version: 1.0", *text_headers[1:]]),
                text_body,
                CRLF + b"--" + marker + CRLF,
                _head([html_headers[0], "MIME-Version: 1.0", *html_headers[1:]]),
                html_body,
                CRLF + b"--" + marker + b"--" + CRLF,
            ]
        )
    lines = [_subject(str(email.subject)), _addresses("From", [str(extra.get("From", email.from_email))])]
    for name, values in (("To", email.to), ("Reply-To", email.reply_to)):
        if values and name.lower() not in lowered:  # else set from extra_headers below, as Django does
            lines.append(_addresses(name, [str(value) for value in values]))
    if "date" not in lowered:
        lines.append(f"Date: {_date()}")
    for name, value in extra.items():
        if name.lower() == "from":
            continue
        value = str(value)
        if not value.isascii() or len(name) + 2 + len(value) > LINE_LIMIT:
            return None  # Django encodes or folds it
        lines.append(f"{name}: {value}")
    if None in lines:
        return None  # an address only Django's message writes (a non-ASCII address itself)
    return _head(head + lines) + body


def _head(lines: list[str]) -> bytes:
    """Header lines (already folded, ASCII) and the blank line that ends them."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _text_part(text: str, subtype: str) -> tuple[list[str], bytes]:
    """Headers (Content-Type first) and CRLF-ended body of a UTF-8 text part, encoded as Django would:
    7bit when ASCII, 8bit otherwise, quoted-printable when a line is longer than the limit."""
    # Strict: a lone surrogate raises UnicodeEncodeError (the message fails) rather than
    # becoming bytes that are not UTF-8.
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if len(data) > LINE_LIMIT and max(map(len, data.split(b"\n"))) > LINE_LIMIT:
        transfer = "quoted-printable"
        data = binascii.b2a_qp(data, istext=True)
    else:
        transfer = "7bit" if data.isascii() else "8bit"
    headers = [f'Content-Type: text/{subtype}; charset="utf-8"', f"Content-Transfer-Encoding: {transfer}"]
    return headers, data.replace(b"\n", CRLF)


def _subject(subject: str) -> str:
    if subject.isascii() and len(subject) <= FOLD_AT - len("Subject: "):
        return f"Subject: {subject}"
    return _folded("Subject", subject)


def _addresses(name: str, values: list[str]) -> str | None:
    if all(_plain(value) for value in values):
        line = f"{name}: {', '.join(values)}"
        if len(line) <= FOLD_AT:
            return line
    return _address_header(name, ", ".join(values))


def _plain(address: str) -> bool:
    return address.isascii() and not _PLAIN_ADDRESS_BAD.intersection(address) and address.count("@") == 1


@lru_cache(maxsize=4096)
def _address_header(name: str, value: str) -> str | None:
    """An address header as the standard library writes it (display names quoted or encoded, folded);
    None when an address itself is not ASCII. Cached: a sender repeats for a whole campaign."""
    header = _SMTP.header_factory(name, value)
    if header.defects or not header.addresses or not all(a.addr_spec.isascii() for a in header.addresses):
        return None
    return header.fold(policy=_SMTP).removesuffix("\r\n")


def _folded(name: str, value: str) -> str:
    return _SMTP.header_factory(name, value).fold(policy=_SMTP).removesuffix("\r\n")


_date_cache: tuple[int, bool, str] = (0, False, "")


def _date() -> str:
    """RFC 5322 date of now, made once a second."""
    global _date_cache
    now, local = int(time()), settings.EMAIL_USE_LOCALTIME
    second, was_local, text = _date_cache
    if second != now or was_local != local:
        text = formatdate(now, localtime=local)
        _date_cache = (now, local, text)
    return text


# --- SMTP ---------------------------------------------------------------------------------------------------


class SMTPEmailBackend(smtp.EmailBackend):
    """Django's SMTP backend (same settings, connection handling and errors), faster per message.

    * A campaign-shaped message is written by ``wire_bytes``; any other by Django's ``message()``.
    * Envelope addresses: parsed once each by the standard library (a sender repeats for a whole
      campaign); a plain ASCII address is used as it is.
    * When the server offers PIPELINING (RFC 2920), MAIL FROM, the RCPT TOs and DATA go out
      in one write and their replies are read together: two round trips a message instead of
      three plus one per recipient. The replies are handled as ``smtplib.SMTP.sendmail``
      handles them and raise the same exceptions.
    """

    def _send(self, email_message):
        recipients = email_message.recipients()
        if not recipients:
            return False
        sender = envelope_address(str(email_message.from_email))
        to = [envelope_address(str(address)) for address in recipients]
        data = wire_bytes(email_message)
        if data is None:
            data = email_message.message().as_bytes(linesep="\r\n")
        try:
            self.connection.ehlo_or_helo_if_needed()  # the extensions are known after EHLO
            if self.connection.has_extn("pipelining") and sender.isascii() and all(a.isascii() for a in to):
                pipelined_sendmail(self.connection, sender, to, data)
            else:
                self.connection.sendmail(sender, to, data)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True


@lru_cache(maxsize=4096)
def envelope_address(value: str) -> str:
    """The bare address of a header-form address for MAIL FROM / RCPT TO (``Name <a@example.com>`` ->
    ``a@example.com``), an internationalized domain in its ASCII (IDNA) form. Raises ValueError for
    anything but one address, and HeaderInjection for a line break."""
    check_header_value("address", value)
    if _plain(value):
        return value
    header = _SMTP.header_factory("To", value)
    if header.defects or len(header.addresses) != 1:
        raise ValueError(f"Invalid address {value!r}")
    local, _, domain = header.addresses[0].addr_spec.rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def pipelined_sendmail(conn: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> dict:
    """``conn.sendmail(sender, recipients, data)`` with the commands pipelined (RFC 2920).

    Returns the refused recipients as ``sendmail`` does (when some were accepted) and raises
    SMTPSenderRefused, SMTPRecipientsRefused or SMTPDataError where it would.
    """
    conn.ehlo_or_helo_if_needed()
    options = f" SIZE={len(data)}" if conn.has_extn("size") else ""
    commands = [f"MAIL FROM:<{sender}>{options}\r\n", *(f"RCPT TO:<{a}>\r\n" for a in recipients), "DATA\r\n"]
    conn.send("".join(commands).encode("ascii"))
    mail_code, mail_reply = conn.getreply()
    if mail_code == 421:  # the server is closing: nothing more will be answered
        conn.close()
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for address in recipients:
        code, reply = conn.getreply()
        if code not in (250, 251):
            refused[address] = (code, reply)
        if code == 421:
            conn.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    data_code, data_reply = conn.getreply()
    if data_code == 354 and (mail_code != 250 or len(refused) == len(recipients)):
        # A server that opened DATA although the transaction failed: end it empty.
        conn.send(b".\r\n")
        conn.getreply()
        data_code = 503
    if data_code == 354:
        if data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\n.", b"\n..")
        conn.send(data + (b".\r\n" if data.endswith(CRLF) else b"\r\n.\r\n"))
        data_code, data_reply = conn.getreply()
    if mail_code != 250 or len(refused) == len(recipients) or data_code != 250:
        if data_code == 421:
            conn.close()
        else:
            with contextlib.suppress(smtplib.SMTPServerDisconnected):  # as sendmail does: the error below matters
                conn.rset()
        if mail_code != 250:
            raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
        raise smtplib.SMTPDataError(data_code, data_reply)
    return refused
