"""Drip sequences, enrollments and the sending policy in the admin: plain widgets, the services' rules,
their refusals on the fields they name, and the organization's walls."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from campaigns import sequences
from campaigns.models import (
    CampaignKind,
    Enrollment,
    EnrollmentStatus,
    SendingPolicy,
    Sequence,
    SequenceStatus,
    StopReason,
)
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory
from campaigns.tests.test_sequences import make_sequence
from contacts.models import Contact
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

SEQUENCES = "/admin/campaigns/sequence/"
ENROLLMENTS = "/admin/campaigns/enrollment/"
POLICIES = "/admin/campaigns/sendingpolicy/"
STEP_DEFAULTS = {
    "order": "",
    "delay_value": "0",
    "delay_unit": "days",
    "template": "",
    "condition_type": "",
    "otherwise": "skip",
    "condition_rules": "",
}


def staff(client, role=Role.MANAGER, organization=None):
    extra = {"organization": organization} if organization is not None else {}
    membership = MembershipFactory(role=role, user__is_staff=True, **extra)
    client.force_login(membership.user)
    return membership.organization


@pytest.fixture
def marketer(client):
    return client, staff(client, organization=OrganizationFactory(name="Acme"))


@pytest.fixture
def org_admin(client):
    """The sending policy is organization-wide: owners and admins change it."""
    return client, staff(client, role=Role.ADMIN, organization=OrganizationFactory(name="Acme"))


def sequence_form(organization=None, **values):
    data = {
        "name": "Welcome",
        "channel": "email",
        "trigger_type": "tag_added",
        "trigger_value": "vip",
        "stop_on_reply": "on",
        "max_new_per_day": "",
    }
    if organization is not None:
        data["organization"] = str(organization.pk)
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


def with_steps(data, rows, *, saved=()):
    """The form data plus the steps inline: `saved` are the rows' existing steps, in order."""
    data = {
        **data,
        "steps-TOTAL_FORMS": str(len(rows)),
        "steps-INITIAL_FORMS": str(len(saved)),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for key, value in {**STEP_DEFAULTS, **row}.items():
            if value is not None:
                data[f"steps-{index}-{key}"] = str(value)
        if index < len(saved):
            data[f"steps-{index}-id"] = str(saved[index].pk)
    return data


def email_templates(organization, *names):
    return [EmailTemplateFactory(organization=organization, name=name) for name in names]


def form_errors(response) -> dict:
    return {key: list(value) for key, value in response.context["adminform"].form.errors.items()}


def row_errors(response) -> list[dict]:
    [inline] = response.context["inline_admin_formsets"]
    return [{key: list(value) for key, value in form.errors.items()} for form in inline.formset.forms]


def step_errors(response) -> list[str]:
    [inline] = response.context["inline_admin_formsets"]
    return list(inline.formset.non_form_errors())


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- the form ---------------------------------------------------------------------------------------------------


def test_a_sequence_is_made_with_widgets_then_given_steps_in_the_order_typed(marketer):
    client, org = marketer
    welcome, tips, offer = email_templates(org, "Welcome", "Tips", "Offer")

    add_page = client.get(f"{SEQUENCES}add/")
    assert add_page.status_code == 200
    form = add_page.context["adminform"].form
    assert {"stop_on_reply", "respect_business_hours", "allow_reentry", "max_new_per_day"} <= set(form.fields)
    assert "settings" not in form.fields  # no JSON to type
    assert form.initial["organization"] == org.pk  # the only organization there is to pick

    created = client.post(
        f"{SEQUENCES}add/",
        sequence_form(org, stop_on_reply=None, allow_reentry="on", max_new_per_day="50", trigger_value=" VIP "),
    )
    sequence = Sequence.objects.get(name="Welcome")
    assert created.status_code == 302
    assert created["Location"].endswith(f"{SEQUENCES}{sequence.pk}/change/")  # on to the steps
    assert (sequence.trigger_type, sequence.trigger_value) == ("tag_added", "VIP")
    assert sequence.settings == {
        "stop_on_reply": False,
        "respect_business_hours": False,
        "max_new_per_day": 50,
        "allow_reentry": True,
    }
    assert sequence.campaign.kind == CampaignKind.SEQUENCE
    assert sequence.status == SequenceStatus.DRAFT

    page = client.get(f"{SEQUENCES}{sequence.pk}/change/")
    [inline] = page.context["inline_admin_formsets"]
    assert len(inline.formset.forms) == 3  # three empty rows to fill in
    # Rows typed out of order, the last one left empty: the steps are numbered by the order given.
    rows = [
        {"order": "3", "delay_value": "1", "delay_unit": "weeks", "template": offer.pk},
        {"order": "1", "delay_value": "0", "template": welcome.pk},
        {
            "order": "2",
            "delay_value": "36",
            "delay_unit": "hours",
            "template": tips.pk,
            "condition_type": "opened_previous",
            "otherwise": "exit",
        },
        {},
    ]
    saved = client.post(f"{SEQUENCES}{sequence.pk}/change/", with_steps(sequence_form(), rows))
    assert saved.status_code == 302, form_errors(saved) if saved.status_code == 200 else saved
    steps = list(sequence.steps.order_by("order").values_list("order", "template__name", "delay_value", "delay_unit"))
    assert steps == [(1, "Welcome", 0, "days"), (2, "Tips", 36, "hours"), (3, "Offer", 1, "weeks")]
    assert sequence.steps.get(order=2).condition == {"type": "opened_previous", "otherwise": "exit"}

    # The page shows the saved steps back in the widgets, and an attribute rule round-trips as JSON.
    saved_steps = list(sequence.steps.order_by("order"))
    rules = '{"all": [{"field": "attributes.city", "op": "eq", "value": "Utrecht"}]}'
    rows = [
        {"order": "1", "template": welcome.pk},
        {"order": "2", "delay_value": "36", "delay_unit": "hours", "template": tips.pk},
        {"order": "3", "delay_value": "1", "template": offer.pk, "condition_type": "rules", "condition_rules": rules},
    ]
    assert client.post(f"{SEQUENCES}{sequence.pk}/change/", with_steps(sequence_form(), rows, saved=saved_steps))[
        "Location"
    ].endswith(SEQUENCES)
    third = sequence.steps.get(order=3)
    assert third.condition == {
        "rules": {"all": [{"field": "attributes.city", "op": "eq", "value": "Utrecht"}]},
        "otherwise": "skip",
    }
    page = client.get(f"{SEQUENCES}{sequence.pk}/change/")
    [inline] = page.context["inline_admin_formsets"]
    third_form = next(form for form in inline.formset.forms if form.instance.pk == third.pk)
    assert third_form.initial["condition_type"] == "rules"
    assert '"Utrecht"' in third_form.initial["condition_rules"]

    # Deleting a row removes the step; the others are renumbered.
    saved_steps = list(sequence.steps.order_by("order"))
    rows = [
        {"order": "1", "template": welcome.pk},
        {"order": "2", "delay_value": "36", "delay_unit": "hours", "template": tips.pk, "DELETE": "on"},
        {"order": "3", "delay_value": "1", "template": offer.pk},
    ]
    client.post(f"{SEQUENCES}{sequence.pk}/change/", with_steps(sequence_form(), rows, saved=saved_steps))
    kept = list(sequence.steps.order_by("order").values_list("order", "template__name"))
    assert kept == [(1, "Welcome"), (2, "Offer")]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"trigger_type": "whenever"}, "trigger_type"),
        ({"trigger_type": "tag_added", "trigger_value": "   "}, "trigger_value"),  # the service's rule
        ({"trigger_type": "manual", "trigger_value": "vip"}, "trigger_value"),
        ({"trigger_type": "custom_event", "trigger_value": "message_replied"}, "trigger_value"),
        ({"trigger_value": "x" * 500}, "trigger_value"),
        ({"max_new_per_day": "lots"}, "max_new_per_day"),
        ({"max_new_per_day": "0"}, "max_new_per_day"),  # the service's rule
        ({"max_new_per_day": "99999999999999999999999"}, "max_new_per_day"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"channel": "pigeon"}, "channel"),
        ({"organization": "not-an-id"}, "organization"),
    ],
)
def test_junk_in_the_sequence_form_is_a_form_error(marketer, values, field):
    client, org = marketer
    response = client.post(f"{SEQUENCES}add/", {**sequence_form(org), **values})
    assert response.status_code == 200
    assert field in form_errors(response), form_errors(response)
    assert not Sequence.objects.exists()


