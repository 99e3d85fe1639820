"""Campaign email: the MIME of a campaign message written straight to bytes.

Django's ``EmailMessage.message()`` builds a tree of ``email.message`` objects and
the SMTP backend serializes it with ``email.generator``; for a campaign message that
costs more than rendering it. A campaign message has one of two shapes, a text part
or a multipart/alternative of text and HTML, so ``CampaignEmail.message()`` writes
those bytes directly, byte for byte what Django would send apart from the MIME
boundary and header folding (long header lines are legal up to 998 characters).

Every backend still sees a normal ``EmailMultiAlternatives``: Anymail's backends
read its attributes; Django's SMTP, console and file backends call
``message().as_bytes()``. Anything else done with the object ``message()`` returns
(reading or changing headers, walking the parts) builds Django's own message on
first use and serves everything from it from then on. Messages of another shape
(attachments, Cc, another charset, non-ASCII extra headers) are built by Django.
"""

from __future__ import annotations

import binascii
import contextlib
import secrets
import smtplib
from email.header import Header
from email.utils import formatdate, parseaddr
from functools import lru_cache
from time import time

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends import smtp
from django.core.mail.message import BadHeaderError, sanitize_address

LINE_LIMIT = 998  # RFC 5322: at most 998 characters a line, CRLF excluded
CRLF = b"\r\n"
# Characters that make an address need Django's parser (display names, quoting, comments, IDN).
_PLAIN_ADDRESS_BAD = frozenset(' <>,;:"()[]\\\t')


class CampaignEmail(EmailMultiAlternatives):
    """An email whose MIME is written directly when it has a campaign message's shape."""

    def message(self):
        data = _prepared_bytes(self)
        if data is None:
            return super().message()
        return PreparedMIME(self, data)


class PreparedMIME:
    """The bytes of a message, standing in for Django's SafeMIME object.

    ``as_bytes`` / ``as_string`` serve the prepared bytes; every other attribute or
    operation builds Django's message once and delegates to it (and from then on
    the prepared bytes are no longer used, so changes made through it are sent).
    """

    __slots__ = ("_data", "_email", "_full")

    def __init__(self, email: EmailMultiAlternatives, data: bytes):
        self._email = email
        self._data = data
        self._full = None

    def _message(self):
        if self._full is None:
            self._full = EmailMultiAlternatives.message(self._email)
        return self._full

    def as_bytes(self, unixfrom=False, linesep="\n"):
        if self._full is not None or unixfrom:
            return self._message().as_bytes(unixfrom=unixfrom, linesep=linesep)
        return self._data if linesep == "\r\n" else self._data.replace(CRLF, linesep.encode())

    def as_string(self, unixfrom=False, linesep="\n"):
        if self._full is not None or unixfrom:
            return self._message().as_string(unixfrom=unixfrom, linesep=linesep)
        return self.as_bytes(linesep=linesep).decode("utf-8", "surrogateescape")

    def get_charset(self):
        return self._message().get_charset() if self._full is not None else None

    def __getattr__(self, name):
        if name.startswith("__") or name in PreparedMIME.__slots__:
            raise AttributeError(name)  # not set yet (copy, pickle): no recursion into _message()
        return getattr(self._message(), name)

    def __setattr__(self, name, value):
        if name in PreparedMIME.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._message(), name, value)

    def __reduce_ex__(self, protocol):
        # Copied or pickled, it is Django's message.
        return (_as_is, (self._message(),))

    def __getitem__(self, name):
        return self._message()[name]

    def __setitem__(self, name, value):
        self._message()[name] = value

    def __delitem__(self, name):
        del self._message()[name]

    def __contains__(self, name):
        return name in self._message()

    def __iter__(self):
        return iter(self._message())

    def __len__(self):
        return len(self._message())

    def __bytes__(self):
        return self.as_bytes()

    def __str__(self):
        return self.as_string()


def _as_is(message):
    return message


# --- building --------------------------------------------------------------------------------------------


