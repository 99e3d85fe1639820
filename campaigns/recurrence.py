"""Recurring broadcasts: a campaign with a recurrence is a series, and each occurrence launches a run.

The rule is one RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0`) read with python-dateutil
in wall-clock time of the campaign's schedule time zone (else the organization's), so "Monday 09:00"
stays 09:00 local across daylight-saving changes. The rule starts at the series' anchor: its
`schedule.start_at` when that is in the future, else the moment it is launched (to the minute);
COUNT and INTERVAL count from there.

Launching a series does not expand it: it becomes `running` with `next_run_at`, its first occurrence.
A beat task (`campaigns.recurrence.due`, every minute) takes due series one at a time with
SELECT ... FOR UPDATE SKIP LOCKED and, in that one transaction, copies the series into a run (same
template, variants, audience, schedule without start_at, throttle, sending domains, follow-up and
variables), launches the run through `campaign_launch` (so its audience is resolved when it expands),
and moves `next_run_at` to the next occurrence after now, or completes the series when none is left.
The run and the move commit together or not at all, so a crash never leaves a run without the move and
a retry never makes a second run for the same occurrence. Occurrences missed while nothing ran (beat
down for a day) are not made up one by one: the next run is the first occurrence after now.

Pause stops new runs (runs under way go on); resume recomputes `next_run_at` from now; cancel ends
the series. The first part of this module is the rule alone (no database), the second the series.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from campaigns.models import Campaign, CampaignKind, CampaignStatus, CampaignVariant
from campaigns.state import transition
from config.errors import ConflictError

logger = logging.getLogger(__name__)

S = CampaignStatus

# --- the rule ------------------------------------------------------------------------------------------

MIN_GAP = timedelta(hours=1)
# Occurrences looked at for two closer than MIN_GAP: every day with occurrences has the same times
# of day (only the first may be cut short by the start), so the first ones show any pair too close.
GAP_CHECKED = 200
FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
EXAMPLE = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z?))?")
_OTHER_PROPERTIES = re.compile(r"\b(DTSTART|RDATE|EXDATE|EXRULE)\b", re.IGNORECASE)
CLOCK_PARTS = {"BYHOUR": 23, "BYMINUTE": 59, "BYSECOND": 59}


class RecurrenceError(ValueError):
    """The rule cannot be used; the message says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Recurrence:
    """A parsed rule: dateutil's rrule over naive wall-clock times in `zone`, starting at the anchor."""

    rule: rrule
    zone: ZoneInfo

    def _aware(self, local: datetime) -> datetime:
        # fold=0: a time the clocks skip (02:30 on the spring change) comes out an hour later on the
        # wall clock; a time they pass twice is the first one.
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def first(self) -> datetime | None:
        """The first occurrence (UTC), or None when the rule has none."""
        local = next(iter(self.rule), None)
        return None if local is None else self._aware(local)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after `moment` (UTC), or None when none is left."""
        # Start a little early on the wall clock: an hour around a daylight-saving change can hold
        # occurrences whose UTC instants are on either side of `moment`.
        start = moment.astimezone(self.zone).replace(tzinfo=None) - timedelta(hours=3)
        for local in self.rule.xafter(start, inc=True):
            aware = self._aware(local)
            if aware > moment:
                return aware
        return None

    def local_date(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).date().isoformat()


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        name, sep, value = part.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise RecurrenceError(f"Not a valid RRULE: {part!r} is not NAME=VALUE. Example: {EXAMPLE}.")
        if name in fields:
            raise RecurrenceError(f"{name} is given twice.")
        fields[name] = value
    return fields


def _whole(fields: dict[str, str], name: str) -> None:
    value = fields.get(name)
    if value is not None and (not value.isdigit() or int(value) < 1):
        raise RecurrenceError(f"{name} must be a whole number of at least 1.")


def _local_until(value: str, zone: ZoneInfo) -> str:
    """UNTIL as a wall-clock time in the rule's zone (the rule runs on wall-clock times): a UTC value
    (…Z) is converted, a date or a floating date-time is kept."""
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise RecurrenceError("UNTIL must be a date (20271231) or a date-time (20271231T170000 or 20271231T160000Z).")
    day, clock, utc = match.groups()
    if not clock:
        return day
    try:
        moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError:
        raise RecurrenceError(f"UNTIL {value} is not a real date and time.") from None
    if utc:
        moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    return moment.strftime("%Y%m%dT%H%M%S")


def parse(text: str, *, timezone_name: str, anchor: datetime) -> Recurrence:
    """The rule `text` in `timezone_name`, starting at `anchor` (aware; taken to the minute).

    Raises RecurrenceError when the text is not one RRULE, when it recurs more often than hourly, when
    COUNT, UNTIL or INTERVAL make no sense, or when it has no occurrence at or after the anchor."""
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise RecurrenceError(f"Unknown time zone {timezone_name!r}.") from None
    text = text.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    if "\n" in text or "\r" in text or _OTHER_PROPERTIES.search(text):
        raise RecurrenceError(
            f"Give one RRULE such as {EXAMPLE}, without DTSTART, RDATE or EXDATE: "
            "a series starts at schedule.start_at or when it is launched."
        )
    fields = _fields(text)
    frequency = fields.get("FREQ")
    if frequency is None:
        raise RecurrenceError(f"FREQ is required: one of {', '.join(FREQUENCIES)}. Example: {EXAMPLE}.")
    if frequency in ("SECONDLY", "MINUTELY"):
        raise RecurrenceError(f"A campaign recurs at most hourly; FREQ={frequency} is too often.")
    if frequency not in FREQUENCIES:
        raise RecurrenceError(f"FREQ={frequency} is not a frequency: use one of {', '.join(FREQUENCIES)}.")
    if "COUNT" in fields and "UNTIL" in fields:
        raise RecurrenceError("COUNT and UNTIL cannot be combined (RFC 5545): give one or the other.")
    _whole(fields, "COUNT")
    _whole(fields, "INTERVAL")
    for name, highest in CLOCK_PARTS.items():
        values = fields.get(name)
        if values is not None and not all(v.isdigit() and int(v) <= highest for v in values.split(",")):
            raise RecurrenceError(f"{name} takes numbers from 0 to {highest}, separated by commas.")
    if "UNTIL" in fields:
        fields["UNTIL"] = _local_until(fields["UNTIL"], zone)
    start = anchor.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    normalized = ";".join(f"{name}={value}" for name, value in fields.items())
    try:
        rule = rrulestr(normalized, dtstart=start)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise RecurrenceError(f"Not a valid RRULE: {exc}. Example: {EXAMPLE}.") from None
    recurrence = Recurrence(rule=rule, zone=zone)
    # Wall-clock times: the rule's own terms (a daylight-saving change does not make 02:00 and 03:00
    # an hour "too close").
    occurrences = list(islice(rule, GAP_CHECKED))
    if not occurrences:
        raise RecurrenceError(f"The rule has no occurrence after {start:%Y-%m-%d %H:%M} ({timezone_name}).")
    for earlier, later in pairwise(occurrences):
        if later - earlier < MIN_GAP:
            shown = ", ".join(f"{moment:%Y-%m-%d %H:%M}" for moment in (earlier, later))
            raise RecurrenceError(
                f"The rule gives runs less than an hour apart ({shown}); a campaign recurs at most hourly."
            )
    return recurrence


# --- series ---------------------------------------------------------------------------------------------

RUN_BATCH = 100  # series started per pass of the due task


def series_timezone(campaign: Campaign) -> str:
    """The zone the rule is read in: the schedule's, else the organization's."""
    name = (campaign.schedule or {}).get("timezone") if isinstance(campaign.schedule, dict) else None
    if isinstance(name, str) and name:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # the schedule's own validation names it
    return campaign.organization.timezone


def series_anchor(campaign: Campaign, *, now: datetime | None = None) -> datetime:
    """Where the rule starts: the launched series' start, else schedule.start_at when still ahead, else now."""
    now = now or timezone.now()
    if campaign.status != S.DRAFT and campaign.starts_at:
        return campaign.starts_at
    start_at = (campaign.schedule or {}).get("start_at") if isinstance(campaign.schedule, dict) else None
    if isinstance(start_at, str):
        try:
            start = datetime.fromisoformat(start_at)
        except ValueError:
            return now  # the schedule's own validation names it
        if start.utcoffset() is not None and start > now:
            return start
    return now


