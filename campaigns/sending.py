"""Dispatch and send: how a queued message becomes a sent one, exactly once.

Dispatch (a beat task every few seconds, safe to run on many workers at once):
  1. Expired leases are settled: a message still `claimed` goes back to `queued`
     (it never reached a provider); a message still `sending` becomes `unknown`
     (its worker died during the provider call; it is shown to the operator and is
     never sent again without an explicit resend).
  2. Scheduled campaigns whose start time has come start running.
  3. Due queued messages of running campaigns are claimed with
     SELECT ... FOR UPDATE SKIP LOCKED, given a lease, and handed to send tasks in
     chunks (one task per chunk, on the `send` queue).
  4. Follow-ups whose time has come are expanded and planned (step 1: recipients of
     step 0 who did not open, or click).
  5. Running campaigns with nothing left pending are completed.

Send (a task per chunk), in groups of ten messages: render them, then one conditional
UPDATE moves them claimed -> sending only where this task's lease still holds (a
redelivered or late task finds nothing to do), commit, call the provider for each, and
record the group's `sent` in one statement (retry / failed per message at once). One
email connection is reused for the whole chunk. A worker that dies mid-group leaves at
most that group `unknown`; nothing is ever sent twice.
SMS and WhatsApp messages take the same steps; only rendering and the provider call differ (their
channel backend, campaigns.channels, with one session for the chunk).
A paused campaign's claimed messages are released back to queued, untouched.
Temporary failures are retried after 1, 2 and 4 minutes, then the message fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import smtplib
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.utils import make_msgid, parseaddr
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from campaigns import channels
from campaigns import selectors as campaign_selectors
from campaigns.mail import HeaderInjection, campaign_email, check_header_value
from campaigns.models import (
    PENDING_STATUSES,
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignVariant,
    Channel,
    Message,
    MessageStatus,
)
from contacts.services import contacts_mark_contacted, contacts_mark_contacted_sql
from templates_app import rendering, selectors
from templates_app.tracking_html import LinkTracking
from tracking import tokens

logger = logging.getLogger(__name__)

RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4))
M = MessageStatus


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.CAMPAIGN_LEASE_SECONDS)


# --- dispatch ----------------------------------------------------------------------------------------


@dataclass
class DispatchResult:
    claimed: int = 0
    reclaimed: int = 0
    unknown: int = 0
    started: int = 0
    completed: int = 0
    batches: list[tuple[list[int], str]] = field(default_factory=list)


def dispatch_due(*, limit: int | None = None, now: datetime | None = None) -> DispatchResult:
    """Claim due messages and queue send tasks for them (after commit)."""
    from campaigns.guard import guard_enforce
    from campaigns.services import campaign_complete_if_done, campaign_followup_due, campaign_followup_expand
    from campaigns.tasks import send_batch_task

    now = now or timezone.now()
    limit = limit or settings.CAMPAIGN_DISPATCH_LIMIT
    result = DispatchResult()
    result.reclaimed = Message.objects.filter(status=M.CLAIMED, lease_until__lt=now).update(
        status=M.QUEUED, lease_until=None
    )
    result.unknown = Message.objects.filter(status=M.SENDING, lease_until__lt=now).update(
        status=M.UNKNOWN, lease_until=None, last_error="The worker stopped during the provider call; not resent."
    )
    result.started = Campaign.objects.filter(status=CampaignStatus.SCHEDULED, starts_at__lte=now).update(
        status=CampaignStatus.RUNNING
    )
    # The complaint-rate guard pauses organizations over the threshold before anything is claimed.
    guard_enforce(
        organization_ids=Campaign.objects.filter(status=CampaignStatus.RUNNING).values_list(
            "organization_id", flat=True
        ),
        fresh=False,
    )
    lease = now + lease_duration()
    with transaction.atomic():
        due = (
            Message.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status=M.QUEUED,
                scheduled_at__lte=now,
                campaign__status=CampaignStatus.RUNNING,
            )
            .order_by("scheduled_at")
            .values_list("id", "campaign_id")[:limit]
        )
        rows = list(due)
        if rows:
            Message.objects.filter(id__in=[row[0] for row in rows]).update(status=M.CLAIMED, lease_until=lease)
            by_campaign: dict[Any, list[int]] = defaultdict(list)
            for message_id, campaign_id in rows:
                by_campaign[campaign_id].append(message_id)
            size = settings.CAMPAIGN_SEND_BATCH
            for ids in by_campaign.values():
                for start in range(0, len(ids), size):
                    result.batches.append((ids[start : start + size], lease.isoformat()))
            batches = list(result.batches)
            transaction.on_commit(
                lambda: [send_batch_task.delay(message_ids=ids, lease=lease_text) for ids, lease_text in batches]
            )
        result.claimed = len(rows)
    for campaign in Campaign.objects.filter(
        status=CampaignStatus.RUNNING, followup_expanded_at__isnull=True, followup__enabled=True
    ):
        if campaign_followup_due(campaign=campaign, now=now):
            campaign_followup_expand(campaign=campaign)
    pending = Message.objects.filter(campaign=OuterRef("pk"), status__in=PENDING_STATUSES)
    # A sequence's campaign runs for as long as the sequence is active, with or without messages due.
    running = Campaign.objects.filter(
        status=CampaignStatus.RUNNING, planned_at__isnull=False, kind=CampaignKind.BROADCAST
    )
    for campaign in running.filter(~Exists(pending)):
        result.completed += int(campaign_complete_if_done(campaign=campaign))
    if result.claimed or result.reclaimed or result.unknown:
        logger.info(
            "dispatch",
            extra={"claimed": result.claimed, "reclaimed": result.reclaimed, "unknown": result.unknown},
        )
    return result


# --- send --------------------------------------------------------------------------------------------


class TemporaryFailure(Exception):
    """The provider may accept the message later: retry after a delay."""


class PermanentFailure(Exception):
    """The provider refused the message for good: fail it now."""


def classify(exc: Exception) -> Exception:
    """Sort a provider error into temporary (retry) or permanent (fail now)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return PermanentFailure(str(exc)) if codes and all(c >= 500 for c in codes) else TemporaryFailure(str(exc))
    if isinstance(exc, smtplib.SMTPResponseException):
        return PermanentFailure(str(exc)) if exc.smtp_code >= 500 else TemporaryFailure(str(exc))
    if isinstance(exc, AnymailRecipientsRefused):
        return PermanentFailure(str(exc))
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is not None and 400 <= status < 500 and status != 429:
            return PermanentFailure(str(exc))
        return TemporaryFailure(str(exc))
    if isinstance(exc, UnicodeError):
        # Text that cannot be encoded (a lone surrogate) fails the same way on every attempt.
        return PermanentFailure(_encoding_text(exc))
    if isinstance(exc, OSError | smtplib.SMTPException | socket.timeout):
        return TemporaryFailure(str(exc) or exc.__class__.__name__)
    return TemporaryFailure(f"{exc.__class__.__name__}: {exc}")


