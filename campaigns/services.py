"""Campaign writes: configuration, the state machine, expansion and planning.

Launch validates the campaign, snapshots its template version and queues the
expansion after commit. Expansion writes one Message per recipient with
INSERT ... SELECT from the audience resolver, chunk by chunk of contact ids, and is
idempotent (ON CONFLICT DO NOTHING on campaign/step/contact). Planning streams the
messages through `campaigns.planner` and writes `scheduled_at` and the sending
domain in batches, moving them from planned to queued.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from campaigns import selectors
from campaigns.models import (
    PENDING_STATUSES,
    Campaign,
    CampaignStatus,
    Channel,
    Message,
    MessageStatus,
    SendingDomain,
    SendingDomainStatus,
    VerificationMethod,
)
from campaigns.recurrence import recurrence_problems, series_launch, series_resume
from campaigns.state import IllegalTransition, transition
from config.errors import ConflictError, DomainError
from config.validation import check_date
from contacts.audience import EXCLUSION_ORDER, Audience, AudienceSpec, audience_resolve
from contacts.models import Contact

if TYPE_CHECKING:
    from campaigns import planner

logger = logging.getLogger(__name__)

EXPAND_CHUNK_IDS = 250_000
PLAN_BATCH = 5_000
S = CampaignStatus


# --- configuration -------------------------------------------------------------------------------


def organization_sending_domain(organization: Organization) -> str:
    address = organization.default_from_email
    if not address:
        from django.conf import settings

        address = settings.DEFAULT_FROM_EMAIL
    return address.rpartition("@")[2].strip(" >").lower() or "localhost"


def plan_settings(campaign: Campaign, *, now: datetime | None = None) -> planner.PlanSettings:
    """The planner's settings from the campaign's schedule, throttle and domains; raises ValidationError.

    Without sending domains a message goes out from its template's own From (see
    `selectors.campaign_sender`); that address's domain is the one planned and throttled."""
    from campaigns import planner

    organization = campaign.organization
    domains = campaign.sending_domains or [selectors.address_domain(selectors.campaign_sender(campaign).address)]
    try:
        return planner.PlanSettings.from_api(
            schedule=campaign.schedule or None,
            throttle=campaign.throttle or None,
            sending_domains=domains,
            default_timezone=organization.timezone,
            now=now or timezone.now(),
        )
    except planner.PlanSettingsError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None


def _check_schedule_dates(schedule: Any) -> None:
    """Dates outside DATE_MIN_YEAR..DATE_MAX_YEAR are refused before the planner does arithmetic on them.
    Values that are not dates at all are left to the planner, which names the problem."""
    from datetime import date

    if not isinstance(schedule, dict):
        return
    errors: dict[str, list[str]] = {}
    start_at = schedule.get("start_at")
    if isinstance(start_at, str):
        try:
            check_date(datetime.fromisoformat(start_at))
        except ValueError:
            pass
        except ValidationError as exc:
            errors["schedule.start_at"] = [f"{start_at!r}: {exc.messages[0]}"]
    holidays = schedule.get("holidays")
    if isinstance(holidays, list):
        for position, item in enumerate(holidays):
            if not isinstance(item, str):
                continue
            try:
                check_date(date.fromisoformat(item))
            except ValueError:
                continue
            except ValidationError as exc:
                errors["schedule.holidays"] = [f"item {position}: {item!r}: {exc.messages[0]}"]
                break
    if errors:
        raise ValidationError(errors)


def campaign_validate(*, campaign: Campaign, for_launch: bool = False) -> None:
    """Check the configuration; raises ValidationError naming the field."""
    errors: dict[str, list[str]] = {}
    try:
        spec = AudienceSpec.from_dict(campaign.audience)
        if for_launch and spec.is_empty:
            errors["audience"] = ["Choose at least one list, tag or segment."]
        audience_resolve(organization_id=campaign.organization_id, spec=spec, channel=campaign.channel)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        _check_schedule_dates(campaign.schedule)
        plan_settings(campaign)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if campaign.template_id and campaign.template.channel != campaign.channel:
        errors["template"] = [f"This is a {campaign.template.channel} template; the campaign sends {campaign.channel}."]
    if for_launch and not campaign.template_id and not campaign.variants.exists():
        errors["template"] = ["Choose a template (or variants) before launching."]
    errors.update(_followup_problems(campaign))
    errors.update(recurrence_problems(campaign))
    errors.update(_ab_test_problems(campaign, for_launch=for_launch))
    for index, domain in enumerate(campaign.sending_domains or []):
        try:
            selectors.domain_normalize(domain)
        except ValueError as exc:
            errors[f"sending_domains[{index}]"] = [str(exc)]
    if errors:
        raise ValidationError(errors)


def _ab_test_problems(campaign: Campaign, *, for_launch: bool) -> dict[str, list[str]]:
    """The A/B settings' shape on every save (stored completed); the variant count where it is known
    (on launch, and on saves of a campaign whose variants exist already)."""
    from campaigns import abtest

    if not campaign.ab_test:
        return {}
    variants = campaign.variants.count() if campaign.pk and not campaign._state.adding else 0
    try:
        campaign.ab_test = abtest.ab_test_clean(campaign.ab_test, variants=variants if for_launch else 2)
    except ValidationError as exc:
        return exc.message_dict
    if for_launch and campaign.recurrence:
        return {"ab_test": ["A recurring campaign cannot run an A/B test with a winner; send it once."]}
    return {}