def _prepared_bytes(email: EmailMultiAlternatives) -> bytes | None:
    """The message's bytes with CRLF line ends, or None when it is not of a shape written here."""
    encoding = email.encoding or settings.DEFAULT_CHARSET
    if encoding.lower().replace("_", "-") != "utf-8" or email.attachments or email.cc:
        return None
    alternatives = email.alternatives
    html = None
    if alternatives:
        if len(alternatives) != 1 or alternatives[0][1] != "text/html" or email.content_subtype != "plain":
            return None
        html = alternatives[0][0]
        if not isinstance(html, str) or not email.body:
            return None  # (Django leaves an empty text part out)
    if not isinstance(email.body, str):
        return None
    extra = email.extra_headers
    lowered = {name.lower() for name in extra}
    lines: list[bytes] = []
    if html is None:
        text_headers, body = _text_part(email.body, email.content_subtype)
        lines.extend([text_headers[0], b"MIME-Version: 1.0", *text_headers[1:]])
    else:
        boundary = "=_" + secrets.token_hex(16)
        text_headers, text_body = _text_part(email.body, "plain")
        html_headers, html_body = _text_part(html, "html")
        marker = boundary.encode()
        if marker in text_body or marker in html_body:  # 128 random bits; checked all the same
            return None
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"'.encode())
        lines.append(b"MIME-Version: 1.0")
        body = b"".join(
            [
                b"--" + marker + CRLF,
                CRLF.join([*text_headers[:1], b"MIME-Version: 1.0", *text_headers[1:]]),
                CRLF + CRLF,
                text_body,
                CRLF + b"--" + marker + CRLF,
                CRLF.join([*html_headers[:1], b"MIME-Version: 1.0", *html_headers[1:]]),
                CRLF + CRLF,
                html_body,
                CRLF + b"--" + marker + b"--" + CRLF,
            ]
        )
    headers: list[tuple[str, str]] = [("Subject", _subject(email.subject))]
    headers.append(("From", _address(str(extra.get("From", email.from_email)), encoding)))
    for name, values in (("To", email.to), ("Reply-To", email.reply_to)):
        if name.lower() in lowered:
            continue  # set from extra_headers below, as Django does
        if values:
            headers.append((name, ", ".join(_address(str(value), encoding) for value in values)))
    if "date" not in lowered:
        headers.append(("Date", _date()))
    for name, value in extra.items():
        if name.lower() == "from":
            continue
        value = str(value)
        if "\n" in value or "\r" in value:
            raise BadHeaderError(f"Header values can't contain newlines (got {value!r} for header {name!r})")
        if not value.isascii():
            return None
        headers.append((name, value))
    if "message-id" not in lowered:
        return None  # a campaign message names its own Message-ID; let Django make one otherwise
    for name, value in headers:
        # Values were checked for line breaks above; any left come from RFC 2047 folding ("\n ").
        line = f"{name}: {value}"
        if len(line) > LINE_LIMIT and max(map(len, line.split("\n"))) > LINE_LIMIT:
            return None  # Django folds it
        lines.append(line.replace("\n", "\r\n").encode("ascii"))
    return CRLF.join(lines) + CRLF + CRLF + body


def _text_part(text: str, subtype: str) -> tuple[list[bytes], bytes]:
    """Headers (Content-Type first) and CRLF-ended body of a UTF-8 text part, encoded as Django would:
    7bit when ASCII, 8bit otherwise, quoted-printable when a line is longer than the limit."""
    # Strict: a lone surrogate raises UnicodeEncodeError (the message fails) rather than
    # becoming bytes that are not UTF-8.
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if len(data) > LINE_LIMIT and max(map(len, data.split(b"\n"))) > LINE_LIMIT:
        encoding = b"quoted-printable"
        data = binascii.b2a_qp(data, istext=True)
    else:
        encoding = b"7bit" if data.isascii() else b"8bit"
    content_type = b"Content-Type: text/" + subtype.encode("ascii") + b'; charset="utf-8"'
    return [content_type, b"Content-Transfer-Encoding: " + encoding], data.replace(b"\n", CRLF)


def _subject(subject: str) -> str:
    subject = str(subject)
    if "\n" in subject or "\r" in subject:
        raise BadHeaderError(f"Header values can't contain newlines (got {subject!r} for header 'Subject')")
    if subject.isascii() and len(subject) <= 60:
        return subject
    # Folded (and encoded when not ASCII) exactly as Django does.
    return Header(subject, None if subject.isascii() else "utf-8", header_name="Subject").encode()


def _address(value: str, encoding: str) -> str:
    if "\n" in value or "\r" in value:
        raise BadHeaderError(f"Header values can't contain newlines (got {value!r} for an address header)")
    if value.isascii() and not _PLAIN_ADDRESS_BAD.intersection(value) and value.count("@") == 1:
        return value
    return _sanitized(value, encoding)


@lru_cache(maxsize=4096)
def _sanitized(value: str, encoding: str) -> str:
    # Senders and reply addresses repeat for a whole campaign: parse each once.
    return sanitize_address(value, encoding)


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

    * Envelope addresses: a sender is parsed once (it repeats for a whole campaign); a plain
      ASCII recipient address is used as it is instead of going through the header parser.
    * When the server offers PIPELINING (RFC 2920), MAIL FROM, the RCPT TOs and DATA go out
      in one write and their replies are read together: two round trips a message instead of
      three plus one per recipient. The replies are handled as ``smtplib.SMTP.sendmail``
      handles them and raise the same exceptions.
    """

    def _send(self, email_message):
        recipients = email_message.recipients()
        if not recipients:
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        sender = _envelope(_sanitized(str(email_message.from_email), encoding))
        to = [_envelope(_address(str(address), encoding)) for address in recipients]
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
def _envelope(address: str) -> str:
    """The bare address of a header-form address (``Name <a@example.com>`` -> ``a@example.com``)."""
    if "<" not in address and " " not in address:
        return address
    return parseaddr(address)[1] or address


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
