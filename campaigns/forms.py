"""Admin forms for broadcast campaigns, drip sequences, the sending policy and an A/B test's winner: real
widgets for what the API takes as JSON.

The forms only collect input and turn it into the arguments of `campaigns.sequences` services, which
validate it. What a service refuses comes back as a `Refusal`: its dotted error paths
("steps.1.delay.value", "settings.max_new_per_day", "window.start") placed on the fields they name.
"""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models.functions import Lower
from django.forms.models import BaseInlineFormSet

from campaigns import sequences, services
from campaigns.models import (
    Campaign,
    CampaignVariant,
    SendingDomain,
    SendingDomainStatus,
    SendingPolicy,
    Sequence,
    SequenceStep,
)
from config.errors import DomainError
from contacts.models import ContactList, Segment, Tag
from templates_app.models import MessageTemplate

SETTING_FIELDS = ("stop_on_reply", "respect_business_hours", "allow_reentry", "max_new_per_day")
NO_CONDITION = ""
RULES = "rules"
CONDITION_CHOICES = [
    (NO_CONDITION, "Always"),
    ("opened_previous", "Only if the previous message was opened"),
    ("not_opened_previous", "Only if the previous message was not opened"),
    ("clicked_previous", "Only if a link in the previous message was clicked"),
    ("not_clicked_previous", "Only if no link in the previous message was clicked"),
    (RULES, "Only if the contact matches the rules"),
]
OTHERWISE_CHOICES = [("skip", "Skip this step"), ("exit", "End the enrollment")]
WEEKDAYS = list(enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]))

# Service error paths -> form fields.
SEQUENCE_PATHS = {
    "name": "name",
    "channel": "channel",
    "trigger": "trigger_type",
    "trigger.type": "trigger_type",
    "trigger.value": "trigger_value",
    **{f"settings.{name}": name for name in SETTING_FIELDS},
}
STEP_PATHS = {
    "order": "order",
    "delay": "delay_value",
    "delay.value": "delay_value",
    "delay.unit": "delay_unit",
    "template": "template",
    "condition": "condition_type",
    "condition.type": "condition_type",
    "condition.rules": "condition_rules",
    "condition.otherwise": "otherwise",
}
POLICY_PATHS = {
    "window.days": "window_days",
    "window.start": "window_start",
    "window.end": "window_end",
    "holidays": "holidays_text",
    "frequency_cap.per_day": "per_day",
    "frequency_cap.per_week": "per_week",
}
STEP_PATH = re.compile(r"^steps\.(\d+)(?:\.(.+))?$")