def test_another_organization_cannot_be_picked(marketer):
    client, _org = marketer
    elsewhere = OrganizationFactory()
    response = client.post(f"{SEQUENCES}add/", sequence_form(elsewhere))
    assert response.status_code == 200
    assert "organization" in form_errors(response)
    assert not Sequence.objects.exists()


@pytest.fixture
def drafted(marketer):
    client, org = marketer
    welcome, tips = email_templates(org, "Welcome", "Tips")
    client.post(f"{SEQUENCES}add/", sequence_form(org))
    sequence = Sequence.objects.get()
    return client, sequence, welcome, tips


def test_junk_in_the_steps_is_an_error_on_its_row(drafted):
    client, sequence, welcome, tips = drafted
    org = sequence.organization
    other_org_template = EmailTemplateFactory(name="Not ours")
    sms = EmailTemplateFactory(organization=org, channel="sms", subject="", html_body="", text_body="Hi")
    url = f"{SEQUENCES}{sequence.pk}/change/"
    good = {"order": "1", "template": welcome.pk}
    cases = [
        # (rows, index of the row with the error, field) — rows are out of order on purpose where it matters
        ([{"order": "2", "delay_value": "0", "template": tips.pk}, good], 0, "delay_value"),  # steps.1.delay.value
        ([good, {"order": "2", "delay_value": "abc", "template": tips.pk}], 1, "delay_value"),
        ([good, {"order": "2", "delay_value": "-3", "template": tips.pk}], 1, "delay_value"),
        ([good, {"order": "2", "delay_value": "100000", "delay_unit": "weeks", "template": tips.pk}], 1, "delay_value"),
        ([good, {"order": "2", "delay_value": "1", "delay_unit": "fortnights", "template": tips.pk}], 1, "delay_unit"),
        ([good, {"order": "2", "delay_value": "1"}], 1, "template"),
        ([good, {"order": "2", "delay_value": "1", "template": other_org_template.pk}], 1, "template"),
        ([good, {"order": "2", "delay_value": "1", "template": sms.pk}], 1, "template"),
        ([good, {"order": "2", "delay_value": "1", "template": "not-an-id"}], 1, "template"),
        ([{**good, "condition_type": "opened_previous"}], 0, "condition_type"),  # steps.0.condition.type
        ([good, {"order": "2", "delay_value": 1, "template": tips.pk, "condition_type": "whim"}], 1, "condition_type"),
        ([good, {"order": "x", "delay_value": "1", "template": tips.pk}], 1, "order"),
        ([good, {"order": "2", "delay_value": "1", "template": tips.pk, "otherwise": "panic"}], 1, "otherwise"),
        (
            [good, {"order": "2", "delay_value": "1", "template": tips.pk, "condition_type": "rules"}],
            1,
            "condition_rules",
        ),
        (
            [
                good,
                {
                    "order": "2",
                    "delay_value": "1",
                    "template": tips.pk,
                    "condition_type": "rules",
                    "condition_rules": "{not json",
                },
            ],
            1,
            "condition_rules",
        ),
        (
            [
                good,
                {
                    "order": "2",
                    "delay_value": "1",
                    "template": tips.pk,
                    "condition_type": "rules",
                    "condition_rules": '{"bogus": 1}',
                },
            ],
            1,
            "condition_rules",  # steps.1.condition.rules, from the segment compiler
        ),
        ([good, {"order": "2", "delay_value": 1, "template": tips.pk, "condition_rules": "{}"}], 1, "condition_rules"),
    ]
    for rows, index, field in cases:
        response = client.post(url, with_steps(sequence_form(), rows))
        assert response.status_code == 200, (rows, response.status_code)
        errors = row_errors(response)
        assert field in errors[index], (rows, errors)
        assert b"errornote" in response.content
        assert not sequence.steps.exists()
    # The sequence's own fields were not changed by the refused saves.
    sequence.refresh_from_db()
    assert (sequence.name, sequence.trigger_value) == ("Welcome", "vip")