@dataclass
class SendResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    skipped: int = 0


class _CampaignRenderer:
    """Everything a campaign's messages share: compiled template, organization context, sender."""

    def __init__(self, campaign: Campaign, step: int = 0, variant=None):
        self.campaign = campaign
        # The same version choice and context as view-in-browser: one home in campaigns.selectors.
        base = campaign_selectors.message_render_base(campaign=campaign, step=step, variant=variant)
        if base is None:
            raise rendering.RenderError("template", "The campaign has no template version for this message.")
        self.base = base
        version = self.version = base.version
        self.compiled = rendering.prepare(base.source, organization_id=campaign.organization_id, tracked=True)
        organization = campaign.organization
        self.sender = selectors.sender_address(
            from_name=version.from_name, from_email=version.from_email, organization=organization
        )
        self.reply_to = [version.reply_to] if version.reply_to else []
        # Only the campaign's own sending domains replace the sender's domain; without them the
        # template's From goes out as written (the planned domain is then that From's own).
        self.rewrite = bool(campaign.sending_domains)
        self._senders: dict[str, tuple[str, str]] = {}

    def from_address(self, sending_domain: str) -> tuple[str, str]:
        """The sender, with its domain replaced by the message's sending domain when the campaign has
        sending domains, and the domain it ends up with (the Message-ID's right-hand side)."""
        known = self._senders.get(sending_domain)
        if known is None:
            check_header_value("From", self.sender)  # (parseaddr would read a line break as a new address)
            name, address = parseaddr(self.sender)
            local, _, domain = address.rpartition("@")
            if self.rewrite and sending_domain and sending_domain != domain and local:
                address, domain = f"{local}@{sending_domain}", sending_domain
            known = self._senders[sending_domain] = (_mailbox(name, address), domain or "localhost")
        return known

    def build(self, message: Message) -> tuple[EmailMultiAlternatives, str]:
        context = campaign_selectors.message_render_context(message=message, base=self.base)
        unsubscribe = context["unsubscribe_url"]
        message_id = message.pk
        rendered = self.compiled.render(
            context,
            tracking=LinkTracking(
                click_url=lambda url, index: tokens.click_url(message_id, index, url),
                open_pixel_url=lambda: tokens.open_url(message_id),
            ),
        )
        sender, domain = self.from_address(message.sending_domain)
        provider_id = make_msgid(domain=domain)
        email = campaign_email(
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            sender=sender,
            to=[message.to_address],
            reply_to=self.reply_to,
            headers={
                "Message-ID": provider_id,
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "X-Campaign-Message": str(message.pk),
            },
        )
        return email, provider_id