def _verification_help(domain: str, pending: SendingDomain | None) -> str:
    if pending is None:
        return (
            f'Add it with POST /api/v1/sending-domains/ {{"domain": "{domain}"}}, publish the DNS TXT record '
            f"it gives at {domain} or {SendingDomain.TXT_LABEL}.{domain}, "
            "then POST /api/v1/sending-domains/{id}/verify."
        )
    return (
        f'Publish the DNS TXT record "{pending.txt_value}" at {domain} or {SendingDomain.TXT_LABEL}.{domain}, '
        f"then POST /api/v1/sending-domains/{pending.pk}/verify."
    )


def _unverified_problems(organization_id, found: list[selectors.FromDomain]) -> dict[str, list[str]]:
    """Errors for the From domains that are not verified for the organization, keyed by the field to fix."""
    if not found:
        return {}
    known = {
        row.domain: row
        for row in SendingDomain.objects.filter(organization_id=organization_id, domain__in=[f.domain for f in found])
    }
    errors: dict[str, list[str]] = {}
    for item in found:
        row = known.get(item.domain)
        if row is not None and row.status == SendingDomainStatus.VERIFIED:
            continue
        state = "is not verified yet" if row is not None else "is not one of this organization's sending domains"
        errors.setdefault(item.field, []).append(
            f"{item.domain} ({item.source}) {state}. {_verification_help(item.domain, row)}"
        )
    return errors


def _sending_domain_problems(campaign: Campaign) -> dict[str, list[str]]:
    """The campaign's sending_domains must be verified domains of its organization."""
    found = []
    for domain in campaign.sending_domains or []:
        try:
            found.append(selectors.FromDomain(selectors.domain_normalize(domain), "sending_domains", "sending_domains"))
        except ValueError:
            continue  # campaign_validate names it
    return _unverified_problems(campaign.organization_id, found)


def campaign_check_senders(*, campaign: Campaign) -> None:
    """Every From domain the campaign would send from must be verified; raises ValidationError naming
    each one and how to verify it. The system DEFAULT_FROM_EMAIL (used when neither a template nor the
    organization names a sender) is the operator's own address and needs no verification."""
    if campaign.channel != Channel.EMAIL:
        return  # SMS and WhatsApp carry no From address
    errors = _unverified_problems(campaign.organization_id, selectors.campaign_from_domains(campaign))
    if errors:
        raise ValidationError(errors)


FOLLOWUP_CRITERIA = ("not_opened", "not_clicked")


def _followup_problems(campaign: Campaign) -> dict[str, list[str]]:
    from templates_app.models import MessageTemplate

    followup = campaign.followup or {}
    if not isinstance(followup, dict):
        return {"followup": ["Must be an object."]}
    if not followup.get("enabled"):
        return {}
    problems: dict[str, list[str]] = {}
    days = followup.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 90:
        problems["followup.days"] = ["Must be a whole number of days from 1 to 90."]
    if followup.get("criterion", "not_opened") not in FOLLOWUP_CRITERIA:
        problems["followup.criterion"] = [f"Must be one of: {', '.join(FOLLOWUP_CRITERIA)}."]
    template = MessageTemplate.objects.filter(
        organization_id=campaign.organization_id, pk=_uuid_or_none(followup.get("template"))
    ).first()
    if template is None:
        problems["followup.template"] = ["Unknown template."]
    elif template.channel != campaign.channel:
        problems["followup.template"] = [
            f"This is a {template.channel} template; the campaign sends {campaign.channel}."
        ]
    return problems


def _uuid_or_none(value):
    import uuid

    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def campaign_check(*, campaign: Campaign) -> None:
    """What saving a draft requires: a valid configuration, and sending domains the organization verified."""
    campaign_validate(campaign=campaign)
    problems = _sending_domain_problems(campaign)
    if problems:
        raise ValidationError(problems)


# What a campaign says and to whom: fixed once it leaves draft.
CONTENT_FIELDS = (
    "organization_id",
    "name",
    "kind",
    "channel",
    "template_id",
    "audience",
    "schedule",
    "throttle",
    "sending_domains",
    "followup",
    "ab_test",
    "variables",
    "recurrence",
)
# Cost accounting, not content: changed in any status (the ROI follows it).
ALWAYS_EDITABLE = frozenset({"budget"})


def campaign_check_editable(*, campaign: Campaign, fields: Iterable[str]) -> None:
    """Refuse (409) a change of `fields` unless the campaign is a draft or they are all ALWAYS_EDITABLE."""
    if campaign.status != S.DRAFT and set(fields) - ALWAYS_EDITABLE:
        raise ConflictError("Only a draft campaign can be edited; its budget can be changed at any time.")


def campaign_save(*, campaign: Campaign, by: User | None = None) -> Campaign:
    """Create or change a campaign; only drafts can be changed, except their budget (any status)."""
    stored = Campaign.objects.filter(pk=campaign.pk).exclude(status=S.DRAFT).first() if campaign.pk else None
    if stored is not None:
        changed = [name for name in (*CONTENT_FIELDS, "budget") if getattr(stored, name) != getattr(campaign, name)]
        campaign_check_editable(campaign=stored, fields=changed)
        if changed:
            campaign_budget_set(campaign=campaign, budget=campaign.budget, by=by)
        return campaign
    campaign_check(campaign=campaign)
    campaign.sending_domains = [selectors.domain_normalize(domain) for domain in campaign.sending_domains or []]
    campaign.save()
    return campaign