def series_rule(campaign: Campaign, *, now: datetime | None = None) -> Recurrence:
    """The campaign's parsed rule; raises RecurrenceError."""
    return parse(campaign.recurrence, timezone_name=series_timezone(campaign), anchor=series_anchor(campaign, now=now))


def recurrence_problems(campaign: Campaign) -> dict[str, list[str]]:
    """{"recurrence": [why]} when the campaign's recurrence cannot be used, else {}."""
    if not campaign.recurrence:
        return {}
    if campaign.kind != CampaignKind.BROADCAST:
        return {"recurrence": ["Only a broadcast campaign can recur."]}
    if campaign.series_id:
        return {"recurrence": ["A run of a series cannot recur itself; change the series instead."]}
    if campaign.ab_test:
        return {
            "recurrence": [
                "An A/B test cannot recur: a winner picked in one run would not carry over to the next. "
                "Remove ab_test, or use variants with weights to split every run."
            ]
        }
    try:
        series_rule(campaign)
    except RecurrenceError as exc:
        return {"recurrence": [exc.message]}
    return {}


def series_launch(*, campaign: Campaign, by: User | None) -> Campaign:
    """Make a validated, locked draft a running series whose first run is due at its first occurrence.
    Called by `campaign_launch` inside its transaction; a series is never expanded itself."""
    now = timezone.now()
    anchor = series_anchor(campaign, now=now)
    recurrence = parse(campaign.recurrence, timezone_name=series_timezone(campaign), anchor=anchor)
    transition(campaign, to=S.RUNNING)
    campaign.starts_at = anchor
    campaign.next_run_at = recurrence.first()
    campaign.launched_at = now
    campaign.status_reason = ""
    campaign.save()
    audit_record(
        organization=campaign.organization_id,
        by=by,
        action="campaign.launched",
        obj=campaign,
        changes={
            "before": {"status": S.DRAFT},
            "after": {"status": campaign.status, "recurrence": campaign.recurrence, "next_run_at": _iso(campaign)},
        },
    )
    logger.info("series launched", extra={"campaign_id": str(campaign.pk), "next_run_at": _iso(campaign)})
    return campaign


