"""Webhook bodies in the shapes the providers document and post, with fresh timestamps.

Postmark: one JSON object per post, basic auth. Mailgun: the JSON webhook with its HMAC
signature block. Amazon SES: an SNS Notification envelope whose Message is the SES event JSON,
with the x-amz-sns-* headers SNS sends. SparkPost: a JSON array of events (batched posts).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tracking.tests.conftest import MAILGUN_SIGNING_KEY

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


# --- Postmark ---------------------------------------------------------------------------------------


def postmark_delivery(message_id: str, email: str) -> dict[str, Any]:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Recipient": email,
        "Tag": "newsletter",
        "DeliveredAt": iso_now(),
        "Details": "smtp;250 2.0.0 OK 1573071234 a1si1234567qkb.123 - gsmtp",
        "Metadata": {},
    }


def postmark_bounce(message_id: str, email: str, *, kind: str = "HardBounce", bounce_id: int = 4323372036854775807):
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": bounce_id,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": "Hard bounce" if kind == "HardBounce" else "Soft bounce",
        "Tag": "newsletter",
        "MessageID": message_id,
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "news@mail.example.com",
        "BouncedAt": iso_now(),
        "DumpAvailable": True,
        "Inactive": kind == "HardBounce",
        "CanActivate": True,
        "Subject": "Our autumn sale",
        "Content": "Return-Path: <>\r\nReceived: ...",
    }


def postmark_complaint(message_id: str, email: str) -> dict[str, Any]:
    return {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "newsletter",
        "MessageID": message_id,
        "Metadata": {},
        "ServerID": 23,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "news@mail.example.com",
        "BouncedAt": iso_now(),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Our autumn sale",
        "Content": "<Abuse report dump>",
    }


def postmark_open(message_id: str, email: str, *, user_agent: str = CHROME) -> dict[str, Any]:
    return {
        "RecordType": "Open",
        "MessageStream": "outbound",
        "Metadata": {},
        "FirstOpen": True,
        "Recipient": email,
        "MessageID": message_id,
        "ReceivedAt": iso_now(),
        "Platform": "WebMail",
        "ReadSeconds": 5,
        "Tag": "newsletter",
        "UserAgent": user_agent,
        "OS": {"Name": "Windows 10", "Family": "Windows", "Company": "Microsoft Corporation"},
        "Client": {"Name": "Chrome 126.0", "Family": "Chrome", "Company": "Google"},
        "Geo": {"IP": "188.2.95.4", "City": "Novi Sad", "Country": "Serbia", "CountryISOCode": "RS"},
    }


def postmark_click(message_id: str, email: str, url: str) -> dict[str, Any]:
    return {
        "RecordType": "Click",
        "MessageStream": "outbound",
        "Metadata": {},
        "Recipient": email,
        "MessageID": message_id,
        "ReceivedAt": iso_now(),
        "Platform": "Desktop",
        "ClickLocation": "HTML",
        "OriginalLink": url,
        "Tag": "newsletter",
        "UserAgent": CHROME,
        "OS": {"Name": "Windows 10", "Family": "Windows", "Company": "Microsoft Corporation"},
        "Client": {"Name": "Chrome 126.0", "Family": "Chrome", "Company": "Google"},
        "Geo": {"IP": "188.2.95.4", "City": "Novi Sad", "Country": "Serbia", "CountryISOCode": "RS"},
    }


def postmark_inbound(*, to: str, in_reply_to: str = "", message_id: str = "") -> dict[str, Any]:
    headers = [{"Name": "Return-Path", "Value": "<ana@example.net>"}, {"Name": "X-Spam-Status", "Value": "No"}]
    if in_reply_to:
        headers += [{"Name": "In-Reply-To", "Value": in_reply_to}, {"Name": "References", "Value": in_reply_to}]
    headers.append({"Name": "Message-ID", "Value": message_id or f"<{uuid.uuid4().hex}@mail.example.net>"})
    return {
        "FromName": "Ana",
        "MessageStream": "inbound",
        "From": "ana@example.net",
        "FromFull": {"Email": "ana@example.net", "Name": "Ana", "MailboxHash": ""},
        "To": to,
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": to.partition("+")[2].partition("@")[0]}],
        "Cc": "",
        "CcFull": [],
        "OriginalRecipient": to,
        "Subject": "Re: Our autumn sale",
        "MessageID": str(uuid.uuid4()),
        "ReplyTo": "",
        "MailboxHash": to.partition("+")[2].partition("@")[0],
        "Date": "Fri, 1 Aug 2026 16:45:32 -04:00",
        "TextBody": "Yes please, call me.\n\nOn ... you wrote:\n> Our autumn sale",
        "HtmlBody": "<p>Yes please, call me.</p>",
        "StrippedTextReply": "Yes please, call me.",
        "Tag": "",
        "Headers": headers,
        "Attachments": [],
    }


# --- Mailgun ----------------------------------------------------------------------------------------


def mailgun_signed(event_data: dict[str, Any], *, key: str = MAILGUN_SIGNING_KEY) -> dict[str, Any]:
    timestamp = str(int(time.time()))
    token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}


def mailgun_event(event: str, message_id: str, email: str, **fields: Any) -> dict[str, Any]:
    data = {
        "event": event,
        "timestamp": time.time(),
        "id": uuid.uuid4().hex[:22],
        "log-level": "info",
        "envelope": {
            "transport": "smtp",
            "sender": "news@mg.example.com",
            "sending-ip": "209.61.154.250",
            "targets": email,
        },
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
        "message": {
            "headers": {
                "to": email,
                "message-id": message_id,
                "from": "News <news@mg.example.com>",
                "subject": "Our autumn sale",
            },
            "attachments": [],
            "size": 4211,
        },
        "recipient": email,
        "recipient-domain": email.rpartition("@")[2],
        "campaigns": [],
        "tags": ["newsletter"],
        "user-variables": {},
    }
    data.update(fields)
    return data


def mailgun_delivered(message_id: str, email: str) -> dict[str, Any]:
    return mailgun_event(
        "delivered",
        message_id,
        email,
        **{
            "delivery-status": {
                "tls": True,
                "mx-host": "smtp-in.example.com",
                "code": 250,
                "description": "",
                "session-seconds": 0.43,
                "utf8": True,
                "attempt-no": 1,
                "message": "OK",
                "certificate-verified": True,
            }
        },
    )


def mailgun_failed(message_id: str, email: str, *, severity: str = "permanent") -> dict[str, Any]:
    code, text = (550, "5.1.1 The email account does not exist") if severity == "permanent" else (452, "4.2.2 Full")
    return mailgun_event(
        "failed",
        message_id,
        email,
        severity=severity,
        reason="bounce" if severity == "permanent" else "generic",
        **{
            "delivery-status": {
                "tls": True,
                "mx-host": "smtp-in.example.com",
                "code": code,
                "description": "",
                "attempt-no": 1,
                "message": text,
                "certificate-verified": True,
            }
        },
    )


def mailgun_complained(message_id: str, email: str) -> dict[str, Any]:
    return mailgun_event("complained", message_id, email)


def mailgun_opened(message_id: str, email: str) -> dict[str, Any]:
    return mailgun_event(
        "opened",
        message_id,
        email,
        ip="50.56.129.169",
        geolocation={"country": "US", "region": "CA", "city": "San Francisco"},
        **{
            "client-info": {
                "client-os": "Windows",
                "device-type": "desktop",
                "client-name": "Chrome",
                "client-type": "browser",
                "user-agent": CHROME,
            }
        },
    )


def mailgun_clicked(message_id: str, email: str, url: str) -> dict[str, Any]:
    data = mailgun_opened(message_id, email)
    data["event"] = "clicked"
    data["url"] = url
    return data


# --- Amazon SES (through SNS) ------------------------------------------------------------------------


def ses_mail(message_id: str, email: str) -> dict[str, Any]:
    return {
        "timestamp": iso_now(),
        "source": "News <news@mail.example.com>",
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/mail.example.com",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": [email],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "News <news@mail.example.com>"},
            {"name": "To", "value": email},
            {"name": "Subject", "value": "Our autumn sale"},
        ],
        "commonHeaders": {"from": ["News <news@mail.example.com>"], "to": [email], "subject": "Our autumn sale"},
        "tags": {"ses:configuration-set": ["campaigns"]},
    }


def ses_event(event_type: str, message_id: str, email: str) -> dict[str, Any]:
    event: dict[str, Any] = {"eventType": event_type, "mail": ses_mail(message_id, email)}
    now = iso_now()
    if event_type == "Delivery":
        event["delivery"] = {
            "timestamp": now,
            "processingTimeMillis": 546,
            "recipients": [email],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        }
    elif event_type in ("Bounce", "SoftBounce"):
        permanent = event_type == "Bounce"
        event["eventType"] = "Bounce"
        event["bounce"] = {
            "bounceType": "Permanent" if permanent else "Transient",
            "bounceSubType": "General" if permanent else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "action": "failed",
                    "status": "5.1.1" if permanent else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown" if permanent else "smtp; 452 4.2.2 mailbox full",
                }
            ],
            "timestamp": now,
            "feedbackId": "0102018e-61b59c11-9236-11e6-8f96-7be8aexample-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        }
    elif event_type == "Complaint":
        event["complaint"] = {
            "complainedRecipients": [{"emailAddress": email}],
            "timestamp": now,
            "feedbackId": "0102018e-1f1f-4a5c-9c2d-complaint-000000",
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": now,
        }
    elif event_type == "Open":
        event["open"] = {"ipAddress": "192.0.2.1", "timestamp": now, "userAgent": CHROME}
    elif event_type == "Click":
        event["click"] = {
            "ipAddress": "192.0.2.1",
            "link": "https://shop.example.com/sale",
            "linkTags": {"campaign": ["autumn"]},
            "timestamp": now,
            "userAgent": CHROME,
        }
    return event


def sns_notification(ses: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(body, extra request headers) of the SNS HTTP POST carrying `ses`."""
    sns_id = str(uuid.uuid4())
    topic = "arn:aws:sns:eu-west-1:123456789012:ses-events"
    body = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": topic,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses),
        "Timestamp": iso_now(),
        "SignatureVersion": "1",
        "Signature": (
            "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxY"
            "DVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q="
        ),
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": f"https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:1b2c3d4e",
    }
    headers = {
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification",
        "HTTP_X_AMZ_SNS_MESSAGE_ID": sns_id,
        "HTTP_X_AMZ_SNS_TOPIC_ARN": topic,
    }
    return body, headers