def _mailbox(name: str, address: str) -> str:
    """`Name <address>`, the name quoted when it holds a character with a meaning in addresses."""
    if not name:
        return address
    local, _, domain = address.rpartition("@")
    return str(Address(display_name=name, username=local, domain=domain))


# What sending reads of a message and its contact (select_related + only: no wide rows, no deferred loads).
SEND_FIELDS = (
    "id",
    "organization_id",
    "campaign_id",
    "step",
    "variant_id",
    "contact_id",
    "to_address",
    "sending_domain",
    "attempts",
    *(
        f"contact__{name}"
        for name in ("public_id", "email", "first_name", "last_name", "phone", "timezone", "locale", "attributes")
    ),
)
GROUP = 10  # messages moved to `sending` together; the most a crash can leave `unknown`


class _Renderers:
    """The compiled renderer of each (campaign, step, variant) in a chunk, made once; a version that does
    not compile fails once per chunk and its error is raised again for the rest of its messages."""

    def __init__(self, make, variants: dict):
        self.make = make
        self.variants = variants
        self.ready: dict[tuple, Any] = {}
        self.broken: dict[tuple, rendering.TemplateProblem] = {}

    def get(self, campaign: Campaign, message: Message):
        key = (message.campaign_id, message.step, message.variant_id)
        if key in self.broken:
            raise self.broken[key]
        renderer = self.ready.get(key)
        if renderer is None:
            try:
                renderer = self.ready[key] = self.make(campaign, message.step, self.variants.get(message.variant_id))
            except rendering.TemplateProblem as exc:
                self.broken[key] = exc
                raise
        return renderer


