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
* ``SMTPEmailBackend.send_each`` sends a group of messages with the SMTP commands pipelined
  across them when the server offers PIPELINING (RFC 2920): a message's content goes out in the
  same write as the next message's MAIL FROM, RCPT TOs and DATA, about one round trip a message
  (``pipelined_send_each``), and every message gets its own outcome.

Header values are checked for line breaks here (``HeaderInjection``), on every path: a
value that could add a header of its own is refused before any backend sees it.
"""

from __future__ import annotations

import binascii
import secrets
import smtplib
from email import policy
from email.utils import formatdate
from functools import lru_cache
from time import time

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
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
      in one write and their replies are read together; ``send_each`` also writes a message's
      content in the same write as the next message's commands. The replies are handled as
      ``smtplib.SMTP.sendmail`` handles them and raise the same exceptions.
    """

    def _send(self, email_message):
        envelope = self._envelope(email_message)
        if envelope is None:
            return False
        try:
            self.connection.ehlo_or_helo_if_needed()  # the extensions are known after EHLO
            if _pipelines(self.connection, envelope):
                pipelined_sendmail(self.connection, *envelope)
            else:
                self.connection.sendmail(*envelope)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True

    def send_each(self, email_messages: list[EmailMessage]) -> list[Exception | None]:
        """Send the messages on one connection, one outcome per message, in order: None when the server
        accepted it (its end of data got 250), else the error, of the types ``smtplib.SMTP.sendmail``
        raises. Never stops at a message's error and never raises one (``fail_silently`` does not
        apply). A message the connection closed before it was written fails with
        SMTPServerDisconnected (a temporary error). Afterwards the connection is ready for more, or
        closed (``connection`` is None) when the server went away."""
        outcomes: list[Exception | None] = [None] * len(email_messages)
        envelopes: list[tuple[int, Envelope]] = []
        for index, email_message in enumerate(email_messages):
            try:
                envelope = self._envelope(email_message)
            except Exception as exc:  # bad data in this message alone (a header, an address, its text)
                outcomes[index] = exc
                continue
            if envelope is None:
                outcomes[index] = ValueError("The message has no recipients.")
                continue
            envelopes.append((index, envelope))
        if not envelopes:
            return outcomes
        with self._lock:
            try:
                opened = self.open()
                if not self.connection:  # (failed silently)
                    raise smtplib.SMTPServerDisconnected("Could not connect to the SMTP server.")
            except Exception as exc:  # nothing went out
                for index, _ in envelopes:
                    outcomes[index] = exc
                return outcomes
            try:
                sent = self._send_envelopes([envelope for _, envelope in envelopes])
            finally:
                if opened or self.connection.sock is None:  # smtplib drops the socket of a closed connection
                    self.close()
        for (index, _), outcome in zip(envelopes, sent, strict=True):
            outcomes[index] = outcome
        return outcomes

    def _envelope(self, email_message) -> Envelope | None:
        """Sender, recipients and bytes of a message for the SMTP envelope; None without recipients."""
        recipients = email_message.recipients()
        if not recipients:
            return None
        sender = envelope_address(str(email_message.from_email))
        to = [envelope_address(str(address)) for address in recipients]
        data = wire_bytes(email_message)
        if data is None:
            data = email_message.message().as_bytes(linesep="\r\n")
        return sender, to, data

    def _send_envelopes(self, envelopes: list[Envelope]) -> list[Exception | None]:
        """All through ``pipelined_send_each`` when the server offers PIPELINING, else one by one
        through ``sendmail``; every outcome is kept."""
        conn = self.connection
        try:
            conn.ehlo_or_helo_if_needed()
        except Exception as exc:  # EHLO (or HELO) failed: nothing went out
            conn.close()
            return [_not_sent(exc) for _ in envelopes]
        if all(_pipelines(conn, envelope) for envelope in envelopes):
            return [
                outcome if isinstance(outcome, Exception) else None for outcome in pipelined_send_each(conn, envelopes)
            ]
        outcomes: list[Exception | None] = []
        for envelope in envelopes:
            try:
                conn.sendmail(*envelope)  # on a closed connection: SMTPServerDisconnected, nothing sent
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes


Envelope = tuple[str, list[str], bytes]  # sender, recipients (bare addresses), message bytes with CRLF line ends