@dataclass
class Refusal:
    """A service's errors, by where they belong on the page: the main form's fields (None: the whole
    form), the steps as a whole, and single step rows by their form prefix."""

    form: dict[str | None, list[str]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    rows: dict[str, dict[str | None, list[str]]] = field(default_factory=dict)

    def add(self, name: str | None, problems: list[str]) -> None:
        self.form.setdefault(name, []).extend(problems)

    @property
    def empty(self) -> bool:
        return not (self.form or self.steps or self.rows)


def error_paths(exc: ValidationError | DomainError) -> dict[str, list[str]]:
    if isinstance(exc, ValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    return {NON_FIELD_ERRORS: [str(exc)]}


def _place(refusal: Refusal, paths: dict[str, str], key: str, problems: list[str]) -> None:
    if key in paths:
        refusal.add(paths[key], problems)
    elif key == NON_FIELD_ERRORS:
        refusal.add(None, problems)
    else:
        refusal.add(None, [f"{key}: {problem}" for problem in problems])


def sequence_refusal(exc: ValidationError | DomainError, *, step_prefixes: list[str]) -> Refusal:
    """Place `sequence_save`'s errors: step `i` of the list it was given is the row `step_prefixes[i]`."""
    refusal = Refusal()
    for key, problems in error_paths(exc).items():
        if key == "steps":
            refusal.steps.extend(problems)
            continue
        step = STEP_PATH.match(key)
        if step is None:
            _place(refusal, SEQUENCE_PATHS, key, problems)
            continue
        index, rest = int(step[1]), step[2]
        if index >= len(step_prefixes):
            refusal.steps.extend(f"Step {index + 1}: {problem}" for problem in problems)
            continue
        row = refusal.rows.setdefault(step_prefixes[index], {})
        name = STEP_PATHS.get(rest) if rest else None
        if rest and name is None:
            problems = [f"{rest}: {problem}" for problem in problems]
        row.setdefault(name, []).extend(problems)
    return refusal


def policy_refusal(exc: ValidationError | DomainError) -> Refusal:
    refusal = Refusal()
    for key, problems in error_paths(exc).items():
        _place(refusal, POLICY_PATHS, key, problems)
    return refusal


class RefusalForm(forms.ModelForm):
    """A model form that shows the errors a service gave for the data submitted (`refusal`, set per request)."""

    refusal: Refusal | None = None

    def clean(self):
        cleaned = super().clean()
        if self.refusal is not None:
            for name, problems in self.refusal.form.items():
                self.add_error(name if name in self.fields else None, problems)
        return cleaned


# --- sequences ----------------------------------------------------------------------------------------------


class SequenceForm(RefusalForm):
    stop_on_reply = forms.BooleanField(
        required=False, label="Stop on reply", help_text="A contact who replies to a step leaves the sequence."
    )
    respect_business_hours = forms.BooleanField(
        required=False,
        label="Respect business hours",
        help_text="Steps go out only within the organization's business hours (see Sending policies).",
    )
    allow_reentry = forms.BooleanField(
        required=False,
        label="Allow re-entry",
        help_text="A contact who finished or left the sequence enters it again when the trigger fires again.",
    )
    max_new_per_day = forms.IntegerField(
        required=False,
        label="New contacts per day",
        help_text="At most this many contacts start the sequence per day; the others wait their turn. Empty: no limit.",
    )

    class Meta:
        model = Sequence
        fields = ["organization", "name", "channel", "trigger_type", "trigger_value"]
        labels = {"trigger_type": "Starts when", "trigger_value": "Tag or event name"}
        help_texts = {
            "trigger_value": 'The tag for "Tag added", the event name for "Custom event"; empty for the others.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = {**sequences.DEFAULT_SETTINGS, **(self.instance.settings or {})}
        for name in SETTING_FIELDS:
            self.initial.setdefault(name, current[name])

    def trigger(self) -> dict[str, str]:
        return {"type": self.cleaned_data["trigger_type"], "value": self.cleaned_data.get("trigger_value") or ""}

    def sequence_settings(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in SETTING_FIELDS}


class StepForm(forms.ModelForm):
    """One step. The condition is picked from a list; attribute rules are segment rules in JSON."""

    condition_type = forms.ChoiceField(choices=CONDITION_CHOICES, required=False, label="Condition")
    otherwise = forms.ChoiceField(
        choices=OTHERWISE_CHOICES,
        required=False,
        initial="skip",
        label="Otherwise",
        help_text="When the condition does not hold.",
    )
    condition_rules = forms.CharField(
        required=False,
        label="Rules",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 24}),
        help_text='Segment rules, e.g. {"all": [{"field": "attributes.city", "op": "eq", "value": "Utrecht"}]}',
    )

    class Meta:
        model = SequenceStep
        fields = ["order", "delay_value", "delay_unit", "template"]
        labels = {"order": "Order", "delay_value": "Wait", "delay_unit": "Unit", "template": "Template"}
        help_texts = {
            "order": "Steps go out in this order and are numbered 1, 2, 3 ... on save.",
            "delay_value": "The first step: after the contact enters; the others: after the previous step.",
        }
        widgets = {"order": forms.NumberInput(attrs={"style": "width:4em"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "order" in self.fields:  # not on a read-only page
            self.fields["order"].required = False
            self.fields["delay_value"].widget.attrs.setdefault("style", "width:5em")
        condition = self.instance.condition or {}
        if "rules" in condition:
            self.initial.setdefault("condition_type", RULES)
            self.initial.setdefault("condition_rules", json.dumps(condition["rules"], ensure_ascii=False))
        else:
            self.initial.setdefault("condition_type", condition.get("type", NO_CONDITION))
        self.initial.setdefault("otherwise", condition.get("otherwise", "skip"))

    def clean(self):
        cleaned = super().clean()
        kind, text = cleaned.get("condition_type"), (cleaned.get("condition_rules") or "").strip()
        if kind == RULES:
            if not text:
                self.add_error("condition_rules", "Write the rules, or choose another condition.")
            else:
                try:
                    cleaned["condition_rules_parsed"] = json.loads(text)
                except json.JSONDecodeError as exc:
                    self.add_error(
                        "condition_rules", f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
                    )
        elif text:
            self.add_error("condition_rules", 'Rules apply only with "Only if the contact matches the rules".')
        return cleaned

    def validate_unique(self) -> None:
        # Steps are renumbered on save and replaced as a whole by the service, which owns the order rule.
        return

    def condition(self) -> dict[str, Any]:
        kind = self.cleaned_data.get("condition_type") or NO_CONDITION
        otherwise = self.cleaned_data.get("otherwise") or "skip"
        if kind == NO_CONDITION:
            return {}
        if kind == RULES:
            return {"rules": self.cleaned_data["condition_rules_parsed"], "otherwise": otherwise}
        return {"type": kind, "otherwise": otherwise}

    def step(self, order: int) -> dict[str, Any]:
        template = self.cleaned_data.get("template")
        return {
            "order": order,
            "delay": {"unit": self.cleaned_data.get("delay_unit"), "value": self.cleaned_data.get("delay_value")},
            "template": str(template.pk) if template is not None else None,
            "condition": self.condition(),
        }


class StepFormSet(BaseInlineFormSet):
    """The steps of one sequence: templates offered are the sequence's organization's, of its channel."""

    refusal: Refusal | None = None

    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if "template" in form.fields:
            form.fields["template"].queryset = (
                form.fields["template"]
                .queryset.filter(organization_id=self.instance.organization_id, channel=self.instance.channel)
                .order_by("name")
            )

    def validate_unique(self) -> None:
        return  # see StepForm.validate_unique

    def clean(self) -> None:
        super().clean()
        if self.refusal is None:
            return
        for form in self.forms:
            for name, problems in self.refusal.rows.get(form.prefix, {}).items():
                form.add_error(name if name in form.fields else None, problems)
        if self.refusal.steps:
            raise ValidationError(self.refusal.steps)

    def kept_forms(self) -> list[StepForm]:
        """The rows that are steps, in the order they go out: saved rows not marked for deletion and new
        rows filled in, sorted by their order (empty: after the others, as they stand on the page)."""
        saved = self.initial_form_count()
        rows = [
            form
            for index, form in enumerate(self.forms)
            if not self._should_delete_form(form) and (index < saved or form.has_changed())
        ]
        position = {form.prefix: index for index, form in enumerate(rows)}

        def key(form):
            order = form.cleaned_data.get("order")
            return (math.inf if order is None else order, position[form.prefix])

        return sorted(rows, key=key)


# --- the sending policy ------------------------------------------------------------------------------------


class SendingPolicyForm(RefusalForm):
    window_days = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, label="Sending days", widget=forms.CheckboxSelectMultiple
    )
    window_start = forms.TimeField(
        required=False, label="From", widget=admin_widgets.AdminTimeWidget(format="%H:%M"), help_text="e.g. 09:00"
    )
    window_end = forms.TimeField(
        required=False,
        label="Until",
        widget=admin_widgets.AdminTimeWidget(format="%H:%M"),
        help_text="e.g. 17:00; 00:00 means midnight. Leave the days and both times empty for the default hours "
        "(Monday to Friday, 09:00-17:00).",
    )
    holidays_text = forms.CharField(
        required=False,
        label="Holidays",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 30}),
        help_text="Dates with no sending at all, like 2026-12-25: one per line, or separated by commas.",
    )
    per_day = forms.IntegerField(
        required=False,
        label="At most per day",
        help_text="Marketing messages per contact in any 24 hours. Empty: no cap.",
    )
    per_week = forms.IntegerField(
        required=False,
        label="At most per week",
        help_text="Marketing messages per contact in any 7 days. Empty: no cap.",
    )

    class Meta:
        model = SendingPolicy
        fields = ["organization"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        policy = self.instance
        window = policy.window or {}
        cap = policy.frequency_cap or {}
        initial = {
            "window_days": window.get("days", []),
            "window_start": window.get("start"),
            "window_end": window.get("end"),
            "holidays_text": "\n".join(str(day) for day in policy.holidays or []),
            "per_day": cap.get("per_day"),
            "per_week": cap.get("per_week"),
        }
        for name, value in initial.items():
            self.initial.setdefault(name, value)

    def clean(self):
        cleaned = super().clean()
        days, start, end = cleaned.get("window_days"), cleaned.get("window_start"), cleaned.get("window_end")
        if days or start or end:
            for name in ("window_start", "window_end"):
                if cleaned.get(name) is None and name not in self.errors:
                    self.add_error(name, "Give both times when setting sending hours.")
        return cleaned

    def policy_values(self) -> dict[str, Any]:
        """The arguments of `sequences.sending_policy_save` from the form."""
        days, start, end = (self.cleaned_data.get(name) for name in ("window_days", "window_start", "window_end"))
        window: dict[str, Any] = {}
        if days or start or end:
            window = {
                "days": sorted(days or []),
                "start": start.strftime("%H:%M") if start else None,
                "end": end.strftime("%H:%M") if end else None,
            }
        holidays = [item for item in re.split(r"[\s,;]+", self.cleaned_data.get("holidays_text") or "") if item]
        cap = {key: self.cleaned_data.get(key) for key in ("per_day", "per_week")}
        return {
            "window": window,
            "holidays": holidays,
            "frequency_cap": {key: value for key, value in cap.items() if value is not None},
        }


class AbWinnerForm(forms.Form):
    """A marketer's pick of an A/B test's winner, by variant name. Without `confirm` the admin asks first."""

    variant = forms.ChoiceField()
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variants = {variant.name: variant for variant in campaign.variants.order_by("name")}
        self.fields["variant"].choices = [(name, name) for name in self.variants]

    def winner(self) -> CampaignVariant:
        return self.variants[self.cleaned_data["variant"]]

    def problems(self) -> str:
        """The form's errors as one sentence naming the fields, for a message on the page."""
        return " ".join(f"{name}: {' '.join(errors)}" for name, errors in self.errors.items())


# --- broadcast campaigns ------------------------------------------------------------------------------

# Service error paths -> campaign form fields (None: the form's non-field errors, prefixed by the path).
CAMPAIGN_PATHS: dict[str, str | None] = {
    "name": "name",
    "channel": "channel",
    "template": "template",
    "budget": "budget",
    "variables": "variables_text",
    "organization": "organization",
    "audience.lists": "audience_lists",
    "audience.tags": "audience_tags",
    "audience.segment": "audience_segment",
    "audience.exclude_tags": "exclude_tags",
    "audience.exclude_recent_days": "exclude_recent_days",
    "schedule.start_at": "start_date",
    "schedule.timezone": "schedule_timezone",
    "schedule.window": "window_days",
    "schedule.window.days": "window_days",
    "schedule.window.start": "window_start",
    "schedule.window.end": "window_end",
    "schedule.holidays": "holidays",
    "schedule.recipient_timezone": "recipient_timezone",
    "throttle.per_domain_interval_minutes": "per_domain_interval_minutes",
    "throttle.max_per_hour": "max_per_hour",
    "throttle.per_recipient_domain_per_minute": "per_recipient_domain_per_minute",
    "sending_domains": "domains",
    "followup.enabled": "followup_enabled",
    "followup.days": "followup_days",
    "followup.template": "followup_template",
    "followup.criterion": "followup_criterion",
    "ab_test": "ab_enabled",
    "ab_test.test_fraction": "ab_test_percent",
    "ab_test.metric": "ab_metric",
    "ab_test.wait_hours": "ab_wait_hours",
    "ab_test.on_no_winner": "ab_on_no_winner",
}
INDEXED_PATH = re.compile(r"\[\d+\]$")
THROTTLE_FIELDS = ("per_domain_interval_minutes", "max_per_hour", "per_recipient_domain_per_minute")
AB_METRIC_CHOICES = [("open_rate", "Open rate"), ("click_rate", "Click rate")]
AB_NO_WINNER_CHOICES = [
    ("first", "Send the first variant to the rest"),
    ("split", "Split the rest by the variants' weights"),
]
FOLLOWUP_CRITERION_CHOICES = [("not_opened", "Did not open"), ("not_clicked", "Did not click")]


def campaign_error_fields(exc: ValidationError | DomainError) -> dict[str | None, list[str]]:
    """A campaign service's errors by the campaign form field they belong to (None: the whole form).
    `sending_domains[2]` belongs to `sending_domains`; a path the form has no widget for keeps its
    name in the message."""
    placed: dict[str | None, list[str]] = {}
    for key, problems in error_paths(exc).items():
        path = INDEXED_PATH.sub("", key)
        name = CAMPAIGN_PATHS.get(path)
        if name is None and key != NON_FIELD_ERRORS:
            problems = [f"{key}: {problem}" for problem in problems]
        placed.setdefault(name, []).extend(problems)
    return placed


def _time_zone_choices() -> list[tuple[str, str]]:
    import zoneinfo

    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class _NamedChoices(forms.ModelMultipleChoiceField):
    """Rows offered by name; with more than one organization on offer, the name says whose it is."""

    show_organization = False

    def label_from_instance(self, obj) -> str:
        return f"{obj} ({obj.organization})" if self.show_organization else str(obj)


class _NamedChoice(forms.ModelChoiceField):
    show_organization = False

    def label_from_instance(self, obj) -> str:
        return f"{obj} ({obj.organization})" if self.show_organization else str(obj)


class CampaignForm(forms.ModelForm):
    """A campaign by name, number, date and checkbox: the form assembles the API's `audience`,
    `schedule`, `throttle`, `sending_domains`, `followup` and `ab_test` objects, and
    `services.campaign_check` validates them, its errors placed on the widgets they concern.

    `organization_ids` (set per request by the admin; None: every organization) limits what is offered;
    a chosen row of another organization than the campaign's is an error on its field."""

    organization_ids: list | None = None

    variables_text = forms.CharField(
        required=False,
        label="Template variables",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="One per line, like: discount = 20%. The template reads them as {{ discount }}.",
    )
    # Audience
    audience_lists = _NamedChoices(
        queryset=None,
        required=False,
        label="Lists",
        widget=admin_widgets.FilteredSelectMultiple("lists", is_stacked=False),
        help_text="Everyone subscribed to any of these lists.",
    )
    audience_tags = _NamedChoices(
        queryset=None,
        required=False,
        label="Tags",
        widget=admin_widgets.FilteredSelectMultiple("tags", is_stacked=False),
        help_text="And everyone with any of these tags.",
    )
    audience_segment = _NamedChoice(
        queryset=None, required=False, label="Segment", help_text="And everyone matching this segment."
    )
    exclude_tags = _NamedChoices(
        queryset=None,
        required=False,
        label="Leave out contacts tagged",
        widget=admin_widgets.FilteredSelectMultiple("tags to leave out", is_stacked=False),
    )
    exclude_recent_days = forms.IntegerField(
        required=False,
        label="Leave out contacts messaged in the last",
        help_text="days (1 to 3650). Empty: nobody is left out for that.",
        widget=forms.NumberInput(attrs={"style": "width:6em"}),
    )
    # Schedule
    start_date = forms.DateField(
        required=False,
        label="Start date",
        widget=admin_widgets.AdminDateWidget,
        help_text="Empty: as soon as it is launched.",
    )
    start_time = forms.TimeField(
        required=False,
        label="Start time",
        widget=admin_widgets.AdminTimeWidget(format="%H:%M"),
        help_text="In the campaign's time zone; empty: 00:00 of the start date.",
    )
    schedule_timezone = forms.ChoiceField(required=False, label="Time zone")
    window_days = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, label="Sending days", widget=forms.CheckboxSelectMultiple
    )
    window_start = forms.TimeField(
        required=False,
        label="Sending from",
        widget=admin_widgets.AdminTimeWidget(format="%H:%M"),
        help_text="e.g. 08:00",
    )
    window_end = forms.TimeField(
        required=False,
        label="Sending until",
        widget=admin_widgets.AdminTimeWidget(format="%H:%M"),
        help_text="e.g. 17:00; 00:00 means midnight. No days and no times: any day, any time. "
        "Times without days: every day.",
    )
    holidays = forms.CharField(
        required=False,
        label="Holidays",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 30, "class": "campaign-holidays"}),
        help_text="Dates with no sending, like 2026-12-25: one per line, or separated by commas.",
    )
    recipient_timezone = forms.BooleanField(
        required=False,
        label="In each recipient's own time zone",
        help_text="The sending days and hours apply in the contact's time zone where it is known.",
    )
    # Throttle
    per_domain_interval_minutes = forms.IntegerField(
        required=False,
        label="Minutes between two messages from one sending domain",
        help_text="minutes. Empty: no wait.",
        widget=forms.NumberInput(attrs={"style": "width:7em"}),
    )
    max_per_hour = forms.IntegerField(
        required=False,
        label="At most per hour",
        help_text="messages in all. Empty: no limit.",
        widget=forms.NumberInput(attrs={"style": "width:9em"}),
    )
    per_recipient_domain_per_minute = forms.IntegerField(
        required=False,
        label="At most per minute to one recipient domain",
        help_text="messages (e.g. to gmail.com). Empty: no limit.",
        widget=forms.NumberInput(attrs={"style": "width:7em"}),
    )
    domains = _NamedChoices(
        queryset=None,
        required=False,
        label="Sending domains",
        widget=forms.CheckboxSelectMultiple,
        help_text="Verified domains only, used in turn. None ticked: the template's or the organization's sender.",
    )
    # Follow-up
    followup_enabled = forms.BooleanField(required=False, label="Send a follow-up")
    followup_days = forms.IntegerField(
        required=False,
        label="Days after the first message",
        help_text="days (1 to 90).",
        widget=forms.NumberInput(attrs={"style": "width:5em"}),
    )
    followup_criterion = forms.ChoiceField(
        choices=FOLLOWUP_CRITERION_CHOICES, required=False, initial="not_opened", label="To recipients who"
    )
    followup_template = _NamedChoice(queryset=None, required=False, label="Follow-up template")
    # A/B test
    ab_enabled = forms.BooleanField(
        required=False,
        label="Test the variants first",
        help_text="Send the variants (below) to a test portion, wait, then send the winner to the rest. "
        "Unticked: variants split the whole audience by weight.",
    )
    ab_test_percent = forms.DecimalField(
        required=False,
        label="Test portion",
        help_text="percent of the audience, e.g. 20.",
        max_digits=7,
        decimal_places=4,
        widget=forms.NumberInput(attrs={"style": "width:6em", "step": "any"}),
    )
    ab_metric = forms.ChoiceField(choices=AB_METRIC_CHOICES, required=False, initial="open_rate", label="Winner by")
    ab_wait_hours = forms.FloatField(
        required=False,
        label="Wait",
        help_text="hours after the test's last send before the winner is picked.",
        widget=forms.NumberInput(attrs={"style": "width:6em", "step": "any"}),
    )
    ab_on_no_winner = forms.ChoiceField(
        choices=AB_NO_WINNER_CHOICES, required=False, initial="first", label="Without a significant winner"
    )

    class Meta:
        model = Campaign
        fields = ["organization", "name", "channel", "template", "budget"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        organization_ids = self._offered_organizations()
        many = organization_ids is None or len(organization_ids) > 1

        def scoped(queryset):
            queryset = queryset.select_related("organization")
            return queryset if organization_ids is None else queryset.filter(organization_id__in=organization_ids)

        offered = {
            "audience_lists": scoped(ContactList.objects.order_by("name")),
            "audience_tags": scoped(Tag.objects.order_by("name")),
            "exclude_tags": scoped(Tag.objects.order_by("name")),
            "audience_segment": scoped(Segment.objects.order_by("name")),
            "domains": scoped(SendingDomain.objects.filter(status=SendingDomainStatus.VERIFIED)),
            "followup_template": scoped(MessageTemplate.objects.order_by("name")),
        }
        for name, queryset in offered.items():
            self.fields[name].queryset = queryset
            self.fields[name].show_organization = many
        if "template" in self.fields:
            self.fields["template"].queryset = scoped(self.fields["template"].queryset.order_by("name"))
        self.fields["schedule_timezone"].choices = [("", self._default_zone_label()), *_time_zone_choices()]
        self._fill_initial()

    def _offered_organizations(self) -> list | None:
        if self.instance.organization_id is not None:
            return [self.instance.organization_id]
        return self.organization_ids

    def _default_zone_label(self) -> str:
        organization = self.instance.organization if self.instance.organization_id else None
        return f"The organization's ({organization.timezone})" if organization else "The organization's"

    # --- stored JSON -> widgets ---

    def _fill_initial(self) -> None:
        campaign = self.instance
        if campaign._state.adding:
            return
        audience = campaign.audience if isinstance(campaign.audience, dict) else {}
        schedule = campaign.schedule if isinstance(campaign.schedule, dict) else {}
        throttle = campaign.throttle if isinstance(campaign.throttle, dict) else {}
        followup = campaign.followup if isinstance(campaign.followup, dict) else {}
        ab_test = campaign.ab_test if isinstance(campaign.ab_test, dict) else {}
        window = schedule.get("window") if isinstance(schedule.get("window"), dict) else {}
        org = campaign.organization_id

        def tag_ids(names, field: str) -> list:
            wanted = {str(name).lower(): str(name) for name in names or [] if isinstance(name, str)}
            found = dict(
                Tag.objects.filter(organization_id=org)
                .annotate(lower=Lower("name"))
                .filter(lower__in=list(wanted))
                .values_list("lower", "pk")
            )
            self._note_missing(field, [name for lower, name in wanted.items() if lower not in found])
            return list(found.values())

        start_date = start_time = None
        zone_name = schedule.get("timezone") or campaign.organization.timezone
        if isinstance(schedule.get("start_at"), str):
            try:
                start = datetime.fromisoformat(schedule["start_at"])
                if start.utcoffset() is not None:
                    start = start.astimezone(zoneinfo.ZoneInfo(zone_name))
                start_date, start_time = start.date(), start.time().replace(second=0, microsecond=0)
            except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError):
                pass
        fraction = ab_test.get("test_fraction")
        values = {
            "variables_text": "\n".join(
                f"{key} = {value if isinstance(value, str) else json.dumps(value)}"
                for key, value in (campaign.variables or {}).items()
            )
            if isinstance(campaign.variables, dict)
            else "",
            "audience_lists": [str(pk) for pk in audience.get("lists") or []],
            "audience_tags": tag_ids(audience.get("tags"), "audience_tags"),
            "audience_segment": audience.get("segment"),
            "exclude_tags": tag_ids(audience.get("exclude_tags"), "exclude_tags"),
            "exclude_recent_days": audience.get("exclude_recent_days"),
            "start_date": start_date,
            "start_time": start_time,
            "schedule_timezone": schedule.get("timezone") or "",
            "window_days": window.get("days") or [],
            "window_start": window.get("start"),
            "window_end": window.get("end"),
            "holidays": "\n".join(str(day) for day in schedule.get("holidays") or []),
            "recipient_timezone": bool(schedule.get("recipient_timezone")),
            **{name: throttle.get(name) for name in THROTTLE_FIELDS},
            "domains": self._domain_ids(),
            "followup_enabled": bool(followup.get("enabled")),
            "followup_days": followup.get("days"),
            "followup_criterion": followup.get("criterion", "not_opened"),
            "followup_template": followup.get("template"),
            "ab_enabled": bool(ab_test),
            "ab_test_percent": _percent(fraction),
            "ab_metric": ab_test.get("metric", "open_rate"),
            "ab_wait_hours": ab_test.get("wait_hours"),
            "ab_on_no_winner": ab_test.get("on_no_winner", "first"),
        }
        for name, value in values.items():
            self.initial.setdefault(name, value)

    def _domain_ids(self) -> list:
        names = self.instance.sending_domains if isinstance(self.instance.sending_domains, list) else []
        rows = dict(
            self.fields["domains"]
            .queryset.filter(organization_id=self.instance.organization_id, domain__in=names)
            .values_list("domain", "pk")
        )
        self._note_missing("domains", [name for name in names if name not in rows])
        return list(rows.values())

    def _note_missing(self, field: str, names: list[str]) -> None:
        """Stored names the widget cannot show (a tag since deleted, a domain no longer verified): said
        next to it, as saving the form leaves them out."""
        if names:
            self.fields[field].help_text = (
                f"{self.fields[field].help_text} Not available any more, left out when saved: {', '.join(names)}."
            ).strip()

    # --- widgets -> the API's JSON ---

    def clean_variables_text(self) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        for number, line in enumerate((self.cleaned_data.get("variables_text") or "").splitlines(), start=1):
            if not line.strip():
                continue
            name, equals, value = line.partition("=")
            if not equals or not name.strip():
                raise ValidationError(f"Line {number}: write name = value.")
            variables[name.strip()] = value.strip()
        # A value the API stored as a number, list or object, shown as JSON and left as it was, stays so.
        stored = self.instance.variables if isinstance(self.instance.variables, dict) else {}
        for name, value in variables.items():
            if name in stored and not isinstance(stored[name], str) and value == json.dumps(stored[name]):
                variables[name] = stored[name]
        return variables

    def clean_holidays(self) -> list[str]:
        return [item for item in re.split(r"[\s,;]+", self.cleaned_data.get("holidays") or "") if item]

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization") if "organization" in self.fields else self.instance.organization
        if organization is not None:
            for name in ("audience_lists", "audience_tags", "exclude_tags", "domains"):
                if any(row.organization_id != organization.pk for row in cleaned.get(name) or []):
                    self.add_error(name, f"Choose only {organization}'s {self.fields[name].label.lower()}.")
            for name in ("audience_segment", "followup_template", "template"):
                row = cleaned.get(name)
                if row is not None and row.organization_id != organization.pk:
                    self.add_error(name, f"Choose one of {organization}'s.")
        days, start, end = cleaned.get("window_days"), cleaned.get("window_start"), cleaned.get("window_end")
        if days or start or end:
            for name in ("window_start", "window_end"):
                if cleaned.get(name) is None and name not in self.errors:
                    self.add_error(name, "Give both times when setting sending days or hours.")
        if (
            cleaned.get("start_time") is not None
            and cleaned.get("start_date") is None
            and "start_date" not in self.errors
        ):
            self.add_error("start_date", "Give the date the start time is on.")
        percent = cleaned.get("ab_test_percent")
        if cleaned.get("ab_enabled") and percent is not None and not 0 < percent < 100:
            self.add_error("ab_test_percent", "A percentage between 0 and 100, e.g. 20.")
        return cleaned

    def _post_clean(self) -> None:
        super()._post_clean()
        campaign = self.instance
        if campaign.organization_id is None:
            return  # the organization's own error says what to do
        campaign.variables = self.cleaned_data.get("variables_text") or {}
        campaign.audience = self.audience()
        campaign.schedule = self.schedule()
        campaign.throttle = self.throttle()
        campaign.sending_domains = [row.domain for row in self.cleaned_data.get("domains") or []]
        campaign.followup = self.followup()
        campaign.ab_test = self.ab_test()
        if self.errors:
            return  # the service would only repeat what the widgets say, or judge half a campaign
        try:
            services.campaign_check(campaign=campaign)
        except (ValidationError, DomainError) as exc:
            for name, problems in campaign_error_fields(exc).items():
                self.add_error(name if name in self.fields else None, problems)

    def audience(self) -> dict[str, Any]:
        data = self.cleaned_data
        audience: dict[str, Any] = {}
        if data.get("audience_lists"):
            audience["lists"] = [str(row.pk) for row in data["audience_lists"]]
        if data.get("audience_tags"):
            audience["tags"] = [row.name for row in data["audience_tags"]]
        if data.get("audience_segment") is not None:
            audience["segment"] = str(data["audience_segment"].pk)
        if data.get("exclude_tags"):
            audience["exclude_tags"] = [row.name for row in data["exclude_tags"]]
        if data.get("exclude_recent_days") is not None:
            audience["exclude_recent_days"] = data["exclude_recent_days"]
        return audience

    def schedule(self) -> dict[str, Any]:
        data = self.cleaned_data
        schedule: dict[str, Any] = {}
        zone_name = data.get("schedule_timezone") or ""
        if data.get("start_date") is not None:
            zone = zoneinfo.ZoneInfo(zone_name or self.instance.organization.timezone)
            moment = datetime.combine(data["start_date"], data.get("start_time") or time(0), tzinfo=zone)
            schedule["start_at"] = moment.isoformat()
        if zone_name:
            schedule["timezone"] = zone_name
        days, start, end = data.get("window_days"), data.get("window_start"), data.get("window_end")
        if start is not None and end is not None:
            window: dict[str, Any] = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
            if days:
                window = {"days": sorted(days), **window}
            schedule["window"] = window
        if data.get("holidays"):
            schedule["holidays"] = data["holidays"]
        if data.get("recipient_timezone"):
            schedule["recipient_timezone"] = True
        return schedule

    def throttle(self) -> dict[str, int]:
        return {name: self.cleaned_data[name] for name in THROTTLE_FIELDS if self.cleaned_data.get(name) is not None}

    def followup(self) -> dict[str, Any]:
        data = self.cleaned_data
        if not data.get("followup_enabled"):
            return {}
        template = data.get("followup_template")
        return {
            "enabled": True,
            "days": data.get("followup_days"),
            "template": str(template.pk) if template is not None else None,
            "criterion": data.get("followup_criterion") or "not_opened",
        }

    def ab_test(self) -> dict[str, Any]:
        data = self.cleaned_data
        if not data.get("ab_enabled"):
            return {}
        percent = data.get("ab_test_percent")
        return {
            "test_fraction": None if percent is None else float(percent / 100),
            "metric": data.get("ab_metric") or "open_rate",
            "wait_hours": data.get("ab_wait_hours"),
            "on_no_winner": data.get("ab_on_no_winner") or "first",
        }