def send_batch(*, message_ids: list[int], lease: datetime) -> SendResult:
    """Send the claimed messages of one chunk; safe to run twice (the lease decides)."""
    result = SendResult()
    messages = list(
        Message.objects.filter(id__in=message_ids, status=M.CLAIMED, lease_until=lease)
        .select_related("contact")
        .only(*SEND_FIELDS)
        .order_by("id")
    )
    result.skipped = len(message_ids) - len(messages)
    if not messages:
        return result
    # Campaigns and variants (with their template versions) once per chunk, not once per row.
    campaigns = Campaign.objects.select_related(
        "organization", "template_version", "followup_template_version"
    ).in_bulk({m.campaign_id for m in messages})
    variant_ids = {m.variant_id for m in messages if m.variant_id}
    variants = CampaignVariant.objects.select_related("template_version").in_bulk(variant_ids) if variant_ids else {}
    running = {pk for pk, campaign in campaigns.items() if campaign.status == CampaignStatus.RUNNING}
    if any(campaign.channel != Channel.EMAIL for campaign in campaigns.values()):
        # SMS and WhatsApp: the same claims, marking, retries and recording; another render-and-call step.
        phone = [m for m in messages if campaigns[m.campaign_id].channel != Channel.EMAIL]
        _send_phone_messages(phone, campaigns=campaigns, variants=variants, running=running, lease=lease, result=result)
        messages = [m for m in messages if campaigns[m.campaign_id].channel == Channel.EMAIL]
        if not messages:
            return result
    renderers = _Renderers(_CampaignRenderer, variants)

    def prepare(group: list[Message]) -> list[tuple[Message, EmailMultiAlternatives, str]]:
        """Render a group; messages that cannot go out are settled here (released or failed)."""
        ready = []
        for message in group:

            def mine(message=message):
                return Message.objects.filter(pk=message.pk, status=M.CLAIMED, lease_until=lease)

            if message.campaign_id not in running:
                result.released += mine().update(status=M.QUEUED, lease_until=None)  # paused: back in line
                continue
            campaign = campaigns[message.campaign_id]
            try:
                email, provider_id = renderers.get(campaign, message).build(message)
            except (rendering.TemplateProblem, UnicodeError, HeaderInjection) as exc:
                # Bad data for this one message (an undefined variable, text that cannot be encoded, a
                # line break in a header) fails the same way every time: fail it now, never retry it.
                error = _bad_data_text(exc)
                mine().update(status=M.FAILED, lease_until=None, last_error=error)
                result.failed += 1
                continue
            ready.append((message, email, provider_id))
        return ready

    def settle(outcomes: list[Outcome]) -> list[Sent]:
        """Count a sent group's outcomes; failures are recorded now, the sent ones returned for recording."""
        sent = []
        for message, email, provider_id, error, at in outcomes:
            if error is not None:
                outcome = classify(error)
                _record_failure(message, outcome)
                retry = isinstance(outcome, TemporaryFailure) and message.attempts < len(RETRY_DELAYS)
                result.retried += retry
                result.failed += not retry
                continue
            anymail_id = getattr(getattr(email, "anymail_status", None), "message_id", None)
            sent.append((message.pk, anymail_id or provider_id.strip("<>"), at, message.contact_id))
            result.sent += 1
        return sent

    # One statement records a group's `sent` and commits the next group's `sending`, before that
    # group's provider calls start. The calls run here, one after another: more throughput comes
    # from more worker processes, not from threads (measured: docs/BENCHMARKS.md, send section).
    mailer = get_connection()
    done: list[Sent] = []  # sent by the provider, recorded with the next group's marking (or at the end)
    try:
        mailer.open()
        for start in range(0, len(messages), GROUP):
            ready = prepare(messages[start : start + GROUP])
            if not ready:
                continue
            # Commit `sending` before the provider calls: if this process dies during them, the
            # messages become `unknown` rather than being sent again. The lease is fresh: time
            # the chunk spent waiting in the queue must not count against the calls.
            marked = _mark_sending([message for message, _, _ in ready], lease, record=done)
            done = []
            if len(marked) < len(ready):
                # Not ours any more (skipped), or the campaign stopped running: those go back in line.
                unmarked = [message.pk for message, _, _ in ready if message.pk not in marked]
                released = Message.objects.filter(pk__in=unmarked, status=M.CLAIMED, lease_until=lease).update(
                    status=M.QUEUED, lease_until=None
                )
                result.released += released
                result.skipped += len(unmarked) - released
            group = [item for item in ready if item[0].pk in marked]
            if group:
                done = settle(_provider_calls(mailer, group))
    finally:
        # Also on the way out of an error (a failed marking included): what went out is recorded.
        try:
            _record_sent(done)
        finally:
            mailer.close()
    return result