def campaign_budget_set(*, campaign: Campaign, budget, by: User | None = None) -> Campaign:
    """Set what the campaign cost, in any status; only the budget is written. Raises ValidationError on
    `budget` (negative, or more digits than it holds)."""
    field = Campaign._meta.get_field("budget")
    try:
        budget = field.clean(budget, campaign)
    except ValidationError as exc:
        raise ValidationError({"budget": exc.messages}) from None
    with transaction.atomic():
        before = Campaign.objects.select_for_update().values_list("budget", flat=True).get(pk=campaign.pk)
        campaign.budget, campaign.updated_at = budget, timezone.now()
        Campaign.objects.filter(pk=campaign.pk).update(budget=budget, updated_at=campaign.updated_at)
        if before != budget:
            audit_record(
                organization=campaign.organization_id,
                by=by,
                action="campaign.budget_changed",
                obj=campaign,
                changes={"before": {"budget": _money(before)}, "after": {"budget": _money(budget)}},
            )
    return campaign


def _money(value) -> str | None:
    return None if value is None else f"{value:.2f}"


def campaign_delete(*, campaign: Campaign) -> None:
    if campaign.status != S.DRAFT:
        raise ConflictError("Only a draft campaign can be deleted.")
    campaign.delete()


def _test_context(campaign: Campaign) -> dict[str, Any]:
    return {**(campaign.variables or {}), "campaign": {"id": str(campaign.pk), "name": campaign.name}}


def _test_send_recipients(emails: list[str]) -> list[str]:
    """The distinct addresses of a test send, at most TEST_SEND_MAX_RECIPIENTS; raises ValidationError on `emails`."""
    limit = django_settings.TEST_SEND_MAX_RECIPIENTS
    recipients = list({address.strip().lower(): address.strip() for address in emails if address.strip()}.values())
    if not recipients:
        raise ValidationError({"emails": ["Give at least one address."]})
    if len(recipients) > limit:
        raise ValidationError({"emails": [f"Send a test to at most {limit} addresses (got {len(recipients)})."]})
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"emails": [f"{address!r} is not a valid email address."]}) from None
    return recipients


def _test_sender(campaign: Campaign) -> str:
    """The From of a test send; raises ValidationError when its domain is not verified (as a launch would)."""
    header, domain = selectors.campaign_test_sender(campaign)
    problems = _unverified_problems(campaign.organization_id, [domain] if domain else [])
    if problems:
        raise ValidationError(problems)
    return header


def campaign_test_send_queue(*, campaign: Campaign, emails: list[str]) -> list[str]:
    """Check the addresses, the sender and that the campaign's template renders, then send the test
    from a worker after commit. Returns the recipients."""
    from campaigns.tasks import campaign_test_send_task
    from templates_app import selectors as template_selectors

    recipients = _test_send_recipients(emails)
    if not campaign.template_id:
        raise ValidationError({"template": ["Choose a template before sending a test."]})
    if campaign.template.channel != Channel.EMAIL:
        raise ValidationError({"template": ["Only an email campaign can be sent as a test by email."]})
    _test_sender(campaign)
    template_selectors.template_preview(template=campaign.template, context=_test_context(campaign))
    campaign_id = str(campaign.pk)
    transaction.on_commit(lambda: campaign_test_send_task.delay(campaign_id=campaign_id, emails=recipients))
    return recipients


def campaign_test_send(*, campaign: Campaign, emails: list[str]) -> None:
    """Send a test of the campaign's message (its template with a sample contact, from the sender its
    messages carry), one email per address so recipients never see each other; nothing is counted."""
    from django.core.mail import EmailMultiAlternatives, get_connection

    from templates_app import selectors as template_selectors

    recipients = _test_send_recipients(emails)
    sender = _test_sender(campaign)
    rendered = template_selectors.template_preview(template=campaign.template, context=_test_context(campaign))
    reply_to = [campaign.template.reply_to] if campaign.template.reply_to else None
    messages = []
    for address in recipients:
        message = EmailMultiAlternatives(
            subject=f"[Test] {rendered.subject}", body=rendered.text, from_email=sender, to=[address], reply_to=reply_to
        )
        if rendered.html:
            message.attach_alternative(rendered.html, "text/html")
        messages.append(message)
    with get_connection() as connection:
        connection.send_messages(messages)


# --- the state machine --------------------------------------------------------------------------------


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update().select_related("organization").get(pk=campaign.pk)


def campaign_launch(*, campaign: Campaign, by: User | None = None) -> Campaign:
    """Validate, keep the template version, and start expanding (after commit); `by` is recorded in the
    audit trail as who launched it."""
    from campaigns.tasks import campaign_prepare_task
    from templates_app.services import template_snapshot

    with transaction.atomic():
        campaign = _locked(campaign)
        if campaign.status != S.DRAFT:
            raise IllegalTransition(campaign.status, S.RUNNING)
        campaign_validate(campaign=campaign, for_launch=True)
        campaign_check_senders(campaign=campaign)
        channel_check_backend(channel=campaign.channel)
        if campaign.recurrence:
            # A series is not expanded itself: each occurrence launches a run (campaigns.recurrence).
            return series_launch(campaign=campaign, by=by)
        start_at = plan_settings(campaign).start_at
        transition(campaign, to=S.SCHEDULED if start_at > timezone.now() else S.RUNNING)
        campaign.starts_at = start_at
        if campaign.template_id:
            campaign.template_version = template_snapshot(template=campaign.template)
        if (campaign.followup or {}).get("enabled"):
            from templates_app.models import MessageTemplate

            followup_template = MessageTemplate.objects.get(pk=campaign.followup["template"])
            campaign.followup_template_version = template_snapshot(template=followup_template)
        for variant in campaign.variants.select_related("template"):
            variant.template_version = template_snapshot(template=variant.template)
            variant.save(update_fields=["template_version"])
        campaign.launched_at = timezone.now()
        campaign.status_reason = ""
        campaign.save()
        _audit_status(campaign, by=by, action="campaign.launched", before=S.DRAFT, starts_at=campaign.starts_at)
        campaign_id = str(campaign.pk)
        transaction.on_commit(lambda: campaign_prepare_task.delay(campaign_id=campaign_id))
    logger.info("campaign launched", extra={"campaign_id": campaign_id, "status": campaign.status})
    return campaign