def _pipelines(conn: smtplib.SMTP, envelope: Envelope) -> bool:
    """Whether the server offers PIPELINING and the envelope needs nothing but ASCII."""
    sender, to, _ = envelope
    return conn.has_extn("pipelining") and sender.isascii() and all(address.isascii() for address in to)


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
    (outcome,) = pipelined_send_each(conn, [(sender, recipients, data)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class _Closing(Exception):
    """The server answered 421: it is closing the connection."""


def pipelined_send_each(conn: smtplib.SMTP, envelopes: list[Envelope]) -> list[dict | Exception]:
    """Send several messages on one connection, the commands pipelined across them (RFC 2920).

    A message's MAIL FROM, RCPT TOs and DATA go out in one write; once DATA is answered 354, its
    content and end of data go out in front of the next message's commands (content may open a
    group, DATA closes one), so a message costs about one round trip. After a failed transaction
    an RSET goes in front of the next message's commands. The server must offer PIPELINING and
    the addresses must be ASCII.

    One outcome per envelope, in order: the refused recipients (a dict, as ``sendmail`` returns
    them; success needs 250 to the end of data) or the exception ``sendmail`` would have raised
    (SMTPSenderRefused, SMTPRecipientsRefused, SMTPDataError). When the server goes away (421, or
    the connection breaks) the connection is closed: a message whose content went out but whose
    reply did not come back fails with SMTPServerDisconnected (it may have been delivered), and so
    does every message whose content was never written (not sent: safe to retry).
    """
    outcomes: list[dict | Exception | None] = [None] * len(envelopes)
    ahead = b""  # written in front of the next message's commands: content and end of data, an RSET
    owed: list[tuple[int, dict] | None] = []  # replies to `ahead`: a message's end of data, or one to skip
    index = 0
    try:
        conn.ehlo_or_helo_if_needed()
        with_size = conn.has_extn("size")
        for index, (sender, recipients, data) in enumerate(envelopes):
            options = f" SIZE={len(data)}" if with_size else ""
            commands = [f"MAIL FROM:<{sender}>{options}\r\n", *(f"RCPT TO:<{a}>\r\n" for a in recipients), "DATA\r\n"]
            conn.send(ahead + "".join(commands).encode("ascii"))
            _read_owed(conn, owed, outcomes)
            ahead, owed = b"", []
            mail_code, mail_reply = conn.getreply()
            if mail_code == 421:
                outcomes[index] = smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
                raise _Closing(mail_code, mail_reply)
            refused: dict[str, tuple[int, bytes]] = {}
            for address in recipients:
                code, reply = conn.getreply()
                if code not in (250, 251):
                    refused[address] = (code, reply)
                if code == 421:
                    outcomes[index] = smtplib.SMTPRecipientsRefused(refused)
                    raise _Closing(code, reply)
            data_code, data_reply = conn.getreply()
            if mail_code != 250:
                error = smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
            elif len(refused) == len(recipients):
                error = smtplib.SMTPRecipientsRefused(refused)
            elif data_code != 354:
                error = smtplib.SMTPDataError(data_code, data_reply)
            else:
                ahead, owed = _dot_stuffed(data), [(index, refused)]
                continue
            outcomes[index] = error
            if data_code == 421:
                raise _Closing(data_code, data_reply)
            if data_code == 354:  # a server that opened DATA although the transaction failed: end it empty
                ahead, owed = b".\r\n", [None]
            ahead += b"RSET\r\n"
            owed.append(None)
        index = len(envelopes)
        if ahead:
            conn.send(ahead)
            _read_owed(conn, owed, outcomes)
    except (_Closing, smtplib.SMTPException, OSError) as exc:
        conn.close()
        for item in owed:
            if item is not None and outcomes[item[0]] is None:
                outcomes[item[0]] = smtplib.SMTPServerDisconnected(
                    f"The connection closed before the server confirmed this message (it may have been "
                    f"delivered): {_reason(exc)}"
                )
        for later in range(index, len(envelopes)):
            if outcomes[later] is None:
                outcomes[later] = _not_sent(exc)
    return outcomes


def _read_owed(conn: smtplib.SMTP, owed: list[tuple[int, dict] | None], outcomes: list) -> None:
    """Read the replies to what went in front of a message's commands: 250 to an end of data is
    a message sent (with its refused recipients), anything else its SMTPDataError."""
    for item in owed:
        code, reply = conn.getreply()
        if item is not None:
            index, refused = item
            outcomes[index] = refused if code == 250 else smtplib.SMTPDataError(code, reply)
        if code == 421:
            raise _Closing(code, reply)


def _dot_stuffed(data: bytes) -> bytes:
    """Message content as it goes after DATA: a dot opening a line doubled, then the end-of-data line."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\n.", b"\n..")
    return data + (b".\r\n" if data.endswith(CRLF) else b"\r\n.\r\n")


def _reason(exc: Exception) -> str:
    if isinstance(exc, _Closing):
        code, reply = exc.args
        return f"{code} {reply.decode('utf-8', 'replace')}"
    return str(exc) or exc.__class__.__name__


def _not_sent(exc: Exception) -> smtplib.SMTPServerDisconnected:
    return smtplib.SMTPServerDisconnected(
        f"The connection to the SMTP server closed before this message was sent: {_reason(exc)}"
    )