# --- SparkPost (batched) ------------------------------------------------------------------------------


def sparkpost_event(event_type: str, transmission_id: str, email: str, **fields: Any) -> dict[str, Any]:
    event_class = "track_event" if event_type in ("open", "click", "initial_open") else "message_event"
    event = {
        "type": event_type,
        "event_id": str(uuid.uuid4().int)[:18],
        "timestamp": str(int(time.time())),
        "transmission_id": transmission_id,
        "message_id": uuid.uuid4().hex[:20],
        "raw_rcpt_to": email,
        "rcpt_to": email,
        "rcpt_meta": {},
        "campaign_id": "autumn",
        "friendly_from": "news@mail.example.com",
        "sending_ip": "127.0.0.1",
        "ip_pool": "default",
        "routing_domain": email.rpartition("@")[2],
        "subaccount_id": 0,
    }
    if event_type in ("open", "click"):
        event.update(user_agent=CHROME, ip_address="192.0.2.1", geo_ip={"country": "NL", "city": "Utrecht"})
    if event_type == "click":
        event["target_link_url"] = "https://shop.example.com/sale"
    event.update(fields)
    return {"msys": {event_class: event}}


# --- inbound (replies) ---------------------------------------------------------------------------------


def reply_mime(*, to: str, in_reply_to: str) -> str:
    return (
        "From: Ana <ana@example.net>\r\n"
        f"To: {to}\r\n"
        "Subject: Re: Our autumn sale\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mail.example.net>\r\n"
        f"In-Reply-To: {in_reply_to}\r\n"
        f"References: {in_reply_to}\r\n"
        "Date: Fri, 1 Aug 2026 16:45:32 -0400\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Yes please, call me.\r\n"
    )