def channel_check_backend(*, channel: str) -> None:
    """Refuse (409, with the reason) to start sending on a channel that has no configured backend."""
    from campaigns.channels import unavailable_reason

    reason = unavailable_reason(channel)
    if reason:
        raise ConflictError(reason)


def _audit_status(campaign: Campaign, *, by: User | None, action: str, before: str, **after: Any) -> None:
    audit_record(
        organization=campaign.organization_id,
        by=by,
        action=action,
        obj=campaign,
        changes={"before": {"status": before}, "after": {"status": campaign.status, **after}},
    )


def campaign_pause(*, campaign: Campaign, by: User | None = None, reason: str = "") -> Campaign:
    """Stop dispatch at once; queued messages stay queued. `by` is None when the system pauses it."""
    with transaction.atomic():
        campaign = _locked(campaign)
        before = campaign.status
        transition(campaign, to=S.PAUSED)
        campaign.status_reason = reason[:300]
        campaign.save(update_fields=["status", "status_reason", "updated_at"])
        _audit_status(campaign, by=by, action="campaign.paused", before=before, reason=campaign.status_reason)
    return campaign


def campaign_resume(*, campaign: Campaign, by: User | None = None) -> Campaign:
    """Go on where the campaign stopped."""
    with transaction.atomic():
        campaign = _locked(campaign)
        if campaign.status != S.PAUSED:
            raise ConflictError(f"Only a paused campaign can be resumed; this one is {campaign.status}.")
        if campaign.recurrence:
            series_resume(campaign=campaign)  # next_run_at from now, or completed when none is left
        else:
            starts_at = campaign.starts_at or timezone.now()
            transition(campaign, to=S.SCHEDULED if starts_at > timezone.now() else S.RUNNING)
        campaign.status_reason = ""
        campaign.save(update_fields=["status", "status_reason", "next_run_at", "completed_at", "updated_at"])
        _audit_status(campaign, by=by, action="campaign.resumed", before=S.PAUSED)
    return campaign


def campaign_cancel(*, campaign: Campaign, by: User | None = None) -> Campaign:
    """Cancel: every message not yet handed to a provider is marked cancelled."""
    with transaction.atomic():
        campaign = _locked(campaign)
        before = campaign.status
        transition(campaign, to=S.CANCELLED)
        campaign.completed_at = timezone.now()
        campaign.next_run_at = None  # a series makes no further runs; its runs under way go on
        campaign.save(update_fields=["status", "completed_at", "next_run_at", "updated_at"])
        cancelled = Message.objects.filter(
            campaign=campaign,
            status__in=[MessageStatus.PLANNED, MessageStatus.HELD, MessageStatus.QUEUED, MessageStatus.CLAIMED],
        ).update(status=MessageStatus.CANCELLED, lease_until=None)
        _audit_status(campaign, by=by, action="campaign.cancelled", before=before, messages_cancelled=cancelled)
    return campaign


def campaign_complete_if_done(*, campaign: Campaign) -> bool:
    """Mark a running campaign completed when nothing is left to send or retry."""
    with transaction.atomic():
        campaign = _locked(campaign)
        if campaign.status != S.RUNNING or not campaign.planned_at:
            return False
        if Message.objects.filter(campaign=campaign, status__in=PENDING_STATUSES).exists():
            return False
        if (campaign.followup or {}).get("enabled") and not campaign.followup_expanded_at:
            return False  # the follow-up is still to come
        transition(campaign, to=S.COMPLETED)
        campaign.completed_at = timezone.now()
        campaign.status_reason = ""
        campaign.save(update_fields=["status", "status_reason", "completed_at", "updated_at"])
    return True


def message_resend(*, message: Message, by: User | None = None) -> Message:
    """Send a failed or unknown message again (an explicit operator decision: an unknown message may
    have reached its recipient once already).

    The message is queued for now. A completed campaign is reopened (completed -> running) so that
    dispatch, which serves running campaigns only, sends it; the campaign completes again once nothing
    is pending. A paused or scheduled campaign sends it when it runs; a cancelled campaign refuses (409).
    """
    with transaction.atomic():
        # The campaign first, as completion and cancel lock it: neither can slip in between.
        campaign = Campaign.objects.select_for_update().get(pk=message.campaign_id)
        message = Message.objects.select_for_update().get(pk=message.pk)
        if campaign.status == S.CANCELLED:
            raise ConflictError("The campaign was cancelled: its messages are not sent any more.")
        if message.status not in (MessageStatus.FAILED, MessageStatus.UNKNOWN):
            raise ConflictError("Only a failed or unknown message can be resent.")
        campaign_status = campaign.status
        if campaign.status == S.COMPLETED:
            transition(campaign, to=S.RUNNING)
            campaign.completed_at = None
            campaign.status_reason = "Reopened to send a resent message."
            campaign.save(update_fields=["status", "status_reason", "completed_at", "updated_at"])
        before = {"status": message.status, "attempts": message.attempts, "campaign_status": campaign_status}
        message.status = MessageStatus.QUEUED
        message.scheduled_at = timezone.now()
        message.lease_until = None
        message.attempts = 0
        message.save(update_fields=["status", "scheduled_at", "lease_until", "attempts"])
        audit_record(
            organization=campaign.organization_id,
            by=by,
            action="message.resent",
            obj=message,
            # Not str(message): the trail keeps no recipient address.
            object_repr=f"message {message.pk} of {campaign.name}",
            changes={
                "before": before,
                "after": {"status": message.status, "attempts": 0, "campaign_status": campaign.status},
                "campaign": str(campaign.pk),
            },
        )
    logger.info(
        "message resent", extra={"message_id": message.pk, "campaign_id": str(campaign.pk), "status": campaign.status}
    )
    return message