def series_resume(*, campaign: Campaign, now: datetime | None = None) -> None:
    """Running again from now: `next_run_at` is the first occurrence after now (occurrences missed while
    paused are not made up), or the series completes when none is left. The caller saves."""
    now = now or timezone.now()
    transition(campaign, to=S.RUNNING)
    try:
        campaign.next_run_at = series_rule(campaign).next_after(now)
    except RecurrenceError:
        campaign.next_run_at = None
    if campaign.next_run_at is None:
        transition(campaign, to=S.COMPLETED)
        campaign.completed_at = now


def _iso(campaign: Campaign) -> str | None:
    return campaign.next_run_at.isoformat() if campaign.next_run_at else None


def _run_copy(series: Campaign, *, name: str) -> Campaign:
    """A draft copy of the series for one occurrence, with the series' variants."""
    schedule = {key: value for key, value in (series.schedule or {}).items() if key != "start_at"}
    run = Campaign.objects.create(
        organization_id=series.organization_id,
        kind=CampaignKind.BROADCAST,
        name=name,
        channel=series.channel,
        template_id=series.template_id,
        audience=copy.deepcopy(series.audience),
        schedule=schedule,
        throttle=copy.deepcopy(series.throttle),
        sending_domains=list(series.sending_domains or []),
        followup=copy.deepcopy(series.followup),
        ab_test=copy.deepcopy(series.ab_test),
        variables=copy.deepcopy(series.variables),
        series=series,
        created_by_id=series.created_by_id,
    )
    CampaignVariant.objects.bulk_create(
        [
            CampaignVariant(campaign=run, name=variant.name, template_id=variant.template_id, weight=variant.weight)
            for variant in series.variants.all()
        ]
    )
    return run