def _percent(fraction: Any):
    from decimal import Decimal

    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        return None
    return f"{(Decimal(str(fraction)) * 100).normalize():f}"


class VariantForm(forms.ModelForm):
    """An A/B variant: its template must be of the campaign's organization and channel."""

    # The column's range on every database (SQLite would take more, PostgreSQL would then fail).
    weight = forms.IntegerField(min_value=0, max_value=32767, initial=1)

    class Meta:
        model = CampaignVariant
        fields = ["name", "template", "weight"]


class VariantFormSet(BaseInlineFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if "template" in form.fields and self.instance.organization_id is not None:
            form.fields["template"].queryset = (
                form.fields["template"].queryset.filter(organization_id=self.instance.organization_id).order_by("name")
            )

    def clean(self) -> None:
        super().clean()
        campaign = self.instance
        for form in self.forms:
            template = getattr(form, "cleaned_data", {}).get("template")
            if template is None or self._should_delete_form(form):
                continue
            if template.organization_id != campaign.organization_id:
                form.add_error("template", "Choose one of the campaign's organization's templates.")
            elif template.channel != campaign.channel:
                form.add_error(
                    "template", f"This is a {template.channel} template; the campaign sends {campaign.channel}."
                )


class TestSendForm(forms.Form):
    """The addresses a campaign's test goes to, typed in; the service checks them and their number."""

    emails = forms.CharField(
        label="Send a test to",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="Email addresses, one per line or separated by commas.",
    )

    def addresses(self) -> list[str]:
        return [item for item in re.split(r"[\s,;]+", self.cleaned_data["emails"]) if item]


class MessageFilterForm(forms.Form):
    """The recipients list's filters: a status and the start of an address."""

    status = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    q = forms.CharField(required=False, max_length=254, label="Address")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from campaigns.models import MessageStatus

        self.fields["status"].choices = [("", "Any status"), *[(s.value, s.label) for s in MessageStatus]]
