"""The campaign admin as a marketer's workspace: widgets that build the API's JSON (and show it again),
no server error whatever is typed into any campaigns admin form, the organization's walls, and the
buttons (dry run, test send, launch, pause, resume, cancel, the recipients and resend) through the services."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignVariant,
    Message,
    MessageStatus,
    SendingDomain,
    SendingPolicy,
    Sequence,
)
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, SendingDomainFactory, sends_from
from campaigns.tests.test_sequence_admin import sequence_form, with_steps
from conftest import bearer_client
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory, TagFactory

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/admin/campaigns/campaign/"
NO_VARIANTS = {
    "variants-TOTAL_FORMS": "0",
    "variants-INITIAL_FORMS": "0",
    "variants-MIN_NUM_FORMS": "0",
    "variants-MAX_NUM_FORMS": "1000",
}


@pytest.fixture
def acme():
    """An organization with what a campaign is made of, each with a name a marketer knows."""
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    return {
        "org": organization,
        "newsletter": ContactListFactory(organization=organization, name="Newsletter"),
        "customers": ContactListFactory(organization=organization, name="Customers"),
        "vip": TagFactory(organization=organization, name="vip"),
        "blocked": TagFactory(organization=organization, name="blocked"),
        "segment": SegmentFactory(organization=organization, name="Amsterdam"),
        "domain": SendingDomainFactory(organization=organization, domain="mail.acme.test"),
        "pending": SendingDomainFactory(organization=organization, domain="news.acme.test", status="pending"),
        "main": EmailTemplateFactory(organization=organization, name="Spring"),
        "followup": EmailTemplateFactory(organization=organization, name="Reminder"),
        "variant_b": EmailTemplateFactory(organization=organization, name="Spring B"),
        "sms": EmailTemplateFactory(
            organization=organization, name="Text", channel="sms", html_body="", text_body="Hi"
        ),
    }


@pytest.fixture
def globex():
    organization = OrganizationFactory(name="Globex")
    return {
        "org": organization,
        "list": ContactListFactory(organization=organization, name="Globex list"),
        "tag": TagFactory(organization=organization, name="globex-tag"),
        "segment": SegmentFactory(organization=organization, name="Globex segment"),
        "domain": SendingDomainFactory(organization=organization, domain="mail.globex.test"),
        "template": EmailTemplateFactory(organization=organization, name="Globex template"),
    }


def staff(client, organization, role=Role.MANAGER):
    membership = MembershipFactory(organization=organization, role=role, user__is_staff=True)
    client.force_login(membership.user)
    return membership.user


def variants(*rows, saved=()):
    data = {
        "variants-TOTAL_FORMS": str(len(rows)),
        "variants-INITIAL_FORMS": str(len(saved)),
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"variants-{index}-{key}"] = str(value)
        if index < len(saved):
            data[f"variants-{index}-id"] = str(saved[index].pk)
            data[f"variants-{index}-campaign"] = str(saved[index].campaign_id)
    return data


def full_form(acme, **values) -> dict:
    """Every widget filled as a marketer would: names picked, dates and times typed, boxes ticked."""
    data = {
        "organization": str(acme["org"].pk),
        "name": "Spring sale",
        "channel": "email",
        "template": str(acme["main"].pk),
        "variables_text": "discount = 20%\ncode = SPRING",
        "audience_lists": [str(acme["customers"].pk), str(acme["newsletter"].pk)],
        "audience_tags": [str(acme["vip"].pk)],
        "audience_segment": str(acme["segment"].pk),
        "exclude_tags": [str(acme["blocked"].pk)],
        "exclude_recent_days": "7",
        "start_date": "2030-03-04",
        "start_time": "09:30",
        "schedule_timezone": "Europe/Lisbon",
        "window_days": ["0", "1", "2", "3", "4"],
        "window_start": "08:00",
        "window_end": "17:00",
        "holidays": "2030-04-21\n2030-04-27, 2030-05-05",
        "recipient_timezone": "on",
        "per_domain_interval_minutes": "20",
        "max_per_hour": "500",
        "per_recipient_domain_per_minute": "",
        "domains": [str(acme["domain"].pk)],
        "followup_enabled": "on",
        "followup_days": "3",
        "followup_criterion": "not_clicked",
        "followup_template": str(acme["followup"].pk),
        "ab_enabled": "on",
        "ab_test_percent": "20",
        "ab_metric": "click_rate",
        "ab_wait_hours": "4",
        "ab_on_no_winner": "split",
        "budget": "250.00",
        **variants(
            {"name": "A", "template": acme["main"].pk, "weight": 1},
            {"name": "B", "template": acme["variant_b"].pk, "weight": 1},
        ),
    }
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


def api_body(acme) -> dict:
    """The same campaign as a REST client writes it."""
    return {
        "name": "Spring sale",
        "channel": "email",
        "template": str(acme["main"].pk),
        "variables": {"discount": "20%", "code": "SPRING"},
        "audience": {
            "lists": [str(acme["customers"].pk), str(acme["newsletter"].pk)],
            "tags": ["vip"],
            "segment": str(acme["segment"].pk),
            "exclude_tags": ["blocked"],
            "exclude_recent_days": 7,
        },
        "schedule": {
            "start_at": "2030-03-04T09:30:00+00:00",
            "timezone": "Europe/Lisbon",
            "window": {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "17:00"},
            "holidays": ["2030-04-21", "2030-04-27", "2030-05-05"],
            "recipient_timezone": True,
        },
        "throttle": {"per_domain_interval_minutes": 20, "max_per_hour": 500},
        "sending_domains": ["mail.acme.test"],
        "followup": {"enabled": True, "days": 3, "template": str(acme["followup"].pk), "criterion": "not_clicked"},
        "ab_test": {"test_fraction": 0.2, "metric": "click_rate", "wait_hours": 4, "on_no_winner": "split"},
        "budget": "250.00",
        "variants": [
            {"name": "A", "template": str(acme["main"].pk), "weight": 1},
            {"name": "B", "template": str(acme["variant_b"].pk), "weight": 1},
        ],
    }


STORED = ["variables", "audience", "schedule", "throttle", "sending_domains", "followup", "ab_test", "budget"]


def stored(campaign: Campaign) -> dict:
    campaign.refresh_from_db()
    shown = {name: getattr(campaign, name) for name in STORED}
    shown["template"] = campaign.template_id
    shown["variants"] = sorted(campaign.variants.values_list("name", "template_id", "weight"))
    return shown


def form_errors(response) -> dict:
    form = response.context["adminform"].form
    return {key: list(value) for key, value in form.errors.items()}


def widget_values(response) -> dict:
    form = response.context["adminform"].form
    return {name: form[name].value() for name in form.fields}


# --- the form ---------------------------------------------------------------------------------------------------


def test_a_campaign_made_with_the_widgets_is_stored_as_the_api_stores_it(client, acme):
    user = staff(client, acme["org"])
    response = client.post(f"{CAMPAIGNS}add/", full_form(acme))
    assert response.status_code == 302, form_errors(response)
    made = Campaign.objects.get(name="Spring sale")
    assert made.created_by == user

    api = bearer_client(user, acme["org"]).post("/api/v1/campaigns/", api_body(acme), format="json")
    assert api.status_code == 201, api.json()
    through_api = Campaign.objects.get(pk=api.json()["id"])

    assert stored(made) == stored(through_api)
    # What the widgets meant, in the API's words.
    assert made.schedule["start_at"] == "2030-03-04T09:30:00+00:00"  # 09:30 in Lisbon, which is UTC+0 in March
    assert made.audience["tags"] == ["vip"]
    assert made.ab_test == {"test_fraction": 0.2, "metric": "click_rate", "wait_hours": 4.0, "on_no_winner": "split"}


def test_an_empty_schedule_and_throttle_store_empty_objects_and_the_start_is_in_the_organizations_zone(client, acme):
    staff(client, acme["org"])
    values = {name: None for name in full_form(acme) if not name.startswith(("organization", "name", "channel"))}
    response = client.post(
        f"{CAMPAIGNS}add/",
        {
            **full_form(acme, **values),
            **NO_VARIANTS,
            "audience_tags": [str(acme["vip"].pk)],
            "start_date": "2030-07-01",
        },
    )
    assert response.status_code == 302, form_errors(response)
    made = Campaign.objects.get(name="Spring sale")
    assert (made.audience, made.throttle, made.sending_domains) == ({"tags": ["vip"]}, {}, [])
    assert (made.followup, made.ab_test, made.variables, made.budget) == ({}, {}, {}, None)
    assert made.schedule == {"start_at": "2030-07-01T00:00:00+02:00"}  # Amsterdam in summer


def test_editing_shows_the_stored_values_in_the_widgets_and_saving_keeps_them(client, acme):
    user = staff(client, acme["org"])
    created = bearer_client(user, acme["org"]).post("/api/v1/campaigns/", api_body(acme), format="json")
    campaign = Campaign.objects.get(pk=created.json()["id"])
    before = stored(campaign)

    page = client.get(f"{CAMPAIGNS}{campaign.pk}/change/")
    assert page.status_code == 200
    shown = widget_values(page)
    assert sorted(map(str, shown["audience_lists"])) == sorted([str(acme["customers"].pk), str(acme["newsletter"].pk)])
    assert [str(pk) for pk in shown["audience_tags"]] == [str(acme["vip"].pk)]
    assert str(shown["audience_segment"]) == str(acme["segment"].pk)
    assert [str(pk) for pk in shown["exclude_tags"]] == [str(acme["blocked"].pk)]
    assert shown["exclude_recent_days"] == 7
    assert (str(shown["start_date"]), str(shown["start_time"])) == ("2030-03-04", "09:30:00")
    assert shown["schedule_timezone"] == "Europe/Lisbon"
    assert shown["window_days"] == [0, 1, 2, 3, 4]
    assert (shown["window_start"], shown["window_end"]) == ("08:00", "17:00")
    assert shown["holidays"].split() == ["2030-04-21", "2030-04-27", "2030-05-05"]
    assert shown["recipient_timezone"] is True
    assert (shown["per_domain_interval_minutes"], shown["max_per_hour"]) == (20, 500)
    assert [str(pk) for pk in shown["domains"]] == [str(acme["domain"].pk)]
    assert (shown["followup_enabled"], shown["followup_days"], shown["followup_criterion"]) == (True, 3, "not_clicked")
    assert str(shown["followup_template"]) == str(acme["followup"].pk)
    assert shown["ab_enabled"] is True
    assert str(shown["ab_test_percent"]) == "20"
    assert (shown["ab_metric"], shown["ab_wait_hours"], shown["ab_on_no_winner"]) == ("click_rate", 4.0, "split")
    assert sorted(shown["variables_text"].splitlines()) == ["code = SPRING", "discount = 20%"]
    html = page.content.decode()
    assert ">Newsletter</option>" in html
    assert ">Amsterdam</option>" in html

    # The page posted back as shown changes nothing.
    data = {
        name: ([str(item) for item in value] if isinstance(value, list) else value)
        for name, value in shown.items()
        if value not in (None, False, "")
    }
    data = {key: str(value) if not isinstance(value, list) else value for key, value in data.items()}
    data.update({"start_date": "2030-03-04", "start_time": "09:30"})
    data.update(
        variants(
            *[{"name": v.name, "template": v.template_id, "weight": v.weight} for v in campaign.variants.all()],
            saved=list(campaign.variants.all()),
        )
    )
    response = client.post(f"{CAMPAIGNS}{campaign.pk}/change/", data)
    assert response.status_code == 302, form_errors(response)
    assert stored(campaign) == before


def test_what_the_widgets_cannot_show_is_said_and_typed_values_survive_a_save(client, acme):
    staff(client, acme["org"])
    campaign = CampaignFactory(
        organization=acme["org"],
        template=acme["main"],
        audience={"tags": ["VIP", "ghost"]},
        variables={"count": 3, "names": ["a", "b"], "greeting": "Hi"},
    )
    page = client.get(f"{CAMPAIGNS}{campaign.pk}/change/")
    shown = widget_values(page)
    assert [str(pk) for pk in shown["audience_tags"]] == [str(acme["vip"].pk)]  # found whatever its case
    assert "left out when saved: ghost." in page.content.decode()
    assert sorted(shown["variables_text"].splitlines()) == ["count = 3", "greeting = Hi", 'names = ["a", "b"]']

    data = full_form(
        acme,
        **{name: None for name in full_form(acme) if name.startswith(("audience", "exclude", "followup", "ab_"))},
    )
    data.update(NO_VARIANTS)
    data.update({"audience_tags": [str(acme["vip"].pk)], "variables_text": shown["variables_text"] + "\nextra = 4"})
    response = client.post(f"{CAMPAIGNS}{campaign.pk}/change/", data)
    assert response.status_code == 302, form_errors(response)
    campaign.refresh_from_db()
    assert campaign.variables == {"count": 3, "names": ["a", "b"], "greeting": "Hi", "extra": "4"}
    assert campaign.audience == {"tags": ["vip"]}


def test_a_launched_campaign_shows_its_settings_in_words(client, acme):
    staff(client, acme["org"])
    campaign = CampaignFactory(
        organization=acme["org"],
        status=CampaignStatus.RUNNING,
        audience={"lists": [str(acme["newsletter"].pk)], "tags": ["vip"]},
        schedule={"window": {"days": [0, 1], "start": "08:00", "end": "17:00"}},
        throttle={"max_per_hour": 100},
    )
    html = client.get(f"{CAMPAIGNS}{campaign.pk}/change/").content.decode()
    assert "lists: Newsletter; tags: vip" in html
    assert "Mon, Tue 08:00-17:00" in html
    assert "100 messages per hour at most" in html
    assert 'name="audience_lists"' not in html  # nothing to edit


# --- junk: a form error on the field, never a 500, nothing saved -----------------------------------------------

JUNK_PARSED = [
    ({"organization": "not-an-id"}, "organization"),
    ({"name": ""}, "name"),
    ({"name": "x" * 500}, "name"),
    ({"channel": "pigeon"}, "channel"),
    ({"template": "junk"}, "template"),
    ({"template": "00000000-0000-0000-0000-000000000000"}, "template"),
    ({"variables_text": "no equals sign"}, "variables_text"),
    ({"audience_lists": ["junk"]}, "audience_lists"),
    ({"audience_tags": ["junk"]}, "audience_tags"),
    ({"audience_segment": "junk"}, "audience_segment"),
    ({"exclude_tags": ["junk"]}, "exclude_tags"),
    ({"exclude_recent_days": "lots"}, "exclude_recent_days"),
    ({"exclude_recent_days": "99999999999999999999999999"}, "exclude_recent_days"),
    ({"start_date": "2030-13-45"}, "start_date"),
    ({"start_time": "25:61"}, "start_time"),
    ({"start_date": "", "start_time": "09:00"}, "start_date"),
    ({"schedule_timezone": "Mars/Olympus_Mons"}, "schedule_timezone"),
    ({"window_days": ["9"]}, "window_days"),
    ({"window_start": "noon"}, "window_start"),
    ({"window_end": ""}, "window_end"),
    ({"per_domain_interval_minutes": "often"}, "per_domain_interval_minutes"),
    ({"max_per_hour": "1e999"}, "max_per_hour"),
    ({"domains": ["junk"]}, "domains"),
    ({"followup_days": "soon"}, "followup_days"),
    ({"followup_template": "junk"}, "followup_template"),
    ({"followup_criterion": "never"}, "followup_criterion"),
    ({"ab_test_percent": "half"}, "ab_test_percent"),
    ({"ab_test_percent": "NaN"}, "ab_test_percent"),
    ({"ab_test_percent": "150"}, "ab_test_percent"),
    ({"ab_metric": "vibes"}, "ab_metric"),
    ({"ab_wait_hours": "inf"}, "ab_wait_hours"),
    ({"ab_on_no_winner": "coin"}, "ab_on_no_winner"),
    ({"budget": "-5"}, "budget"),
    ({"budget": "lots"}, "budget"),
    ({"budget": "1e30"}, "budget"),
]
# Typed well enough for the widgets, refused by the service: its dotted path names the widget.
JUNK_REFUSED = [
    ({"exclude_recent_days": "0"}, "exclude_recent_days"),  # audience.exclude_recent_days
    ({"start_date": "0001-01-01"}, "start_date"),  # schedule.start_at
    ({"start_date": "9999-12-31", "start_time": "23:59"}, "start_date"),
    ({"window_end": "24:00"}, "window_end"),
    ({"holidays": "christmas"}, "holidays"),  # schedule.holidays
    ({"holidays": "2030-02-30"}, "holidays"),
    ({"holidays": "0001-01-01"}, "holidays"),
    ({"per_domain_interval_minutes": "0"}, "per_domain_interval_minutes"),  # throttle.per_domain_interval_minutes
    ({"max_per_hour": "-3"}, "max_per_hour"),
    ({"per_recipient_domain_per_minute": "999999999999"}, "per_recipient_domain_per_minute"),
    ({"followup_days": "0"}, "followup_days"),  # followup.days
    ({"followup_days": ""}, "followup_days"),
    ({"followup_template": ""}, "followup_template"),  # followup.template
    ({"ab_test_percent": ""}, "ab_test_percent"),  # ab_test.test_fraction
    ({"ab_wait_hours": "-1"}, "ab_wait_hours"),  # ab_test.wait_hours
    ({"ab_wait_hours": "100000"}, "ab_wait_hours"),
]


@pytest.mark.parametrize(("values", "field"), JUNK_PARSED + JUNK_REFUSED)
def test_junk_in_the_add_form_is_an_error_on_its_widget(client, acme, values, field):
    staff(client, acme["org"])
    response = client.post(f"{CAMPAIGNS}add/", full_form(acme, **values))
    assert response.status_code == 200
    assert field in form_errors(response), form_errors(response)
    assert not Campaign.objects.exists()
    assert not CampaignVariant.objects.exists()


@pytest.mark.parametrize(("values", "field"), [(v, f) for v, f in JUNK_PARSED + JUNK_REFUSED if f != "organization"])
def test_junk_in_the_change_form_is_an_error_on_its_widget_and_changes_nothing(client, acme, values, field):
    user = staff(client, acme["org"])
    created = bearer_client(user, acme["org"]).post("/api/v1/campaigns/", api_body(acme), format="json")
    campaign = Campaign.objects.get(pk=created.json()["id"])
    before = stored(campaign)
    saved = list(campaign.variants.all())
    rows = [{"name": v.name, "template": v.template_id, "weight": v.weight} for v in saved]
    data = {**full_form(acme, **values), **variants(*rows, saved=saved)}
    response = client.post(f"{CAMPAIGNS}{campaign.pk}/change/", data)
    assert response.status_code == 200
    assert field in form_errors(response), form_errors(response)
    assert stored(campaign) == before


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"name": "", "template": "T", "weight": "1"}, "name"),
        ({"name": "A", "template": "junk", "weight": "1"}, "template"),
        ({"name": "A", "template": "SMS", "weight": "1"}, "template"),  # another channel
        ({"name": "A", "template": "T", "weight": "heavy"}, "weight"),
        ({"name": "A", "template": "T", "weight": "-1"}, "weight"),
        ({"name": "A", "template": "T", "weight": "99999999"}, "weight"),
        ({"name": "x" * 500, "template": "T", "weight": "1"}, "name"),
    ],
)
def test_junk_in_a_variant_row_is_an_error_on_the_row(client, acme, row, field):
    staff(client, acme["org"])
    named = {"T": acme["main"].pk, "SMS": acme["sms"].pk}
    row = {**row, "template": named.get(row["template"], row["template"])}
    data = {**full_form(acme, ab_enabled=None), **variants(row, {"name": "B", "template": acme["main"].pk})}
    data["variants-1-weight"] = "1"
    response = client.post(f"{CAMPAIGNS}add/", data)
    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    assert field in inline.formset.forms[0].errors, inline.formset.forms[0].errors
    assert not Campaign.objects.exists()


def test_two_variants_with_one_name_are_an_error_not_a_failure(client, acme):
    staff(client, acme["org"])
    rows = [{"name": "A", "template": acme["main"].pk, "weight": 1}] * 2
    response = client.post(f"{CAMPAIGNS}add/", {**full_form(acme), **variants(*rows)})
    assert response.status_code == 200
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    "values",
    [
        {"domain": "not a domain"},
        {"domain": "x" * 300},
        {"domain": "mail.acme.test"},  # already there
        {"domain": ""},
        {"organization": "junk", "domain": "ok.example.com"},
    ],
)
def test_junk_in_the_sending_domain_form_is_a_form_error(client, acme, values):
    staff(client, acme["org"], role=Role.ADMIN)
    count = SendingDomain.objects.count()
    response = client.post("/admin/campaigns/sendingdomain/add/", {"organization": str(acme["org"].pk), **values})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert SendingDomain.objects.count() == count


JUNK_SEQUENCE = {
    "organization": "junk",
    "name": "x" * 500,
    "channel": "pigeon",
    "trigger_type": "whenever",
    "trigger_value": "x" * 500,
    "max_new_per_day": "lots",
}
JUNK_STEP = {
    "order": "first",
    "delay_value": "-1",
    "delay_unit": "fortnights",
    "template": "junk",
    "condition_type": "maybe",
    "otherwise": "shrug",
    "condition_rules": "{not json",
}


def test_junk_in_every_sequence_and_policy_form_is_a_form_error(client, acme):
    user = staff(client, acme["org"], role=Role.ADMIN)
    for field, junk in JUNK_SEQUENCE.items():
        response = client.post("/admin/campaigns/sequence/add/", {**sequence_form(acme["org"]), field: junk})
        assert response.status_code == 200, field
        assert field in form_errors(response), (field, form_errors(response))
    assert not Sequence.objects.exists()

    made = client.post("/admin/campaigns/sequence/add/", sequence_form(acme["org"]))
    assert made.status_code == 302
    sequence = Sequence.objects.get()
    for field, junk in JUNK_STEP.items():
        step = {"template": str(acme["main"].pk), field: junk}
        if field == "condition_rules":
            step["condition_type"] = "rules"
        response = client.post(
            f"/admin/campaigns/sequence/{sequence.pk}/change/", with_steps(sequence_form(acme["org"]), [step])
        )
        assert response.status_code == 200, field
        [inline] = response.context["inline_admin_formsets"]
        assert inline.formset.forms[0].errors or inline.formset.non_form_errors(), field
        assert not sequence.steps.exists()

    policy = {"organization": str(acme["org"].pk)}
    for junk in (
        {"window_days": ["x"]},
        {"window_start": "noon", "window_end": "17:00"},
        {"holidays_text": "someday"},
        {"per_day": "many"},
        {"per_week": "-1"},
        {"organization": "junk"},
    ):
        response = client.post("/admin/campaigns/sendingpolicy/add/", {**policy, **junk})
        assert response.status_code == 200, junk
        assert response.context["adminform"].form.errors, junk
    assert not SendingPolicy.objects.exists()
    assert user.is_staff


# --- the organization's walls ------------------------------------------------------------------------------------


def test_another_organizations_rows_are_not_offered_and_forged_ids_are_errors(client, acme, globex):
    staff(client, acme["org"])
    page = client.get(f"{CAMPAIGNS}add/").content.decode()
    assert "Newsletter" in page
    assert "mail.acme.test" in page
    for name in ("Globex list", "globex-tag", "Globex segment", "mail.globex.test", "Globex template"):
        assert name not in page
    assert "news.acme.test" not in page  # not verified: not offered
    assert page.count("(Acme)") == 0  # one organization: names alone

    forged = [
        ({"audience_lists": [str(globex["list"].pk)]}, "audience_lists"),
        ({"audience_tags": [str(globex["tag"].pk)]}, "audience_tags"),
        ({"exclude_tags": [str(globex["tag"].pk)]}, "exclude_tags"),
        ({"audience_segment": str(globex["segment"].pk)}, "audience_segment"),
        ({"domains": [str(globex["domain"].pk)]}, "domains"),
        ({"domains": [str(acme["pending"].pk)]}, "domains"),
        ({"followup_template": str(globex["template"].pk)}, "followup_template"),
        ({"template": str(globex["template"].pk)}, "template"),
        ({"organization": str(globex["org"].pk)}, "organization"),
    ]
    for values, field in forged:
        response = client.post(f"{CAMPAIGNS}add/", full_form(acme, **values))
        assert response.status_code == 200, values
        assert field in form_errors(response), (values, form_errors(response))
    response = client.post(
        f"{CAMPAIGNS}add/", {**full_form(acme), **variants({"name": "A", "template": globex["template"].pk})}
    )
    assert response.status_code == 200
    assert not Campaign.objects.exists()


def test_a_superuser_picks_by_name_and_a_row_of_another_organization_is_an_error(client, acme, globex):
    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(f"{CAMPAIGNS}add/").content.decode()
    assert "Newsletter (Acme)" in page
    assert "Globex list (Globex)" in page
    response = client.post(f"{CAMPAIGNS}add/", full_form(acme, audience_lists=[str(globex["list"].pk)]))
    assert response.status_code == 200
    assert "audience_lists" in form_errors(response)
    response = client.post(f"{CAMPAIGNS}add/", {**full_form(acme, ab_enabled=None), **NO_VARIANTS})
    assert response.status_code == 302, form_errors(response)


def test_another_organizations_campaign_answers_404_on_every_page(client, acme, globex):
    staff(client, acme["org"])
    theirs = CampaignFactory(organization=globex["org"])
    message = Message.objects.create(
        organization=globex["org"],
        campaign=theirs,
        contact=ContactFactory(organization=globex["org"]),
        to_address="x@example.com",
        status=MessageStatus.FAILED,
    )
    for suffix in ("change/", "dry-run/", "test-send/", "figures/", "recipients/", "status/launch/"):
        assert client.get(f"{CAMPAIGNS}{theirs.pk}/{suffix}").status_code == 404, suffix
    assert client.post(f"{CAMPAIGNS}{theirs.pk}/status/launch/").status_code == 404
    assert client.post(f"{CAMPAIGNS}{theirs.pk}/recipients/{message.pk}/resend/").status_code == 404
    theirs.refresh_from_db()
    message.refresh_from_db()
    assert (theirs.status, message.status) == (CampaignStatus.DRAFT, MessageStatus.FAILED)


# --- the workspace ---------------------------------------------------------------------------------------------


@pytest.fixture
def ready(client, acme):
    """A draft of Acme's that can be launched: three VIP contacts, one of them left out by a tag."""
    sends_from(acme["org"], "news@mail.acme.test")
    for index in range(3):
        tags = [acme["vip"], acme["blocked"]] if index == 2 else [acme["vip"]]
        ContactFactory(organization=acme["org"], email=f"vip{index}@example.org", tags=tags)
    campaign = CampaignFactory(
        organization=acme["org"],
        name="Autumn",
        template=acme["main"],
        audience={"tags": ["vip"], "exclude_tags": ["blocked"]},
        schedule={"start_at": "2030-03-04T09:00:00+01:00", "window": {"start": "08:00", "end": "17:00"}},
        throttle={"per_domain_interval_minutes": 300},
    )
    user = staff(client, acme["org"])
    return client, campaign, user