Sent = tuple[int, str, datetime, int]  # message id, provider message id, sent at, contact id
Outcome = tuple[Message, EmailMultiAlternatives, str, Exception | None, datetime]  # ..., the error if any, when


def _provider_calls(mailer, group: list[tuple[Message, EmailMultiAlternatives, str]]):
    """Send a group through one connection; every provider error is kept with its message, none is lost."""
    for _, email, _ in group:
        email.connection = mailer
    send_each = getattr(mailer, "send_each", None)
    if send_each is not None:
        # The SMTP backend sends the whole group in one call, pipelined across its messages, with
        # one outcome per message (campaigns.mail.SMTPEmailBackend.send_each).
        errors = send_each([email for _, email, _ in group])
        at = timezone.now()
        if mailer.connection is None:  # the server went away: the next group starts on a new connection
            _reopen(mailer)
        return [(*item, error, at) for item, error in zip(group, errors, strict=True)]
    outcomes = []
    for message, email, provider_id in group:
        try:
            mailer.send_messages([email])
        except Exception as exc:  # sorted by classify() when settled
            outcomes.append((message, email, provider_id, exc, timezone.now()))
            _reopen(mailer)
            continue
        outcomes.append((message, email, provider_id, None, timezone.now()))
    return outcomes


# --- SMS and WhatsApp -----------------------------------------------------------------------------------


class PhoneMessageProblem(ValueError):
    """An SMS or WhatsApp message that cannot go out as it is (no phone number, an empty text)."""


class _PhoneRenderer:
    """What the messages of an SMS or WhatsApp campaign (step, variant) share: the compiled template
    version, and for WhatsApp the approved template's name and language.

    WhatsApp messages go out only as approved templates: a WhatsApp template without
    `whatsapp_template_name` is refused on save and again at launch or activation (its snapshot), so
    there is no free-form WhatsApp text, and Meta's 24-hour customer-service window (which only limits
    free-form messages) never applies to campaigns or sequences."""

    def __init__(self, campaign: Campaign, step: int = 0, variant=None):
        base = campaign_selectors.message_render_base(campaign=campaign, step=step, variant=variant)
        if base is None:
            raise rendering.RenderError("template", "The campaign has no template version for this message.")
        source = base.source
        # A callback link is signed only for templates that can show it; these read other fields than email.
        if not base.uses_callback and "callback_url" in source.sms_body + json.dumps(source.whatsapp_parameters):
            base = dataclasses.replace(base, uses_callback=True)
        self.base = base
        self.channel = campaign.channel
        self.compiled = rendering.prepare(source, organization_id=campaign.organization_id)
        self.template_name = base.version.whatsapp_template_name
        self.language = base.version.whatsapp_language

    def build(self, message: Message) -> channels.OutgoingMessage:
        if not message.to_address:
            raise PhoneMessageProblem("The contact has no phone number.")
        rendered = self.compiled.render(campaign_selectors.message_render_context(message=message, base=self.base))
        if self.channel == Channel.SMS:
            if not rendered.text.strip():
                raise PhoneMessageProblem("The SMS text is empty for this contact.")
            return channels.OutgoingMessage(message_id=message.pk, to=message.to_address, body=rendered.text)
        return channels.OutgoingMessage(
            message_id=message.pk,
            to=message.to_address,
            template=self.template_name,
            language=self.language,
            parameters=rendered.whatsapp_parameters,
        )