# --- message status from tracking -----------------------------------------------------------------

STATUS_CHUNK = 5000  # ids per UPDATE


def messages_advance_status(*, message_ids: Iterable[int], to: int, from_statuses: Iterable[int]) -> int:
    """Move the messages to status `to` where their status is one of `from_statuses`, one UPDATE per
    5,000 ids; returns how many moved. The caller owns which statuses may move (tracking's
    forward-only rule, `tracking.rules.movable_from`); the conditional UPDATE makes it race-free."""
    movable = sorted(set(from_statuses))
    ids = sorted(set(message_ids))
    changed = 0
    for start in range(0, len(ids), STATUS_CHUNK):
        changed += Message.objects.filter(id__in=ids[start : start + STATUS_CHUNK], status__in=movable).update(
            status=to
        )
    return changed


def messages_skip_pending(*, contact_ids: Iterable[int], reason: str, channel: str | None = None) -> int:
    """Skip the contacts' messages not yet claimed for sending (planned, held, queued): nothing is sent to
    someone who left, bounced or complained. With `channel`, only that channel's messages (a STOP by SMS
    leaves email alone). Returns how many were skipped."""
    contact_ids = list(contact_ids)
    if not contact_ids:
        return 0
    pending = Message.objects.filter(
        contact_id__in=contact_ids, status__in=[MessageStatus.PLANNED, MessageStatus.HELD, MessageStatus.QUEUED]
    )
    if channel is not None:
        pending = pending.filter(campaign__channel=channel)
    return pending.update(status=MessageStatus.SKIPPED, lease_until=None, last_error=reason)


# --- expansion ---------------------------------------------------------------------------------------


def campaign_audience(
    campaign: Campaign, *, now: datetime | None = None, id_range: tuple[int, int] | None = None
) -> Audience:
    return audience_resolve(
        organization_id=campaign.organization_id,
        spec=AudienceSpec.from_dict(campaign.audience),
        channel=campaign.channel,
        now=now,
        id_range=id_range,
    )


def campaign_expand(*, campaign: Campaign, step: int = 0) -> int:
    """Write one planned Message per recipient (set-based, chunked by contact id); idempotent.
    Returns the number of messages the campaign has for the step."""
    now = timezone.now()
    address = "email" if campaign.channel == Channel.EMAIL else "phone"
    bounds = Contact.objects.filter(organization_id=campaign.organization_id).aggregate(low=Min("id"), high=Max("id"))
    excluded: Counter[str] = Counter()
    if bounds["low"] is not None:
        low = bounds["low"]
        while low <= bounds["high"]:
            high = low + EXPAND_CHUNK_IDS
            chunk = campaign_audience(campaign, now=now, id_range=(low, high))
            excluded.update(_expand_chunk(campaign, chunk, address, step, now, (low, high)))
            low = high
    total = Message.objects.filter(campaign=campaign, step=step).count()
    ordered = {reason: excluded[reason] for reason in EXCLUSION_ORDER if excluded.get(reason)}
    Campaign.objects.filter(pk=campaign.pk).update(excluded=ordered, recipients=total, expanded_at=timezone.now())
    logger.info("campaign expanded", extra={"campaign_id": str(campaign.pk), "messages": total})
    return total


def _expand_chunk(campaign, audience: Audience, address: str, step: int, now, id_range) -> dict[str, int]:
    """Insert one chunk's messages and count its exclusions; one pass over the chunk on PostgreSQL.

    A chunk with no messages yet (the first expansion) is a plain INSERT: ON CONFLICT would make every
    row a speculative insertion. Should another expansion of the campaign write some of these rows
    meanwhile, the insert fails on the unique constraint inside a savepoint and ON CONFLICT DO NOTHING
    takes over, as it does for a chunk that has messages already (a rerun)."""
    chunk = audience.candidates.annotate(exclusion=audience.reason)
    select_sql, select_params = chunk.values("id", address, "exclusion").query.sql_with_params()
    variant_sql, variant_params = _variant_split(campaign) if step == 0 else ("NULL", [])
    insert = f"""
        INSERT INTO campaigns_message (organization_id, campaign_id, step, contact_id, to_address,
            status, sending_domain, attempts, last_error, created_at, variant_id)
        SELECT %s, %s, %s, chosen.id, chosen.{address}, %s, '', 0, '', %s, {variant_sql}
        FROM {{source}} AS chosen WHERE chosen.exclusion IS NULL
        {{on_conflict}}
    """
    on_conflict = "ON CONFLICT (campaign_id, step, contact_id) DO NOTHING"
    insert_params = [*_ids(campaign), step, MessageStatus.PLANNED, _param(now), *variant_params]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner's estimates for these EXISTS-heavy queries are poor and JIT compiling
            # them costs more than running them.
            cursor.execute("SET LOCAL jit = off")

            def run(conflict_clause: str) -> dict[str, int]:
                cursor.execute(
                    f"WITH chunk AS MATERIALIZED ({select_sql}), "
                    f"inserted AS ({insert.format(source='chunk', on_conflict=conflict_clause)} RETURNING 1) "
                    "SELECT exclusion, count(*) FROM chunk WHERE exclusion IS NOT NULL GROUP BY exclusion",
                    [*select_params, *insert_params],
                )
                return dict(cursor.fetchall())

            if not _chunk_has_messages(campaign, step, id_range):
                # Rows written meanwhile by another expansion roll the savepoint back; the rerun path settles them.
                with contextlib.suppress(IntegrityError), transaction.atomic():
                    return run("")
            return run(on_conflict)
        cursor.execute(
            insert.format(source=f"({select_sql})", on_conflict=on_conflict), [*insert_params, *select_params]
        )
        cursor.execute(
            f"SELECT exclusion, count(*) FROM ({select_sql}) AS chunk WHERE exclusion IS NOT NULL GROUP BY exclusion",
            select_params,
        )
        return dict(cursor.fetchall())