def test_tampered_or_stale_step_rows_are_errors_not_failures(drafted):
    client, sequence, welcome, tips = drafted
    url = f"{SEQUENCES}{sequence.pk}/change/"
    client.post(url, with_steps(sequence_form(), [{"order": "1", "template": welcome.pk}]))
    [step] = sequence.steps.all()
    stale = with_steps(sequence_form(), [{"order": "1", "template": tips.pk}], saved=[step])
    stale["steps-0-id"] = "01a23738-0000-7000-8000-000000000000"  # replaced meanwhile by another save
    response = client.post(url, stale)
    assert response.status_code == 200
    assert "id" in row_errors(response)[0]
    without_management = {
        key: value for key, value in with_steps(sequence_form(), [good_row(tips)]).items() if "FORMS" not in key
    }
    response = client.post(url, without_management)
    assert response.status_code == 200
    assert step_errors(response)
    assert list(sequence.steps.values_list("template_id", flat=True)) == [welcome.pk]


def good_row(template):
    return {"order": "1", "template": template.pk}


def test_the_form_and_the_steps_keep_what_was_typed_when_refused(drafted):
    client, sequence, welcome, tips = drafted
    rows = [{"order": "1", "template": welcome.pk}, {"order": "2", "delay_value": "0", "template": tips.pk}]
    response = client.post(
        f"{SEQUENCES}{sequence.pk}/change/", with_steps(sequence_form(name="Renamed", max_new_per_day="7"), rows)
    )
    assert response.status_code == 200
    assert "A later step needs a delay greater than 0." in row_errors(response)[1]["delay_value"]
    assert b'value="Renamed"' in response.content
    assert b'name="max_new_per_day" value="7"' in response.content
    sequence.refresh_from_db()
    assert sequence.name == "Welcome"


