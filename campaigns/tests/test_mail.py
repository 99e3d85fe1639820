"""Campaign email: Django's own message everywhere, its bytes written directly on the SMTP path (against
Django's own MIME), header-injection checks, and the SMTP backend, pipelined or not."""

import asyncio
import smtplib
import socket
from email import message_from_bytes, policy
from itertools import pairwise

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection

from campaigns.mail import (
    HeaderInjection,
    SMTPEmailBackend,
    campaign_email,
    envelope_address,
    pipelined_send_each,
    pipelined_sendmail,
    wire_bytes,
)

HEADERS = {
    "Message-ID": "<42.abc@mail.example.com>",
    "List-Unsubscribe": "<https://cc.example.com/u/2a.xyz>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "X-Campaign-Message": "42",
}


def make_email(**overrides):
    fields = {
        "subject": "Spring sale",
        "text": "Hello Ann,\nour spring sale starts today.\n",
        "html": "<p>Hello Ann,</p>\n<p>our <a href='https://x.example'>sale</a></p>\n",
        "sender": "Acme Shop <news@mail.example.com>",
        "to": ["ann@example.com"],
        "reply_to": ["help@example.com"],
        "headers": dict(HEADERS),
    }
    fields.update(overrides)
    return campaign_email(**fields)


def parsed(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def django_bytes(email) -> bytes:
    return email.message().as_bytes(linesep="\r\n")


def same_message(ours: bytes, django: bytes) -> None:
    """Header by header and part by part, what a mail client would read, is the same."""
    a, b = parsed(ours), parsed(django)
    names = ["Subject", "From", "To", "Reply-To", "Message-ID", "MIME-Version", *HEADERS]
    # (Django folds a long encoded subject behind an empty first line, read back as a leading space.)
    assert [str(a[name]).strip() for name in names] == [str(b[name]).strip() for name in names]
    assert a.get_content_type() == b.get_content_type()
    parts_a, parts_b = list(a.walk()), list(b.walk())
    assert [p.get_content_type() for p in parts_a] == [p.get_content_type() for p in parts_b]
    for part_a, part_b in zip(parts_a, parts_b, strict=True):
        assert part_a["Content-Transfer-Encoding"] == part_b["Content-Transfer-Encoding"]
        if not part_a.is_multipart():
            assert part_a.get_content() == part_b.get_content()
            assert part_a.get_content_charset() == part_b.get_content_charset() == "utf-8"


def lines_of(data: bytes) -> list[bytes]:
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in the message"
    return data.split(b"\r\n")


def header_lines(data: bytes, name: bytes) -> list[bytes]:
    """The lines of one header field, its continuation lines included."""
    head = lines_of(data.split(b"\r\n\r\n", 1)[0])
    start = next(i for i, line in enumerate(head) if line.startswith(name + b": "))
    end = next((i for i in range(start + 1, len(head)) if not head[i][:1].isspace()), len(head))
    return head[start:end]


def test_a_campaign_email_is_djangos_own_message():
    # What Anymail's ESP backends get: they read its attributes, or (Amazon SES) build its MIME with
    # Django and change it. Nothing of ours stands in between.
    email = make_email()
    assert type(email) is EmailMultiAlternatives
    assert email.alternatives[0][1] == "text/html"
    message = email.message()
    message["X-Extra"] = "yes"
    assert parsed(message.as_bytes(linesep="\r\n"))["X-Extra"] == "yes"
    assert [part.get_content_type() for part in message.walk()][1:] == ["text/plain", "text/html"]


def test_multipart_bytes_read_the_same_as_djangos():
    email = make_email()
    data = wire_bytes(email)
    same_message(data, django_bytes(email))
    assert parsed(data)["Date"] is not None
    assert parsed(data)["List-Unsubscribe"] == "<https://cc.example.com/u/2a.xyz>"
    assert parsed(data)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert max(len(line) for line in lines_of(data)) <= 998


def test_text_only_message_is_one_part():
    email = make_email(html="")
    data = wire_bytes(email)
    same_message(data, django_bytes(email))
    assert parsed(data).get_content_type() == "text/plain"
    assert parsed(data)["MIME-Version"] == "1.0"


def test_non_ascii_subject_sender_and_body_are_encoded_as_django_encodes_them():
    email = make_email(
        subject="Ünïcode sale 🎉 " + "long words " * 10,
        sender="Café Zoë <news@mail.example.com>",
        text="Grüße, Zoë\n",
        html="<p>Grüße 🎉</p>\n",
    )
    data = wire_bytes(email)
    assert data.isascii() is False  # 8bit bodies, as Django sends them
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # headers are RFC 2047 encoded
    assert max(map(len, header_lines(head, b"Subject"))) <= 78  # and folded
    same_message(data, django_bytes(email))


def test_a_long_ascii_subject_is_folded_and_reads_the_same():
    email = make_email(subject="A subject of many words " * 8)
    data = wire_bytes(email)
    assert len(header_lines(data, b"Subject")) > 1
    assert max(map(len, header_lines(data, b"Subject"))) <= 78
    same_message(data, django_bytes(email))


def test_long_lines_are_quoted_printable_and_decode_to_the_original():
    html = "<p>" + "x" * 3000 + " é</p>\n<p>next</p>\n"
    email = make_email(html=html)
    data = wire_bytes(email)
    assert max(len(line) for line in lines_of(data)) <= 998
    html_part = next(p for p in parsed(data).walk() if p.get_content_type() == "text/html")
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert html_part.get_content().replace("\r\n", "\n") == html
    same_message(data, django_bytes(email))


@pytest.mark.parametrize("body", ["one\r\ntwo\rthree\nfour", "ends without newline"])
def test_line_endings_are_crlf_on_the_wire(body):
    wire = wire_bytes(make_email(text=body))
    lines_of(wire)
    text = next(p for p in parsed(wire).walk() if p.get_content_type() == "text/plain")
    assert text.get_content().splitlines() == body.splitlines()


INJECTIONS = [
    {"subject": "Hello\r\nBcc: victim@example.com"},
    {"headers": {**HEADERS, "X-Campaign-Message": "1\nBcc: x@y"}},
    {"to": ["ann@example.com\nBcc: x@y"]},
    {"sender": "Acme\r\nBcc: x@y <news@mail.example.com>"},
    {"reply_to": ["help@example.com\rBcc: x@y"]},
]


@pytest.mark.parametrize("overrides", INJECTIONS)
def test_header_injection_is_refused(overrides):
    with pytest.raises(HeaderInjection):
        make_email(**overrides)


@pytest.mark.parametrize("overrides", INJECTIONS)
def test_header_injection_is_refused_by_the_smtp_path_too(overrides, smtp_sink):
    # A message built without campaign_email (any other mail sent through the SMTP backend).
    fields = {"subject": "Hi", "body": "x\n", "from_email": "a@example.com", "to": ["b@example.com"]}
    fields["headers"] = dict(HEADERS)
    renamed = {"sender": "from_email", "text": "body"}
    fields.update({renamed.get(key, key): value for key, value in overrides.items()})
    email = EmailMultiAlternatives(**fields)
    with pytest.raises(HeaderInjection, match="newlines"):
        wire_bytes(email)
    with backend_for(smtp_sink) as backend, pytest.raises(HeaderInjection):
        backend.send_messages([email])
    assert smtp_sink.received == []


def test_other_shapes_are_left_to_django_and_still_sent(smtp_sink):
    with_file = make_email()
    with_file.attach("report.csv", "a,b\n", "text/csv")
    with_cc = make_email()
    with_cc.cc = ["boss@example.com"]
    unicode_header = make_email(headers={**HEADERS, "X-Note": "é"})
    idn_recipient = make_email(to=["ann@exämple.com"])
    no_message_id = make_email(headers={"X-Campaign-Message": "42"})
    others = [with_file, with_cc, unicode_header, idn_recipient, no_message_id]
    assert [wire_bytes(email) for email in others] == [None] * len(others)
    with backend_for(smtp_sink) as backend:
        assert backend.send_messages(others) == len(others)
    received = smtp_sink.wait_for(len(others))
    assert received[1][0] == ["ann@example.com", "boss@example.com"]
    assert received[3][0] == ["ann@xn--exmple-cua.com"]  # the envelope's domain in IDNA form
    assert [part.get_filename() for part in received[0][1].walk()][-1] == "report.csv"


def test_an_empty_text_body_is_left_out_as_django_does():
    email = make_email(text="")
    assert wire_bytes(email) is None
    assert [p.get_content_type() for p in parsed(email.message().as_bytes()).walk()] == [
        "multipart/alternative",
        "text/html",
    ]


@pytest.mark.parametrize(
    ("value", "envelope"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Acme Shop <news@mail.example.com>", "news@mail.example.com"),
        ('"Acme, Inc." <news@mail.example.com>', "news@mail.example.com"),
        ("Zoë <zoe@bücher.example>", "zoe@xn--bcher-kva.example"),
    ],
)
def test_envelope_addresses_are_bare_and_ascii(value, envelope):
    assert envelope_address(value) == envelope


@pytest.mark.parametrize("value", ["not an address", "a@example.com, b@example.com"])
def test_an_envelope_needs_exactly_one_address(value):
    with pytest.raises(ValueError, match="Invalid address"):
        envelope_address(value)


# --- the SMTP backend ----------------------------------------------------------------------------------------


def backend_for(sink):
    return get_connection("campaigns.mail.SMTPEmailBackend", host="127.0.0.1", port=sink.port)


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_backend_sends_many_messages_on_one_connection(smtp_sink, pipelining):
    smtp_sink.pipelining = pipelining
    backend = backend_for(smtp_sink)
    emails = [make_email(to=[f"p{i}@example.com"], text=f".starts with a dot {i}\n.\n") for i in range(5)]
    with backend:
        assert backend.send_messages(emails) == 5
        assert backend.connection.has_extn("pipelining") is pipelining
    received = smtp_sink.wait_for(5)
    assert smtp_sink.sessions == 1
    assert [recipients for recipients, _ in received] == [[f"p{i}@example.com"] for i in range(5)]
    for i, (_, message) in enumerate(received):
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        assert text.get_payload(decode=True) == f".starts with a dot {i}\r\n.\r\n".encode()  # dots unstuffed
        assert message["From"] == "Acme Shop <news@mail.example.com>"


@pytest.mark.parametrize("pipelining", [True, False])
def test_refused_recipient_raises_like_sendmail_and_the_connection_goes_on(smtp_sink, pipelining):
    smtp_sink.pipelining = pipelining
    smtp_sink.refuse = {"gone@example.com": "550 5.1.1 No such user"}
    backend = backend_for(smtp_sink)
    with backend:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            backend.send_messages([make_email(to=["gone@example.com"])])
        assert refused.value.recipients["gone@example.com"][0] == 550
        assert backend.send_messages([make_email(to=["fine@example.com"])]) == 1
    assert smtp_sink.addresses() == ["fine@example.com"]


def test_some_refused_recipients_do_not_stop_the_others(smtp_sink):
    smtp_sink.refuse = {"gone@example.com": "550 5.1.1 No such user"}
    with backend_for(smtp_sink) as backend:
        assert backend.send_messages([make_email(to=["gone@example.com", "ok@example.com"])]) == 1
    assert smtp_sink.addresses() == ["ok@example.com"]


@pytest.mark.parametrize("pipelining", [True, False])
def test_refused_sender_raises_sender_refused(smtp_sink, pipelining):
    smtp_sink.pipelining = pipelining
    smtp_sink.refuse_sender = "550 5.7.1 Sender not allowed"
    with backend_for(smtp_sink) as backend, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        backend.send_messages([make_email()])
    assert refused.value.smtp_code == 550
    assert refused.value.sender == "news@mail.example.com"
    assert smtp_sink.received == []


def test_fail_silently_returns_zero_sent(smtp_sink):
    smtp_sink.refuse = {"gone@example.com": "451 4.3.0 Try later"}
    backend = get_connection("campaigns.mail.SMTPEmailBackend", host="127.0.0.1", port=smtp_sink.port)
    backend.fail_silently = True
    with backend:
        assert backend.send_messages([make_email(to=["gone@example.com"])]) == 0


class RecordingConnection:
    """Just enough of smtplib.SMTP to see what the pipelined senders write and when they read
    (a reply that is an exception is raised, as smtplib raises a broken connection)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.events: list = []

    def ehlo_or_helo_if_needed(self):
        pass

    def has_extn(self, name):
        return name == "size"

    def send(self, data):
        self.events.append(("send", data))

    def getreply(self):
        self.events.append(("read",))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def rset(self):
        self.events.append(("rset",))

    def close(self):
        self.events.append(("close",))


def test_commands_go_out_in_one_write_before_any_reply_is_read():
    conn = RecordingConnection([(250, b"ok"), (250, b"ok"), (250, b"ok"), (354, b"go"), (250, b"queued")])
    refused = pipelined_sendmail(
        conn, "a@example.com", ["b@example.com", "c@example.com"], b"Subject: x\r\n\r\n.hi\r\n"
    )
    assert refused == {}
    assert conn.events[0] == (
        "send",
        b"MAIL FROM:<a@example.com> SIZE=19\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n",
    )
    assert conn.events[1:5] == [("read",)] * 4
    assert conn.events[5] == ("send", b"Subject: x\r\n\r\n..hi\r\n.\r\n")


def test_a_server_that_opens_data_after_every_recipient_failed_gets_an_empty_message():
    conn = RecordingConnection(
        [(250, b"ok"), (550, b"no"), (354, b"go"), (554, b"no valid recipients"), (250, b"reset")]
    )
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        pipelined_sendmail(conn, "a@example.com", ["b@example.com"], b"body\r\n")
    # The empty message is ended, then the transaction reset; the body never goes out.
    assert conn.events[-3:] == [("send", b".\r\nRSET\r\n"), ("read",), ("read",)]
    assert not any(event[0] == "send" and b"body" in event[1] for event in conn.events)


def test_a_closing_server_closes_the_connection():
    conn = RecordingConnection([(421, b"bye"), (503, b"no"), (503, b"no")])
    with pytest.raises(smtplib.SMTPSenderRefused):
        pipelined_sendmail(conn, "a@example.com", ["b@example.com"], b"body\r\n")
    assert conn.events[-1] == ("close",)


def test_backend_is_djangos_smtp_backend():
    from django.core.mail.backends.smtp import EmailBackend

    assert issubclass(SMTPEmailBackend, EmailBackend)


def test_a_sender_name_with_a_comma_is_quoted_and_sent(smtp_sink):
    from campaigns.sending import _mailbox

    sender = _mailbox("Acme, Inc.", "news@mail.example.com")
    assert sender == '"Acme, Inc." <news@mail.example.com>'
    assert _mailbox('Say "hi"', "a@example.com") == '"Say \\"hi\\"" <a@example.com>'
    assert _mailbox("Acme Shop", "a@example.com") == "Acme Shop <a@example.com>"
    email = make_email(sender=sender)
    same_message(wire_bytes(email), django_bytes(email))
    with backend_for(smtp_sink) as backend:
        assert backend.send_messages([email]) == 1
    assert smtp_sink.wait_for(1)[0][1]["From"] == sender


def test_a_closing_server_after_rcpt_raises_recipients_refused():
    conn = RecordingConnection([(250, b"ok"), (421, b"closing")])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        pipelined_sendmail(conn, "a@example.com", ["b@example.com"], b"body\r\n")
    assert refused.value.recipients == {"b@example.com": (421, b"closing")}
    assert conn.events[-1] == ("close",)


# --- pipelining across messages (send_each) ------------------------------------------------------------------


OK, GO = (250, b"ok"), (354, b"go")


def test_a_message_content_goes_out_with_the_next_message_commands():
    conn = RecordingConnection([OK, OK, GO, OK, OK, OK, GO, OK, OK, OK, GO, (250, b"queued 3")])
    envelopes = [
        ("a@example.com", [f"r{i}@example.com"], f"Subject: {i}\r\n\r\nbody {i}\r\n".encode()) for i in range(3)
    ]
    assert pipelined_send_each(conn, envelopes) == [{}, {}, {}]
    writes = [event[1] for event in conn.events if event[0] == "send"]
    assert writes == [
        b"MAIL FROM:<a@example.com> SIZE=22\r\nRCPT TO:<r0@example.com>\r\nDATA\r\n",
        b"Subject: 0\r\n\r\nbody 0\r\n.\r\nMAIL FROM:<a@example.com> SIZE=22\r\nRCPT TO:<r1@example.com>\r\nDATA\r\n",
        b"Subject: 1\r\n\r\nbody 1\r\n.\r\nMAIL FROM:<a@example.com> SIZE=22\r\nRCPT TO:<r2@example.com>\r\nDATA\r\n",
        b"Subject: 2\r\n\r\nbody 2\r\n.\r\n",
    ]
    # Every reply owed by a write is read before the next write: one round trip a message, plus one.
    kinds = [event[0] for event in conn.events]
    assert kinds == ["send", *["read"] * 3, *(["send", *["read"] * 4] * 2), "send", "read"]


def test_a_lost_end_of_data_reply_is_an_error_and_the_rest_is_not_sent():
    lost = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    conn = RecordingConnection([OK, OK, GO, lost])
    envelopes = [("a@example.com", [f"r{i}@example.com"], b"x\r\n") for i in range(3)]
    first, second, third = pipelined_send_each(conn, envelopes)
    # The first message's content went out but nothing confirmed it: never a success.
    assert isinstance(first, smtplib.SMTPServerDisconnected)
    assert "may have been delivered" in str(first)
    for never_written in (second, third):
        assert isinstance(never_written, smtplib.SMTPServerDisconnected)
        assert "before this message was sent" in str(never_written)
    assert conn.events[-1] == ("close",)


def test_a_failed_transaction_is_reset_in_front_of_the_next_message():
    conn = RecordingConnection([(550, b"no sender"), (503, b"no"), (503, b"no"), (250, b"reset"), OK, OK, GO, OK])
    refused, sent = pipelined_send_each(conn, [("bad@example.com", ["r@example.com"], b"x\r\n")] * 2)
    assert isinstance(refused, smtplib.SMTPSenderRefused)
    assert refused.smtp_code == 550
    assert sent == {}
    writes = [event[1] for event in conn.events if event[0] == "send"]
    assert writes[1].startswith(b"RSET\r\nMAIL FROM:<bad@example.com>")


def envelope_of(email):
    """What the server saw of a message: the recipients and the campaign message number."""
    recipients, message = email
    return recipients, message["X-Campaign-Message"]


def numbered(count: int, **overrides):
    return [
        make_email(to=[f"p{i}@example.com"], headers={**HEADERS, "X-Campaign-Message": str(i)}, **overrides)
        for i in range(count)
    ]


def record_writes(backend) -> list:
    """The connection's writes and reads, in order (after EHLO): ("write", data) and ("read",)."""
    conn = backend.connection
    conn.ehlo_or_helo_if_needed()
    events: list = []
    send, getreply = conn.send, conn.getreply

    def recording_send(data):
        events.append(("write", data.encode() if isinstance(data, str) else data))
        return send(data)

    def recording_getreply():
        events.append(("read",))
        return getreply()

    conn.send, conn.getreply = recording_send, recording_getreply
    return events


def round_trips(events: list) -> int:
    """How often the client wrote and then waited for a reply."""
    return sum(1 for before, after in pairwise(events) if before[0] == "write" and after[0] == "read")


def writes_of(events: list) -> list[bytes]:
    return [event[1] for event in events if event[0] == "write"]


def test_send_each_pipelines_across_messages_and_they_arrive_intact_in_order(smtp_sink):
    emails = numbered(6, text=".starts with a dot\n.\n")
    with backend_for(smtp_sink) as backend:
        events = record_writes(backend)
        assert backend.send_each(emails) == [None] * 6
        pipelined = list(events)
        events.clear()
        assert backend.send_messages(numbered(6)) == 6  # one message at a time, for comparison
        one_by_one = list(events)
    received = smtp_sink.wait_for(12)
    assert [envelope_of(item) for item in received[:6]] == [([f"p{i}@example.com"], str(i)) for i in range(6)]
    assert smtp_sink.sessions == 1
    for _, message in received[:6]:
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        assert text.get_payload(decode=True) == b".starts with a dot\r\n.\r\n"  # dots unstuffed, body intact
    writes = writes_of(pipelined)
    assert len(writes) == round_trips(pipelined) == 7  # six messages: seven writes, seven round trips
    assert [write.count(b"MAIL FROM:") for write in writes] == [1, 1, 1, 1, 1, 1, 0]
    assert round_trips(one_by_one) == 12  # two a message without pipelining across messages


def test_a_refused_recipient_in_the_middle_fails_only_that_message(smtp_sink):
    smtp_sink.refuse = {"p2@example.com": "550 5.1.1 No such user", "p4@example.com": "451 4.3.0 Try later"}
    with backend_for(smtp_sink) as backend:
        outcomes = backend.send_each(numbered(6))
        assert backend.connection is not None  # the connection goes on
    assert [type(outcome) for outcome in outcomes] == [
        type(None),
        type(None),
        smtplib.SMTPRecipientsRefused,
        type(None),
        smtplib.SMTPRecipientsRefused,
        type(None),
    ]
    assert outcomes[2].recipients == {"p2@example.com": (550, b"5.1.1 No such user")}
    assert outcomes[4].recipients["p4@example.com"][0] == 451
    assert [number for _, number in map(envelope_of, smtp_sink.wait_for(4))] == ["0", "1", "3", "5"]


def test_some_refused_recipients_of_a_message_still_send_it(smtp_sink):
    smtp_sink.refuse = {"gone@example.com": "550 5.1.1 No such user"}
    emails = [make_email(to=["gone@example.com", "ok@example.com"]), make_email(to=["next@example.com"])]
    with backend_for(smtp_sink) as backend:
        assert backend.send_each(emails) == [None, None]
    assert smtp_sink.addresses() == ["ok@example.com", "next@example.com"]


def refuse_data_of(sink, number: str, reply: str) -> None:
    """The sink answers `reply` to the end of data of campaign message `number` (and keeps nothing of it)."""
    keep = sink.handle_DATA

    async def handle_DATA(server, session, envelope):
        if f"X-Campaign-Message: {number}\r\n".encode() in envelope.original_content:
            return reply
        return await keep(server, session, envelope)

    sink.handle_DATA = handle_DATA


def test_a_data_error_fails_only_its_message(smtp_sink):
    refuse_data_of(smtp_sink, "3", "554 5.6.0 Message rejected")
    with backend_for(smtp_sink) as backend:
        outcomes = backend.send_each(numbered(6))
    assert [outcome is None for outcome in outcomes] == [True, True, True, False, True, True]
    assert isinstance(outcomes[3], smtplib.SMTPDataError)
    assert (outcomes[3].smtp_code, outcomes[3].smtp_error) == (554, b"5.6.0 Message rejected")
    assert [number for _, number in map(envelope_of, smtp_sink.wait_for(5))] == ["0", "1", "2", "4", "5"]


def close_at(sink, command: str, number: int, *, reply: str = "") -> None:
    """The sink ends the connection at the `number`-th (1-based) MAIL FROM or end of data: with `reply`
    (421, then the connection closes), or without any (the connection drops)."""
    seen = []
    keep = getattr(sink, f"handle_{command}")

    async def closing(server, session, envelope, *args):
        seen.append(1)
        if len(seen) != number:
            return await keep(server, session, envelope, *args)
        if not reply:
            server.transport.abort()  # nothing more is written
            return "250 never written"
        asyncio.get_running_loop().call_soon(server.transport.close)  # after the reply is written
        return reply

    setattr(sink, f"handle_{command}", closing)


@pytest.mark.parametrize(
    ("command", "reply", "failure", "text"),
    [
        ("MAIL", "421 4.7.0 Too many messages, closing", smtplib.SMTPSenderRefused, "Too many messages"),
        ("DATA", "421 4.3.2 Shutting down", smtplib.SMTPDataError, "Shutting down"),
        # Its content went out and the connection dropped before the reply: an error, never a success.
        ("DATA", "", smtplib.SMTPServerDisconnected, "may have been delivered"),
    ],
)
def test_a_server_closing_mid_group_fails_the_rest_temporarily_and_reports_none_sent(
    smtp_sink, command, reply, failure, text
):
    close_at(smtp_sink, command, 3, reply=reply)
    with backend_for(smtp_sink) as backend:
        outcomes = backend.send_each(numbered(6))
        assert backend.connection is None  # closed: the next use opens a new one
        assert backend.send_each(numbered(1)) == [None]
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], failure)
    assert text in str(outcomes[2])
    for later in outcomes[3:]:
        assert isinstance(later, smtplib.SMTPServerDisconnected)  # temporary: retried
        assert "before this message was sent" in str(later)
    assert [number for _, number in map(envelope_of, smtp_sink.wait_for(3))] == ["0", "1", "0"]
    assert smtp_sink.sessions == 2