def _chunk_has_messages(campaign: Campaign, step: int, id_range: tuple[int, int]) -> bool:
    low, high = id_range
    return Message.objects.filter(campaign=campaign, step=step, contact_id__gte=low, contact_id__lt=high).exists()


def _variant_split(campaign: Campaign, *, contact_column: str = "chosen.id") -> tuple[str, list]:
    """SQL that picks each recipient's variant by weight: stable per contact (its id modulo the weights).
    `contact_column` is the contact id in the statement (an expansion's chosen contact, or a message's)."""
    variants = list(campaign.variants.order_by("name").values_list("pk", "weight"))
    if not variants:
        return "NULL", []
    total = sum(max(weight, 1) for _, weight in variants)
    whens, params, bound = [], [], 0
    for variant_id, weight in variants[:-1]:
        bound += max(weight, 1)
        whens.append(f"WHEN {contact_column} %% %s < %s THEN %s")
        params += [total, bound, variant_id.hex if connection.vendor == "sqlite" else variant_id]
    last = variants[-1][0]
    params.append(last.hex if connection.vendor == "sqlite" else last)
    return f"CASE {' '.join(whens)} ELSE %s END", params


def campaign_followup_due(*, campaign: Campaign, now: datetime | None = None) -> bool:
    """True when the follow-up should go out: the first step is done and `days` have passed since its last send."""
    followup = campaign.followup or {}
    if not followup.get("enabled") or campaign.followup_expanded_at or campaign.status != S.RUNNING:
        return False
    first_step = Message.objects.filter(campaign=campaign, step=0)
    if not campaign.planned_at or first_step.filter(status__in=PENDING_STATUSES).exists():
        return False
    last_sent = first_step.aggregate(last=Max("sent_at"))["last"] or campaign.starts_at or campaign.launched_at
    return (now or timezone.now()) >= last_sent + timedelta(days=followup["days"])


def campaign_followup_expand(*, campaign: Campaign) -> int:
    """Write step-1 messages for recipients of step 0 who did not open (or click), then plan them from now."""

    with transaction.atomic():
        campaign = _locked(campaign)
        if campaign.followup_expanded_at:
            return 0
        reached = [MessageStatus.SENT, MessageStatus.DELIVERED]
        if campaign.followup.get("criterion") == "not_clicked":
            reached.append(MessageStatus.OPENED)
        now = timezone.now()
        sources = Message.objects.filter(campaign=campaign, step=0, status__in=reached).values_list(
            "contact_id", "to_address"
        )
        created = 0
        for chunk in _chunked(sources.iterator(chunk_size=5000), 5000):
            created += len(
                Message.objects.bulk_create(
                    [
                        Message(
                            organization_id=campaign.organization_id,
                            campaign=campaign,
                            step=1,
                            contact_id=contact_id,
                            to_address=address,
                            created_at=now,
                        )
                        for contact_id, address in chunk
                    ],
                    ignore_conflicts=True,
                )
            )
        campaign.followup_expanded_at = now
        campaign.save(update_fields=["followup_expanded_at", "updated_at"])
    settings = dataclasses.replace(plan_settings(campaign, now=now), start_at=now)
    _plan_with(campaign, settings)
    return created


def _chunked(iterable, size: int):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _param(value):
    if connection.vendor == "sqlite" and isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _ids(campaign: Campaign) -> list:
    if connection.vendor == "sqlite":
        return [campaign.organization_id.hex, campaign.pk.hex]
    return [campaign.organization_id, campaign.pk]


# --- planning ------------------------------------------------------------------------------------------


def _recipients(queryset, *, with_timezone: bool) -> Iterator[planner.Recipient]:
    from campaigns import planner

    fields = ["pk", "domain"] + (["tz"] if with_timezone else [])
    for row in queryset.values_list(*fields).iterator(chunk_size=PLAN_BATCH):
        yield planner.Recipient(key=row[0], domain=row[1] or "", timezone=row[2] if with_timezone else "")


def _message_recipients(campaign: Campaign, settings: planner.PlanSettings) -> Iterable[planner.Recipient]:
    from django.db.models import F
    from django.db.models.functions import Lower

    messages = Message.objects.filter(campaign=campaign, status=MessageStatus.PLANNED).order_by("id")
    messages = messages.annotate(domain=Lower(F("contact__email_domain")))
    if settings.recipient_timezone:
        messages = messages.annotate(tz=F("contact__timezone")).order_by("tz", "id")
    return _recipients(messages, with_timezone=settings.recipient_timezone)