def run_name(series: Campaign, local_date: str) -> str:
    suffix = f" — {local_date}"
    return series.name[: Campaign._meta.get_field("name").max_length - len(suffix)] + suffix


def _series_run(series: Campaign, *, now: datetime) -> Campaign | None:
    """Start the run of the series' due occurrence and move it on; inside the caller's transaction,
    with the series row locked. Returns the run (None when the rule can no longer be read)."""
    from campaigns import services

    occurrence = series.next_run_at
    try:
        recurrence = series_rule(series, now=now)
    except RecurrenceError as exc:
        series.next_run_at = None
        series.save(update_fields=["next_run_at", "updated_at"])
        services.campaign_pause(campaign=series, reason=f"The recurrence cannot be read any more: {exc.message}")
        return None
    run = _run_copy(series, name=run_name(series, recurrence.local_date(occurrence)))
    problem = ""
    try:
        services.campaign_launch(campaign=run)
    except (ValidationError, ConflictError) as exc:
        problem = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in getattr(exc, "message_dict", {}).items()
        ) or "; ".join(getattr(exc, "messages", [str(exc)]))
        Campaign.objects.filter(pk=run.pk).update(status_reason=f"The run could not launch: {problem}"[:300])
    series.next_run_at = recurrence.next_after(max(occurrence, now))
    fields = ["next_run_at", "updated_at"]
    if series.next_run_at is None and not problem:
        transition(series, to=S.COMPLETED)
        series.completed_at = now
        fields += ["status", "completed_at"]
    series.save(update_fields=fields)
    if problem:
        # Something the operator must fix (an unverified domain, a deleted segment): no further runs
        # until they resume the series; this run stays a draft they can correct and launch.
        services.campaign_pause(
            campaign=series, reason=f"The run of {recurrence.local_date(occurrence)} could not launch: {problem}"
        )
    logger.info(
        "series run started",
        extra={"campaign_id": str(series.pk), "run_id": str(run.pk), "occurrence": occurrence.isoformat()},
    )
    return run


def series_run_due(*, now: datetime | None = None, limit: int = RUN_BATCH) -> int:
    """Start the run of every series whose next occurrence has come, one series per transaction;
    returns how many series were handled. Safe in several workers at once (SKIP LOCKED), and a
    repeated call for one occurrence makes no second run (the run and the move commit together)."""
    now = now or timezone.now()
    handled = 0
    seen: set = set()  # each series once per call, whatever happens to it
    for _ in range(limit):
        series_id = None
        try:
            with transaction.atomic():
                # The organization's row is locked with the series', in the order campaign_launch and
                # campaign_pause lock them, so a pause arriving meanwhile waits instead of deadlocking.
                series = (
                    Campaign.objects.select_for_update(skip_locked=True)
                    .select_related("organization")
                    .filter(kind=CampaignKind.BROADCAST, status=S.RUNNING, next_run_at__lte=now)
                    .exclude(recurrence="")
                    .exclude(pk__in=seen)
                    .order_by("next_run_at")
                    .first()
                )
                if series is None:
                    break
                series_id = series.pk
                seen.add(series_id)
                _series_run(series, now=now)
                handled += 1
        except Exception:
            # One broken series must not hold up the others; it stays due and is tried again next time.
            logger.exception("series run failed", extra={"campaign_id": str(series_id)})
            if series_id is None:
                raise
    return handled