def test_steps_reached_by_enrollments_cannot_be_removed_and_the_reason_is_on_the_steps(marketer):
    client, org = marketer
    sequence = make_sequence(org, steps=2)
    contact = ContactFactory(organization=org)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    Enrollment.objects.filter(sequence=sequence).update(current_step=2)
    steps = list(sequence.steps.order_by("order"))
    rows = [
        {"order": "1", "template": steps[0].template_id},
        {"order": "2", "delay_value": "2", "template": steps[1].template_id, "DELETE": "on"},
    ]
    form = sequence_form(trigger_type="api", trigger_value="")
    response = client.post(f"{SEQUENCES}{sequence.pk}/change/", with_steps(form, rows, saved=steps))
    assert response.status_code == 200
    assert any("cannot be removed" in error for error in step_errors(response))
    assert sequence.steps.count() == 2


def test_template_choices_are_the_organizations_of_the_channel(drafted):
    client, sequence, _welcome, _tips = drafted
    EmailTemplateFactory(organization=sequence.organization, channel="sms", name="Text", html_body="", text_body="x")
    EmailTemplateFactory(name="Someone else's")
    page = client.get(f"{SEQUENCES}{sequence.pk}/change/")
    [inline] = page.context["inline_admin_formsets"]
    offered = {str(label) for _value, label in inline.formset.forms[0].fields["template"].choices if _value}
    assert offered == {"Welcome", "Tips"}


# --- status, stats, actions ---------------------------------------------------------------------------------