def campaign_plan(*, campaign: Campaign) -> int:
    """Give every planned message its send time and sending domain, and queue it. Returns how many."""

    from campaigns import planner

    settings = plan_settings(campaign, now=campaign.launched_at or timezone.now())
    try:
        queued = _plan_with(campaign, settings)
    except planner.PlanSettingsError as exc:
        # e.g. a recipient's time zone leaves no sending time in the window: stop and say why.
        Campaign.objects.filter(pk=campaign.pk, status__in=[S.RUNNING, S.SCHEDULED]).update(
            status=S.PAUSED, status_reason=f"Planning stopped: {exc.field}: {exc.message}"[:300]
        )
        return 0
    Campaign.objects.filter(pk=campaign.pk).update(planned_at=timezone.now())
    logger.info("campaign planned", extra={"campaign_id": str(campaign.pk), "queued": queued})
    return queued


def _plan_with(campaign: Campaign, settings: planner.PlanSettings) -> int:
    from campaigns import planner

    queued = 0
    batch: list[planner.Slot] = []
    for slot in planner.plan(settings, _message_recipients(campaign, settings)):
        batch.append(slot)
        if len(batch) >= PLAN_BATCH:
            queued += _write_slots(batch)
            batch = []
    if batch:
        queued += _write_slots(batch)
    return queued


def _write_slots(slots: list[planner.Slot]) -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ", ".join(["(%s::bigint, %s::timestamptz, %s::varchar)"] * len(slots))
            params: list[Any] = [item for s in slots for item in (s.key, s.scheduled_at, s.sending_domain)]
            cursor.execute(
                f"""
                UPDATE campaigns_message m SET scheduled_at = v.t, sending_domain = v.d, status = %s
                FROM (VALUES {values}) AS v(id, t, d)
                WHERE m.id = v.id AND m.status = %s
                """,
                [MessageStatus.QUEUED, *params, MessageStatus.PLANNED],
            )
            return cursor.rowcount
        queued, planned = MessageStatus.QUEUED, MessageStatus.PLANNED
        cursor.executemany(
            "UPDATE campaigns_message SET scheduled_at = %s, sending_domain = %s, status = %s "
            "WHERE id = %s AND status = %s",
            [(_param(slot.scheduled_at), slot.sending_domain, queued, slot.key, planned) for slot in slots],
        )
        return len(slots)


def campaign_dry_run(*, campaign: Campaign) -> dict[str, Any]:
    """What launching now would do, from the same resolver and planner; writes nothing."""
    from campaigns import planner

    campaign_validate(campaign=campaign)
    now = timezone.now()
    settings = plan_settings(campaign, now=now)
    audience = campaign_audience(campaign, now=now)
    from django.db.models import F
    from django.db.models.functions import Lower

    contacts = audience.queryset.annotate(domain=Lower(F("email_domain")))
    if settings.recipient_timezone:
        contacts = contacts.annotate(tz=F("timezone")).order_by("tz", "id")
    else:
        contacts = contacts.order_by("id")
    summary = planner.PlanSummary(timezone=settings.timezone)
    for slot in planner.plan(settings, _recipients(contacts, with_timezone=settings.recipient_timezone)):
        summary.add(slot)
    result = {**summary.to_dict(), "excluded": audience.excluded()}
    result["per_domain"] = _with_senders(campaign, result["per_domain"])
    result["estimated_cost"] = _estimated_cost(campaign, recipients=result["recipients"])
    return result


def _estimated_cost(campaign: Campaign, *, recipients: int) -> dict[str, Any] | None:
    """What the first step's messages would cost: recipients (split by the A/B weights) times the
    segments of the template each gets (the launched version, else the template as it stands)."""

    def segments_of(template, version) -> int:
        if version is not None:
            return selectors.version_segments(campaign=campaign, version=version)
        return template.sms_segments if template is not None else 0

    variants = list(campaign.variants.select_related("template", "template_version"))
    segments = 0
    if campaign.channel == Channel.SMS and variants:
        total_weight = sum(variant.weight for variant in variants) or 1
        for variant in variants:
            share = round(recipients * variant.weight / total_weight)
            segments += share * segments_of(variant.template, variant.template_version)
    elif campaign.channel == Channel.SMS:
        segments = recipients * segments_of(campaign.template, campaign.template_version)
    return selectors.cost_figure(
        organization=campaign.organization, channel=campaign.channel, messages=recipients, segments=segments
    )


