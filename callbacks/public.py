"""The public callback form a campaign email links to (`{{ callback_url }}`); no login.

GET /callback/<token> shows a small form (reason, preferred time, urgency, phone
prefilled from the contact); POST records a request with source "public form" and
shows a thank-you page. A bad, forged or expired token, or a contact that no longer
exists, is a 404 and records nothing. POSTs are throttled per client address and per
token (CALLBACK_FORM_POSTS_PER_HOUR and CALLBACK_FORM_POSTS_PER_TOKEN_PER_HOUR).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from callbacks import services
from callbacks.models import CallbackSource, CallbackUrgency
from callbacks.tokens import BadToken, FormToken, read_token
from config.clientip import client_ip
from config.validation import check_date
from contacts.models import Contact

THROTTLE_WINDOW = 3600
LOCAL_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]


class PublicCallbackForm(forms.Form):
    phone = forms.CharField(max_length=40, label="Phone number", help_text="International format, e.g. +31612345678")
    reason = forms.CharField(
        required=False,
        max_length=2000,
        label="What would you like to talk about?",
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    urgency = forms.ChoiceField(choices=CallbackUrgency.choices, initial=CallbackUrgency.ANYTIME, label="How soon?")
    preferred_start = forms.DateTimeField(
        required=False,
        label="Call me from",
        input_formats=LOCAL_INPUT_FORMATS,
        validators=[check_date],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    preferred_end = forms.DateTimeField(
        required=False,
        label="until",
        input_formats=LOCAL_INPUT_FORMATS,
        validators=[check_date],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("preferred_start"), cleaned.get("preferred_end")
        if bool(start) != bool(end):
            raise ValidationError("Give both ends of the time window, or neither.")
        return cleaned


def _contact_for(token: str) -> tuple[FormToken, Contact]:
    try:
        data = read_token(token)
    except BadToken:
        raise Http404("This link is not valid.") from None
    contact = (
        Contact.objects.active()
        .select_related("organization")
        .filter(organization_id=data.organization_id, public_id=data.contact_public_id)
        .first()
    )
    if contact is None:
        raise Http404("This link is not valid.")
    return data, contact


def _over_limit(key: str, limit: int) -> bool:
    cache.add(key, 0, timeout=THROTTLE_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=THROTTLE_WINDOW)
        count = 1
    return count > limit


def _throttled(request: HttpRequest, token: str) -> bool:
    per_client = getattr(settings, "CALLBACK_FORM_POSTS_PER_HOUR", 20)
    per_token = getattr(settings, "CALLBACK_FORM_POSTS_PER_TOKEN_PER_HOUR", 5)
    client = client_ip(request)
    # Both counters move on every POST, so neither can be dodged by varying the other.
    over_client = _over_limit(f"callback-form:ip:{client}", per_client)
    over_token = _over_limit(f"callback-form:token:{token[-43:]}", per_token)
    return over_client or over_token


@require_http_methods(["GET", "HEAD", "POST"])
def callback_form(request: HttpRequest, token: str) -> HttpResponse:
    data, contact = _contact_for(token)
    organization = contact.organization
    tz_name = contact.timezone or organization.timezone
    context = {"organization": organization, "contact": contact, "timezone": tz_name}
    if request.method != "POST":
        form = PublicCallbackForm(initial={"phone": contact.phone or ""})
        return render(request, "callbacks/public_form.html", {**context, "form": form})

    if _throttled(request, token):
        return render(request, "callbacks/public_throttled.html", context, status=429)
    # Times typed in the form are the contact's local times.
    with timezone.override(ZoneInfo(tz_name)):
        form = PublicCallbackForm(request.POST)
        valid = form.is_valid()
    if valid:
        try:
            services.callback_create(
                organization=organization,
                contact=contact,
                phone=form.cleaned_data["phone"],
                reason=form.cleaned_data["reason"],
                urgency=form.cleaned_data["urgency"],
                preferred_start=form.cleaned_data["preferred_start"],
                preferred_end=form.cleaned_data["preferred_end"],
                campaign_id=data.campaign_id,
                source=CallbackSource.PUBLIC_FORM,
                by=None,
                # Signed by us when the email went out; the campaign may have been deleted since.
                verify_campaign=False,
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            return render(request, "callbacks/public_thanks.html", context)
    return render(request, "callbacks/public_form.html", {**context, "form": form}, status=400)