def test_status_buttons_go_through_the_services_and_a_refusal_is_a_message(drafted):
    client, sequence, welcome, tips = drafted
    status_url = f"{SEQUENCES}{sequence.pk}/activate/status/"
    page = client.get(f"{SEQUENCES}{sequence.pk}/change/")
    assert status_url.encode() in page.content

    refused = client.post(status_url, follow=True)
    assert any("at least one step" in text for text in page_messages(refused))
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT
    assert client.get(status_url).status_code == 405  # never on a GET

    rows = [{"order": "1", "template": welcome.pk}, {"order": "2", "delay_value": "2", "template": tips.pk}]
    client.post(f"{SEQUENCES}{sequence.pk}/change/", with_steps(sequence_form(), rows))
    done = client.post(status_url, follow=True)
    assert "Welcome: activated." in page_messages(done)
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.ACTIVE

    twice = client.post(status_url, follow=True)
    assert any("Only a draft or paused sequence can be activated" in text for text in page_messages(twice))

    client.post(f"{SEQUENCES}{sequence.pk}/pause/status/")
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.PAUSED
    assert client.post(f"{SEQUENCES}{sequence.pk}/explode/status/").status_code == 404


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries.captured_queries)


def test_list_actions_activate_pause_archive_and_counts(marketer):
    client, org = marketer
    first = make_sequence(org, steps=2, activate=False)
    second = make_sequence(org, steps=1)
    people = [ContactFactory(organization=org) for _ in range(3)]
    sequences.sequence_enroll(sequence=second, contact_ids=[p.pk for p in people])
    sequences.enrollment_stop(enrollment=Enrollment.objects.filter(sequence=second).first())

    listing = client.get(SEQUENCES)
    rows = [(row.active_n, row.completed_n, row.stopped_n) for row in listing.context["cl"].result_list]
    assert sorted(rows) == [(0, 0, 0), (2, 0, 1)]
    assert b'<td class="field-active_count">2</td>' in listing.content
    assert b"API" in listing.content
    # The counts come with the page's rows: more sequences, no more queries.
    before = queries_for(client, SEQUENCES)
    for _ in range(4):
        busy = make_sequence(org, steps=1)
        sequences.sequence_enroll(sequence=busy, contact_ids=[people[0].pk])
    assert queries_for(client, SEQUENCES) == before
    both = Sequence.objects.filter(pk__in=[first.pk, second.pk])

    selected = {"_selected_action": [str(first.pk), str(second.pk)]}
    response = client.post(SEQUENCES, {"action": "activate", **selected}, follow=True)
    texts = page_messages(response)
    assert f"{first.name}: activated." in texts
    assert any("Only a draft or paused sequence can be activated" in text for text in texts)  # the second one
    assert set(both.values_list("status", flat=True)) == {SequenceStatus.ACTIVE}

    client.post(SEQUENCES, {"action": "pause", "_selected_action": [str(first.pk)]})
    assert Sequence.objects.get(pk=first.pk).status == SequenceStatus.PAUSED
    client.post(SEQUENCES, {"action": "archive", **selected})
    assert set(both.values_list("status", flat=True)) == {SequenceStatus.ARCHIVED}
    assert set(Enrollment.objects.filter(sequence=second).values_list("status", "stop_reason")) == {
        (EnrollmentStatus.STOPPED, StopReason.MANUAL),
        (EnrollmentStatus.STOPPED, StopReason.ARCHIVED),
    }
    # An archived sequence is shown, not changed.
    page = client.get(f"{SEQUENCES}{second.pk}/change/")
    assert page.status_code == 200
    assert b"/status/" not in page.content
    assert b"stop on reply: yes" in page.content
    assert client.post(f"{SEQUENCES}{second.pk}/change/", sequence_form()).status_code == 403