def ses_inbound(raw_mime: str, *, to: str) -> dict[str, Any]:
    """An SES receipt rule's SNS action: the message itself in "content"."""
    now = iso_now()
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": now,
            "source": "ana@example.net",
            "messageId": uuid.uuid4().hex,
            "destination": [to],
            "headersTruncated": False,
            "headers": [{"name": "From", "value": "Ana <ana@example.net>"}, {"name": "To", "value": to}],
            "commonHeaders": {"from": ["Ana <ana@example.net>"], "to": [to], "subject": "Re: Our autumn sale"},
        },
        "receipt": {
            "timestamp": now,
            "processingTimeMillis": 312,
            "recipients": [to],
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": {
                "type": "SNS",
                "topicArn": "arn:aws:sns:eu-west-1:123456789012:ses-inbound",
                "encoding": "UTF8",
            },
        },
        "content": raw_mime,
    }


def sparkpost_relay(raw_mime: str, *, to: str) -> list[dict[str, Any]]:
    """SparkPost's inbound relay webhook: a batch of relay_message events."""
    return [
        {
            "msys": {
                "relay_message": {
                    "content": {
                        "email_rfc822": raw_mime,
                        "email_rfc822_is_base64": False,
                        "headers": [{"Subject": "Re: Our autumn sale"}],
                        "subject": "Re: Our autumn sale",
                        "text": "Yes please, call me.",
                        "to": [to],
                    },
                    "customer_id": "1337",
                    "friendly_from": "ana@example.net",
                    "msg_from": "ana@example.net",
                    "protocol": "smtp",
                    "rcpt_to": to,
                    "webhook_id": "639109161937011611",
                }
            }
        }
    ]


def mailgun_inbound(raw_mime: str, *, to: str, key: str = MAILGUN_SIGNING_KEY) -> dict[str, str]:
    """Mailgun's route forwarding to a URL containing "mime": a signed form with the raw message."""
    signature = mailgun_signed({}, key=key)["signature"]
    return {
        "recipient": to,
        "sender": "ana@example.net",
        "from": "Ana <ana@example.net>",
        "subject": "Re: Our autumn sale",
        "body-mime": raw_mime,
        **signature,
    }
