"""Campaign email: Django's own message everywhere, its bytes written directly on the SMTP path (against
Django's own MIME), header-injection checks, and the SMTP backend, pipelined or not."""

import smtplib
from email import message_from_bytes, policy

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection

from campaigns.mail import (
    HeaderInjection,
    SMTPEmailBackend,
    campaign_email,
    envelope_address,
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
    """Just enough of smtplib.SMTP to see what pipelined_sendmail writes and when it reads."""

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
        return self.replies.pop(0)

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
    conn = RecordingConnection([(250, b"ok"), (550, b"no"), (354, b"go"), (554, b"no valid recipients")])
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        pipelined_sendmail(conn, "a@example.com", ["b@example.com"], b"body\r\n")
    assert ("send", b".\r\n") in conn.events
    assert conn.events[-1] == ("rset",)
    assert not any(event == ("send", b"body\r\n.\r\n") for event in conn.events)


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