def _send_phone_messages(
    messages: list[Message], *, campaigns: dict, variants: dict, running: set, lease: datetime, result: SendResult
) -> None:
    """Send a chunk's SMS and WhatsApp messages through their channel backends, one backend session per
    channel for the chunk, with email's exactly-once steps: render a group, mark it `sending` (committed),
    call the provider, record the group's `sent` with the next group's marking, retry or fail the rest."""
    renderers = _Renderers(_PhoneRenderer, variants)

    def prepare(group: list[Message], backend) -> list[tuple[Message, channels.OutgoingMessage]]:
        ready = []
        for message in group:

            def mine(message=message):
                return Message.objects.filter(pk=message.pk, status=M.CLAIMED, lease_until=lease)

            if message.campaign_id not in running:
                result.released += mine().update(status=M.QUEUED, lease_until=None)  # paused: back in line
                continue
            campaign = campaigns[message.campaign_id]
            if backend is None:
                # Launch refuses a channel without a backend; this one lost its configuration since.
                reason = channels.unavailable_reason(campaign.channel) or "The channel has no backend."
                result.failed += mine().update(status=M.FAILED, lease_until=None, last_error=reason)
                continue
            try:
                outgoing = renderers.get(campaign, message).build(message)
            except (rendering.TemplateProblem, UnicodeError, PhoneMessageProblem) as exc:
                result.failed += mine().update(status=M.FAILED, lease_until=None, last_error=_bad_data_text(exc))
                continue
            ready.append((message, outgoing))
        return ready

    def settle(group: list[tuple[Message, channels.OutgoingMessage]], outcomes) -> list[Sent]:
        sent = []
        at = timezone.now()
        for (message, _), outcome in zip(group, outcomes, strict=True):
            if outcome.ok:
                sent.append((message.pk, outcome.provider_id, at, message.contact_id))
                result.sent += 1
                continue
            failure = TemporaryFailure(outcome.error) if outcome.temporary else PermanentFailure(outcome.error)
            _record_failure(message, failure)
            retry = outcome.temporary and message.attempts < len(RETRY_DELAYS)
            result.retried += retry
            result.failed += not retry
        return sent

    by_channel: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_channel[campaigns[message.campaign_id].channel].append(message)
    done: list[Sent] = []
    try:
        for channel, channel_messages in by_channel.items():
            backend = channels.backend_for(channel)
            if backend is not None:
                backend.open()
            try:
                for start in range(0, len(channel_messages), GROUP):
                    ready = prepare(channel_messages[start : start + GROUP], backend)
                    if not ready:
                        continue
                    marked = _mark_sending([message for message, _ in ready], lease, record=done)
                    done = []
                    if len(marked) < len(ready):
                        unmarked = [message.pk for message, _ in ready if message.pk not in marked]
                        released = Message.objects.filter(pk__in=unmarked, status=M.CLAIMED, lease_until=lease).update(
                            status=M.QUEUED, lease_until=None
                        )
                        result.released += released
                        result.skipped += len(unmarked) - released
                    group = [item for item in ready if item[0].pk in marked]
                    if group:
                        done = settle(group, backend.send_batch([outgoing for _, outgoing in group]))
            finally:
                if backend is not None:
                    backend.close()
    finally:
        _record_sent(done)


def _sent_values(sent: list[Sent]) -> tuple[str, list]:
    values = ", ".join(["(%s::bigint, %s::varchar, %s::timestamptz)"] * len(sent))
    return values, [item for row in sent for item in row[:3]]


def _mark_sending(messages: list[Message], lease: datetime, *, record: list[Sent] = ()) -> set[int]:
    """claimed -> sending for a group, only while this task's lease holds; committed at once.
    The previous group's `sent` (`record`) goes in the same statement on PostgreSQL.
    Returns the ids that moved."""
    placeholders = ", ".join(["%s"] * len(messages))
    # A campaign paused (or cancelled) while the chunk is under way stops at the next group.
    mark = (
        f"UPDATE campaigns_message SET status = %s, attempts = attempts + 1, lease_until = %s "
        f"WHERE id IN ({placeholders}) AND status = %s AND lease_until = %s AND EXISTS ("
        "SELECT 1 FROM campaigns_campaign c WHERE c.id = campaigns_message.campaign_id AND c.status = %s"
        ") RETURNING id"
    )
    mark_params = [
        M.SENDING,
        _db_time(timezone.now() + lease_duration()),
        *[message.pk for message in messages],
        M.CLAIMED,
        _db_time(lease),
        CampaignStatus.RUNNING,
    ]
    if record and db_connection.vendor != "postgresql":
        _record_sent(record)
        record = ()
    with db_connection.cursor() as cursor:
        if record:
            values, params = _sent_values(record)
            cursor.execute(
                f"WITH sent AS ({_RECORD_SENT.format(values=values)}), "
                "contacted AS (" + contacts_mark_contacted_sql(contact_ids_query="SELECT contact_id FROM sent") + "), "
                f"marked AS ({mark}) SELECT id FROM marked",
                [M.SENT, *params, M.SENDING, timezone.now(), *mark_params],
            )
        else:
            cursor.execute(mark, mark_params)
        return {row[0] for row in cursor.fetchall()}