def url(campaign, name, *args):
    return reverse(f"admin:campaigns_campaign_{name}", args=[campaign.pk, *args])


def test_the_dry_run_page_is_a_table_and_a_chart_and_writes_nothing(ready):
    client, campaign, _ = ready
    page = client.get(url(campaign, "change")).content.decode()
    assert f'href="{url(campaign, "dry_run")}"' in page
    assert f'href="{url(campaign, "status", "launch")}"' in page

    response = client.get(url(campaign, "dry_run"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<td class="num dry-run-recipients">2</td>' in html
    assert "2030-03-04 09:00 (Europe/Amsterdam)" in html  # first send, local
    assert "2030-03-04 14:00 (Europe/Amsterdam)" in html  # last send: 5 hours later on one domain
    assert '<td>has a tag left out</td><td class="num">1</td>' in html
    assert '<td>2030-03-04</td><td class="num">2</td>' in html
    assert "<svg" in html
    assert "Messages planned per day" in html
    assert "mail.acme.test" in html
    assert not Message.objects.exists()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_a_dry_run_of_a_broken_campaign_says_why(client, acme):
    staff(client, acme["org"])
    campaign = CampaignFactory(organization=acme["org"], audience={"segment": "00000000-0000-0000-0000-000000000000"})
    response = client.get(url(campaign, "dry_run"))
    assert response.status_code == 200
    assert "Segment: Unknown segment id." in response.content.decode()


def test_launch_asks_first_with_the_recipients_and_send_times_then_pause_resume_cancel(
    ready, django_capture_on_commit_callbacks
):
    client, campaign, _ = ready
    asked = client.get(url(campaign, "status", "launch"))
    html = asked.content.decode()
    assert '<td class="num dry-run-recipients">2</td>' in html
    assert "2030-03-04 09:00 (Europe/Amsterdam)" in html
    assert "2030-03-04 14:00 (Europe/Amsterdam)" in html
    assert 'value="Yes, launch it"' in html
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT  # asking changed nothing

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url(campaign, "status", "launch"), follow=True)
    assert "Autumn: launched." in done.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert Message.objects.filter(campaign=campaign).count() == 2
    page = client.get(url(campaign, "change")).content.decode()
    assert f'href="{url(campaign, "status", "pause")}"' in page
    assert f'href="{url(campaign, "status", "launch")}"' not in page
    figures = client.get(url(campaign, "figures")).content.decode()
    assert 'data-live="1"' in figures
    assert '<td class="figure-recipients">2</td>' in figures

    assert (
        'the <strong class="confirm-count">2</strong> queued messages'
        in client.get(url(campaign, "status", "pause")).content.decode()
    )
    client.post(url(campaign, "status", "pause"))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    again = client.post(url(campaign, "status", "pause"), follow=True).content.decode()
    assert "cannot become paused" in again  # the service's refusal, as a message
    client.post(url(campaign, "status", "resume"))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    client.post(url(campaign, "status", "cancel"))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED
    assert set(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {MessageStatus.CANCELLED}
    assert client.get(url(campaign, "status", "explode")).status_code == 404


def test_a_launch_the_service_refuses_shows_why_and_offers_no_confirmation(client, acme):
    staff(client, acme["org"])
    campaign = CampaignFactory(organization=acme["org"], audience={})
    asked = client.get(url(campaign, "status", "launch")).content.decode()
    assert 'value="Yes, launch it"' not in asked
    refused = client.post(url(campaign, "status", "launch"), follow=True).content.decode()
    assert "Choose at least one list, tag or segment." in refused
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_a_test_send_takes_typed_addresses_and_shows_the_services_refusal(
    ready, mailoutbox, django_capture_on_commit_callbacks
):
    client, campaign, _ = ready
    bad = client.post(url(campaign, "test_send"), {"emails": "me@example.org, not-an-address"})
    assert bad.status_code == 200
    assert bad.context["form"].errors == {"emails": ["'not-an-address' is not a valid email address."]}
    empty = client.post(url(campaign, "test_send"), {"emails": ""})
    assert empty.status_code == 200
    assert "This field is required." in empty.content.decode()
    assert not mailoutbox
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(url(campaign, "test_send"), {"emails": "me@example.org\nyou@example.org"}, follow=True)
    assert "a test is on its way to me@example.org, you@example.org" in sent.content.decode()
    assert sorted(message.to[0] for message in mailoutbox) == ["me@example.org", "you@example.org"]


def test_recipients_are_filtered_searched_paged_and_failed_ones_resent(ready):
    client, campaign, _ = ready
    campaign.status = CampaignStatus.COMPLETED
    campaign.save()
    org = campaign.organization
    rows = []
    for index in range(105):
        status = MessageStatus.FAILED if index < 3 else MessageStatus.SENT
        rows.append(
            Message(
                organization=org,
                campaign=campaign,
                contact=ContactFactory(organization=org),
                to_address=f"person{index:03d}@example.org",
                status=status,
                last_error="550 mailbox unavailable" if status == MessageStatus.FAILED else "",
            )
        )
    Message.objects.bulk_create(rows)

    listing = client.get(url(campaign, "recipients"))
    assert listing.status_code == 200
    assert "105 messages" in listing.content.decode()
    assert len(listing.context["messages_shown"]) == 100
    second = client.get(url(campaign, "recipients"), {"page": "2"})
    assert len(second.context["messages_shown"]) == 5
    failed = client.get(url(campaign, "recipients"), {"status": str(MessageStatus.FAILED)})
    assert [row["message"].to_address for row in failed.context["messages_shown"]] == [
        "person000@example.org",
        "person001@example.org",
        "person002@example.org",
    ]
    assert all(row["resend_url"] for row in failed.context["messages_shown"])
    found = client.get(url(campaign, "recipients"), {"q": "PERSON10"})
    assert [row["message"].to_address for row in found.context["messages_shown"]] == [
        f"person{index}@example.org" for index in range(100, 105)
    ]
    assert not any(row["resend_url"] for row in found.context["messages_shown"])  # sent ones are not resent
    junk = client.get(url(campaign, "recipients"), {"status": "lots", "page": "many"})
    assert junk.status_code == 200

    first = Message.objects.get(to_address="person000@example.org")
    done = client.post(url(campaign, "resend", first.pk), {"next": "https://evil.example/"})
    assert done.status_code == 302
    assert done["Location"] == url(campaign, "recipients")
    first.refresh_from_db()
    campaign.refresh_from_db()
    assert first.status == MessageStatus.QUEUED
    assert campaign.status == CampaignStatus.RUNNING  # reopened by the service to send it
    sent = Message.objects.get(to_address="person050@example.org")
    refused = client.post(url(campaign, "resend", sent.pk), follow=True).content.decode()
    assert "Only a failed or unknown message can be resent." in refused
    assert client.get(url(campaign, "resend", first.pk)).status_code == 405


def test_a_viewer_sees_the_workspace_but_cannot_act(client, acme):
    campaign = CampaignFactory(organization=acme["org"], status=CampaignStatus.RUNNING)
    staff(client, acme["org"], role=Role.VIEWER)
    page = client.get(url(campaign, "change")).content.decode()
    assert "campaign-figures" in page
    assert url(campaign, "status", "pause") not in page
    assert client.get(url(campaign, "status", "pause")).status_code == 403
    assert client.post(url(campaign, "status", "pause")).status_code == 403
    assert client.get(url(campaign, "recipients")).status_code == 200
    assert client.get(url(campaign, "figures")).status_code == 200
    assert client.get(url(campaign, "dry_run")).status_code == 403  # as in the API: for those who may launch
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