def test_without_pipelining_each_message_is_sent_alone_with_its_own_outcome(smtp_sink):
    smtp_sink.pipelining = False
    smtp_sink.refuse = {"p1@example.com": "550 5.1.1 No such user"}
    refuse_data_of(smtp_sink, "3", "451 4.3.0 Try later")
    with backend_for(smtp_sink) as backend:
        events = record_writes(backend)
        outcomes = backend.send_each(numbered(5))
    assert [type(outcome) for outcome in outcomes] == [
        type(None),
        smtplib.SMTPRecipientsRefused,
        type(None),
        smtplib.SMTPDataError,
        type(None),
    ]
    assert not any(b"MAIL FROM:" in data and b"RCPT TO:" in data for data in writes_of(events))  # one by one
    assert [number for _, number in map(envelope_of, smtp_sink.wait_for(3))] == ["0", "2", "4"]


def test_bad_data_in_one_message_fails_it_before_anything_is_sent(smtp_sink):
    emails = numbered(5)
    emails[1].extra_headers["X-Note"] = "a\r\nBcc: someone@example.com"
    emails[2].to = []
    emails[3].to = ["zoë@example.com"]  # not an address an envelope can carry without SMTPUTF8
    with backend_for(smtp_sink) as backend:
        outcomes = backend.send_each(emails)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], HeaderInjection)
    assert isinstance(outcomes[2], ValueError)
    assert "Invalid address" in str(outcomes[3])
    assert outcomes[4] is None
    assert [number for _, number in map(envelope_of, smtp_sink.wait_for(2))] == ["0", "4"]


def test_send_each_opens_and_closes_its_own_connection_when_not_open(smtp_sink):
    backend = backend_for(smtp_sink)
    assert backend.send_each(numbered(2)) == [None, None]
    assert backend.connection is None
    assert len(smtp_sink.wait_for(2)) == 2


def test_send_each_reports_a_connection_that_cannot_be_made_on_every_message():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there
    backend = get_connection("campaigns.mail.SMTPEmailBackend", host="127.0.0.1", port=port, timeout=5)
    outcomes = backend.send_each(numbered(2))
    assert [type(outcome) for outcome in outcomes] == [ConnectionRefusedError, ConnectionRefusedError]