_RECORD_SENT = (
    "UPDATE campaigns_message m SET status = %s, provider_message_id = v.p, sent_at = v.t, "
    "lease_until = NULL, last_error = '' FROM (VALUES {values}) AS v(id, p, t) "
    "WHERE m.id = v.id AND m.status = %s RETURNING m.contact_id"
)


def _record_sent(sent: list[Sent]) -> None:
    """Record a group of sent messages in one statement, and their contacts' last contact time.

    If the worker dies before a group is recorded, its messages stay `sending` and become
    `unknown` (never sent again): the same outcome as dying during a provider call.
    """
    if not sent:
        return
    if db_connection.vendor == "postgresql":
        values, params = _sent_values(sent)
        with transaction.atomic(), db_connection.cursor() as cursor:
            # `sent` may be lost in a database crash without harm: the message would become `unknown`.
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute(
                f"WITH sent AS ({_RECORD_SENT.format(values=values)}) "
                + contacts_mark_contacted_sql(contact_ids_query="SELECT contact_id FROM sent"),
                [M.SENT, *params, M.SENDING, timezone.now()],
            )
        return
    with transaction.atomic(), db_connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE campaigns_message SET status = %s, provider_message_id = %s, sent_at = %s, "
            "lease_until = NULL, last_error = '' WHERE id = %s AND status = %s",
            [(M.SENT, provider_id, _db_time(at), pk, M.SENDING) for pk, provider_id, at, _ in sent],
        )
        contacts_mark_contacted(contact_ids=[row[3] for row in sent], at=timezone.now())


def _db_time(value: datetime):
    if db_connection.vendor == "sqlite":
        return db_connection.ops.adapt_datetimefield_value(value)
    return value


def _bad_data_text(exc: Exception) -> str:
    if isinstance(exc, rendering.TemplateProblem):
        return _problem_text(exc)
    if isinstance(exc, UnicodeError):
        return _encoding_text(exc)
    return str(exc)[:2000]


def _problem_text(exc: Exception) -> str:
    messages = getattr(exc, "message_dict", None)
    if messages:
        return "; ".join(f"{key}: {' '.join(values)}" for key, values in messages.items())[:2000]
    return str(exc)[:2000]


def _encoding_text(exc: UnicodeError) -> str:
    return f"The message has text that cannot be sent (bad Unicode, e.g. a lone surrogate): {exc}"[:2000]


def _record_failure(message: Message, outcome: Exception) -> None:
    attempts = message.attempts + 1
    error = str(outcome)[:2000]
    if isinstance(outcome, TemporaryFailure) and attempts <= len(RETRY_DELAYS):
        Message.objects.filter(pk=message.pk, status=M.SENDING).update(
            status=M.QUEUED,
            scheduled_at=timezone.now() + RETRY_DELAYS[attempts - 1],
            lease_until=None,
            last_error=error,
        )
    else:
        Message.objects.filter(pk=message.pk, status=M.SENDING).update(
            status=M.FAILED, lease_until=None, last_error=error
        )


def _reopen(connection) -> None:
    """After an error the SMTP session may be unusable; start a fresh one for the next message."""
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail too
        logger.debug("closing a failed email connection raised", exc_info=True)
    try:
        connection.open()
    except Exception:  # the next send will raise and be classified
        logger.warning("could not reopen the email connection", exc_info=True)