def test_the_change_page_shows_stats_per_step_and_enrollment_counts(marketer):
    client, org = marketer
    sequence = make_sequence(org, steps=2)
    people = [ContactFactory(organization=org) for _ in range(3)]
    sequences.sequence_enroll(sequence=sequence, contact_ids=[p.pk for p in people])
    sequences.enrollments_advance(now=timezone.now() + timedelta(seconds=1))
    sequences.on_contact_event(
        organization_id=org.pk, name="message_replied", contacts=Contact.objects.filter(pk=people[0].pk), properties={}
    )
    page = client.get(f"{SEQUENCES}{sequence.pk}/change/")
    content = page.content.decode()
    assert '<table class="sequence-stats">' in content
    assert "<tr><td>1</td><td>Step 1</td><td>0</td><td>0</td><td>0</td><td>0</td><td>1</td></tr>" in content
    assert "<tr><td>2</td><td>Step 2</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td></tr>" in content
    assert f"sequence__id__exact={sequence.pk}&amp;status__exact=active" in content
    assert "Active: 2" in content
    assert "Stopped: 1" in content


def test_a_viewer_reads_but_changes_nothing(client):
    org = OrganizationFactory()
    sequence = make_sequence(org, steps=2, activate=False)
    staff(client, role=Role.VIEWER, organization=org)
    page = client.get(f"{SEQUENCES}{sequence.pk}/change/")
    assert page.status_code == 200
    assert b"/status/" not in page.content
    assert b"Always" in page.content  # the steps, shown as text
    assert client.post(f"{SEQUENCES}{sequence.pk}/activate/status/").status_code == 403
    assert client.post(SEQUENCES, {"action": "activate", "_selected_action": [str(sequence.pk)]}).status_code == 200
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT
    assert client.get(f"{SEQUENCES}add/").status_code == 403