def _with_senders(campaign: Campaign, per_domain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each planned domain with the From address it produces and whether it may be sent from now."""
    sender = selectors.campaign_sender(campaign)
    rewrite = bool(campaign.sending_domains)
    domains = [row["domain"] for row in per_domain]
    verified = selectors.verified_domains(organization_id=campaign.organization_id, domains=domains)
    # The operator's DEFAULT_FROM_EMAIL, as the last fallback, needs no verification.
    exempt = not rewrite and sender.origin == "operator"
    rows = []
    for row in per_domain:
        from_email = selectors.from_address_for(sender.address, row["domain"]) if rewrite else sender.address
        rows.append({**row, "from_email": from_email, "verified": exempt or row["domain"] in verified})
    return rows


# --- sending domains -------------------------------------------------------------------------------------


def sending_domain_clean(*, organization: Organization, domain: str) -> str:
    """The normalized domain if it can be added to the organization's list; raises ValidationError on `domain`."""
    try:
        name = selectors.domain_normalize(domain)
    except ValueError as exc:
        raise ValidationError({"domain": [str(exc)]}) from None
    if SendingDomain.objects.filter(organization=organization, domain=name).exists():
        raise ValidationError({"domain": [f"{name} is already in this organization's sending domains."]})
    return name


def _audit_domain(sending_domain: SendingDomain, *, by: User | None, action: str, **changes: Any) -> None:
    audit_record(organization=sending_domain.organization_id, by=by, action=action, obj=sending_domain, changes=changes)


def sending_domain_add(*, organization: Organization, domain: str, by: User | None = None) -> SendingDomain:
    """Add a domain to the organization's list, pending verification; raises ValidationError on `domain`."""
    with transaction.atomic():
        name = sending_domain_clean(organization=organization, domain=domain)
        try:
            with transaction.atomic():
                sending_domain = SendingDomain.objects.create(organization=organization, domain=name, created_by=by)
        except IntegrityError:
            # Added by a parallel request meanwhile.
            raise ValidationError({"domain": [f"{name} is already in this organization's sending domains."]}) from None
        _audit_domain(sending_domain, by=by, action="sending_domain.added", after={"status": sending_domain.status})
    return sending_domain


def _txt_check(sending_domain: SendingDomain) -> str:
    """'' when the verification TXT record is published at one of the domain's names, else why not."""
    from campaigns import dns

    expected = sending_domain.txt_value
    for name in sending_domain.txt_names:
        try:
            records = dns.txt_records(name)
        except dns.LookupFailed as exc:
            return f"{exc}. Try again in a few minutes."
        if any(record.strip() == expected for record in records):
            return ""
    names = " or ".join(sending_domain.txt_names)
    return f'No TXT record "{expected}" was found at {names}. DNS changes can take a while to show.'


def sending_domain_verify(*, sending_domain: SendingDomain, by: User | None = None) -> SendingDomain:
    """Check the domain's DNS TXT record and mark it verified when it is there; the outcome is recorded.
    Raises ValidationError on `domain` (after recording) when the record is not found."""
    if sending_domain.status == SendingDomainStatus.VERIFIED:
        return sending_domain
    problem = _txt_check(sending_domain)  # network I/O outside any transaction
    with transaction.atomic():
        sending_domain = SendingDomain.objects.select_for_update().get(pk=sending_domain.pk)
        sending_domain.last_checked_at = timezone.now()
        sending_domain.last_check_error = problem[:500]
        fields = ["last_checked_at", "last_check_error"]
        if not problem and sending_domain.status != SendingDomainStatus.VERIFIED:
            before = sending_domain.status
            sending_domain.status = SendingDomainStatus.VERIFIED
            sending_domain.method = VerificationMethod.DNS
            sending_domain.verified_at = sending_domain.last_checked_at
            sending_domain.verified_by = by if getattr(by, "pk", None) else None
            fields += ["status", "method", "verified_at", "verified_by"]
            _audit_domain(
                sending_domain,
                by=by,
                action="sending_domain.verified",
                before={"status": before},
                after={"status": sending_domain.status, "method": sending_domain.method},
            )
        sending_domain.save(update_fields=fields)
    logger.info(
        "sending domain checked",
        extra={
            "domain": sending_domain.domain,
            "organization_id": str(sending_domain.organization_id),
            "verified": not problem,
        },
    )
    if problem:
        raise ValidationError({"domain": [problem]})
    return sending_domain


def sending_domain_confirm(*, sending_domain: SendingDomain, by: User) -> SendingDomain:
    """Mark a domain verified without a DNS check: the platform operator (a superuser) vouches for it.

    An organization's own owners cannot do this: anyone can register an organization, so its owner's
    word is no proof that it controls paypal.com. They prove control through DNS instead."""
    if not getattr(by, "is_superuser", False):
        raise DomainError(
            "Only the platform operator can confirm a domain without DNS; publish the TXT record and verify it."
        )
    with transaction.atomic():
        sending_domain = SendingDomain.objects.select_for_update().get(pk=sending_domain.pk)
        if sending_domain.status == SendingDomainStatus.VERIFIED:
            return sending_domain
        before = sending_domain.status
        sending_domain.status = SendingDomainStatus.VERIFIED
        sending_domain.method = VerificationMethod.ADMIN
        sending_domain.verified_at = timezone.now()
        sending_domain.verified_by = by
        sending_domain.save(update_fields=["status", "method", "verified_at", "verified_by"])
        _audit_domain(
            sending_domain,
            by=by,
            action="sending_domain.confirmed",
            before={"status": before},
            after={"status": sending_domain.status, "method": sending_domain.method},
        )
    logger.info("sending domain confirmed", extra={"domain": sending_domain.domain, "by": by.pk})
    return sending_domain


def sending_domain_delete(*, sending_domain: SendingDomain, by: User | None = None) -> None:
    """Remove a domain from the list; refused (409) while a launched campaign sends from it."""
    with transaction.atomic():
        sending_domain = SendingDomain.objects.select_for_update().get(pk=sending_domain.pk)
        users = selectors.sending_domain_users(sending_domain=sending_domain)
        if users:
            raise ConflictError(
                f"{sending_domain.domain} is a sending domain of campaigns still under way: {', '.join(users[:5])}."
            )
        _audit_domain(sending_domain, by=by, action="sending_domain.deleted", before={"status": sending_domain.status})
        sending_domain.delete()
