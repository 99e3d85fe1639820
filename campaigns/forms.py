"""Admin forms for drip sequences, the sending policy and an A/B test's winner: real widgets for what
the API takes as JSON.

The forms only collect input and turn it into the arguments of `campaigns.sequences` services, which
validate it. What a service refuses comes back as a `Refusal`: its dotted error paths
("steps.1.delay.value", "settings.max_new_per_day", "window.start") placed on the fields they name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.models import BaseInlineFormSet

from campaigns import sequences
from campaigns.models import Campaign, CampaignVariant, SendingPolicy, Sequence, SequenceStep
from config.errors import DomainError

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