def test_a_draft_is_deleted_through_the_service_with_its_campaign(drafted):
    client, sequence, _welcome, _tips = drafted
    campaign_id = sequence.campaign_id
    response = client.post(f"{SEQUENCES}{sequence.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Sequence.objects.exists()
    from campaigns.models import Campaign

    assert not Campaign.objects.filter(pk=campaign_id).exists()


def test_bulk_delete_of_a_live_sequence_is_refused_as_a_whole(marketer):
    client, org = marketer
    draft, live = make_sequence(org, steps=1, activate=False), make_sequence(org, steps=1)
    selected = {"action": "delete_selected", "_selected_action": [str(draft.pk), str(live.pk)]}
    confirm = client.post(SEQUENCES, selected)
    assert confirm.status_code == 200
    assert confirm.context["perms_lacking"] == {"sequence"}  # the live one: archive it instead
    assert client.post(SEQUENCES, {**selected, "post": "yes"}).status_code == 403
    assert Sequence.objects.filter(pk__in=[draft.pk, live.pk]).count() == 2
    client.post(SEQUENCES, {**selected, "_selected_action": [str(draft.pk)], "post": "yes"})
    assert list(Sequence.objects.values_list("pk", flat=True)) == [live.pk]


# --- scoping -----------------------------------------------------------------------------------------------------


def test_another_organizations_rows_are_not_found(marketer):
    client, org = marketer
    mine = make_sequence(org, steps=1)
    theirs = make_sequence(steps=1)
    stranger = ContactFactory(organization=theirs.organization, email="stranger@example.org")
    sequences.sequence_enroll(sequence=theirs, contact_ids=[stranger.pk])
    their_enrollment = Enrollment.objects.get(sequence=theirs)
    their_policy = SendingPolicy.objects.create(organization=theirs.organization)
    Sequence.objects.filter(pk=theirs.pk).update(name="Globex secret drip")

    assert client.get(f"{SEQUENCES}{theirs.pk}/change/").status_code == 404
    assert client.post(f"{SEQUENCES}{theirs.pk}/change/", sequence_form()).status_code == 404
    assert client.post(f"{SEQUENCES}{theirs.pk}/archive/status/").status_code == 404
    assert client.get(f"{ENROLLMENTS}{their_enrollment.pk}/change/").status_code == 404
    assert client.get(f"{POLICIES}{their_policy.pk}/change/").status_code == 404
    listing = client.get(SEQUENCES)
    assert [row.pk for row in listing.context["cl"].result_list] == [mine.pk]
    enrollments = client.get(ENROLLMENTS).content
    assert b"stranger@example.org" not in enrollments
    assert b"Globex secret drip" not in enrollments  # nor in the "By sequence" filter
    assert b"Globex secret drip" not in client.get(SEQUENCES).content
    # Actions only reach the organization's own rows.
    client.post(SEQUENCES, {"action": "archive", "_selected_action": [str(theirs.pk)]})
    client.post(ENROLLMENTS, {"action": "stop", "_selected_action": [str(their_enrollment.pk)]})
    theirs.refresh_from_db()
    their_enrollment.refresh_from_db()
    assert (theirs.status, their_enrollment.status) == (SequenceStatus.ACTIVE, EnrollmentStatus.ACTIVE)


def test_a_superuser_sees_every_organization(client):
    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    first, second = make_sequence(steps=1), make_sequence(steps=1)
    contact = ContactFactory(organization=second.organization)
    sequences.sequence_enroll(sequence=second, contact_ids=[contact.pk])
    policy = SendingPolicy.objects.create(organization=first.organization, frequency_cap={"per_week": 3})
    listing = client.get(SEQUENCES)
    assert {row.pk for row in listing.context["cl"].result_list} == {first.pk, second.pk}
    for url in (
        f"{SEQUENCES}add/",
        f"{SEQUENCES}{first.pk}/change/",
        ENROLLMENTS,
        f"{ENROLLMENTS}{Enrollment.objects.get().pk}/change/",
        POLICIES,
        f"{POLICIES}{policy.pk}/change/",
        f"{POLICIES}add/",
    ):
        assert client.get(url).status_code == 200, url
    assert b"3 a week" in client.get(POLICIES).content


def test_campaign_admin_does_not_list_sequence_campaigns(marketer):
    client, org = marketer
    sequence = make_sequence(org, steps=1)
    CampaignFactory(organization=org, name="Autumn broadcast")
    listing = client.get("/admin/campaigns/campaign/")
    names = [campaign.name for campaign in listing.context["cl"].result_list]
    assert names == ["Autumn broadcast"]
    assert client.get(f"/admin/campaigns/campaign/{sequence.campaign_id}/change/").status_code in (302, 404)


# --- enrollments ---------------------------------------------------------------------------------------------------


def test_enrollments_are_listed_filtered_searched_and_stopped(marketer):
    client, org = marketer
    sequence = make_sequence(org, steps=2)
    other = make_sequence(org, steps=1)
    ada = ContactFactory(organization=org, email="ada@example.org")
    bob = ContactFactory(organization=org, email="bob@example.org")
    sequences.sequence_enroll(sequence=sequence, contact_ids=[ada.pk, bob.pk])
    sequences.sequence_enroll(sequence=other, contact_ids=[ada.pk])
    ada_here = Enrollment.objects.get(sequence=sequence, contact=ada)

    def listed(query=""):
        response = client.get(f"{ENROLLMENTS}{query}")
        assert response.status_code == 200
        return sorted((str(e.contact), e.sequence_id) for e in response.context["cl"].result_list)

    assert len(listed()) == 3
    assert listed("?q=ada@") == sorted([("ada@example.org", sequence.pk), ("ada@example.org", other.pk)])
    assert listed(f"?sequence__id__exact={other.pk}") == [("ada@example.org", other.pk)]
    assert listed("?status__exact=stopped") == []
    assert client.get(f"{ENROLLMENTS}{ada_here.pk}/change/").status_code == 200
    assert client.post(f"{ENROLLMENTS}{ada_here.pk}/change/", {"note": "edited"}).status_code == 403

    stopped = client.post(ENROLLMENTS, {"action": "stop", "_selected_action": [str(ada_here.pk)]}, follow=True)
    assert "Stopped 1 enrollment(s)." in page_messages(stopped)
    ada_here.refresh_from_db()
    assert (ada_here.status, ada_here.stop_reason) == (EnrollmentStatus.STOPPED, StopReason.MANUAL)
    assert listed("?status__exact=stopped&stop_reason__exact=manual") == [("ada@example.org", sequence.pk)]

    again = client.post(ENROLLMENTS, {"action": "stop", "_selected_action": [str(ada_here.pk)]}, follow=True)
    assert any("Only an active enrollment can be stopped" in text for text in page_messages(again))
    assert client.get(f"{ENROLLMENTS}add/").status_code == 403


# --- the sending policy ----------------------------------------------------------------------------------------


def test_the_sending_policy_is_set_with_checkboxes_times_dates_and_numbers(org_admin):
    client, org = org_admin
    page = client.get(f"{POLICIES}add/")
    assert b'type="checkbox" name="window_days" value="5"' in page.content
    response = client.post(
        f"{POLICIES}add/",
        {
            "organization": str(org.pk),
            "window_days": ["0", "1", "2", "3", "4"],
            "window_start": "08:30",
            "window_end": "17:00",
            "holidays_text": "2026-12-25\n2026-12-26, 2027-01-01",
            "per_day": "2",
            "per_week": "",
        },
    )
    assert response.status_code == 302, form_errors(response)
    policy = SendingPolicy.objects.get(organization=org)
    assert policy.window == {"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "17:00"}
    assert policy.holidays == ["2026-12-25", "2026-12-26", "2027-01-01"]
    assert policy.frequency_cap == {"per_day": 2}
    assert sequences.sending_policy(org.pk).pk == policy.pk

    page = client.get(f"{POLICIES}{policy.pk}/change/")
    form = page.context["adminform"].form
    assert form.initial["window_days"] == [0, 1, 2, 3, 4]
    assert b"2026-12-26" in page.content
    # Everything empty again: the default hours and no cap.
    cleared = client.post(f"{POLICIES}{policy.pk}/change/", {"holidays_text": "", "per_day": ""})
    assert cleared.status_code == 302
    policy.refresh_from_db()
    assert (policy.window, policy.holidays, policy.frequency_cap) == ({}, [], {})
    # One policy per organization: a second one is a form error.
    second = client.post(f"{POLICIES}add/", {"organization": str(org.pk)})
    assert second.status_code == 200
    assert "organization" in form_errors(second)
    assert SendingPolicy.objects.count() == 1


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"holidays_text": "christmas"}, "holidays_text"),
        ({"holidays_text": "2026-02-30"}, "holidays_text"),
        ({"window_days": ["1"], "window_start": "17:00", "window_end": "09:00"}, "window_end"),
        ({"window_days": ["1"], "window_start": "25:00", "window_end": "09:00"}, "window_start"),
        ({"window_days": ["1"], "window_start": "09:00"}, "window_end"),
        ({"window_start": "09:00", "window_end": "17:00"}, "window_days"),
        ({"window_days": ["9"], "window_start": "09:00", "window_end": "17:00"}, "window_days"),
        ({"per_day": "0"}, "per_day"),
        ({"per_week": "5000"}, "per_week"),
        ({"per_week": "many"}, "per_week"),
    ],
)
def test_junk_in_the_sending_policy_is_a_form_error(org_admin, values, field):
    client, org = org_admin
    response = client.post(f"{POLICIES}add/", {"organization": str(org.pk), **values})
    assert response.status_code == 200
    assert field in form_errors(response), form_errors(response)
    assert not SendingPolicy.objects.exists()


def test_a_manager_reads_but_cannot_change_the_sending_policy(marketer):
    client, org = marketer
    assert client.get(f"{POLICIES}add/").status_code == 403
    response = client.post(f"{POLICIES}add/", {"organization": str(org.pk), "window_days": ["0"]})
    assert response.status_code == 403
    assert not SendingPolicy.objects.exists()
