"""The drip sequence endpoints as clients call them: configuration, state changes, enrollment,
stopping, stats and the sending policy; tenancy and roles on every route."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from campaigns import sending, sequences
from campaigns.models import (
    Campaign,
    CampaignKind,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    SendingPolicy,
    Sequence,
    SequenceStep,
    message_step,
)
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from contacts.tests.factories import ContactFactory
from tracking import services as tracking_services
from tracking.models import EventType
from tracking.records import EventRecord, hit_key

pytestmark = pytest.mark.django_db

SEQUENCES = "/api/v1/sequences/"
E = EnrollmentStatus
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def manager(member_client):
    client, _user, organization = member_client(Role.MANAGER)
    sends_from(organization)
    return client, organization


def email_templates(organization, count=3):
    return [EmailTemplateFactory(organization=organization, name=f"Step {i}") for i in range(1, count + 1)]


def steps_for(templates):
    return [
        {"order": i + 1, "delay": {"unit": "days", "value": 0 if i == 0 else 2}, "template": str(template.pk)}
        for i, template in enumerate(templates)
    ]


def sequence_body(organization, count=3, **extra):
    body = {
        "name": "Welcome",
        "channel": "email",
        "trigger": {"type": "api"},
        "settings": {},
        "steps": steps_for(email_templates(organization, count)),
    }
    body.update(extra)
    return body


def create(client, organization, count=3, **extra) -> dict:
    response = client.post(SEQUENCES, sequence_body(organization, count, **extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def active_sequence(client, organization, count=3, **extra) -> dict:
    created = create(client, organization, count, **extra)
    response = client.post(f"{SEQUENCES}{created['id']}/activate")
    assert response.status_code == 200, response.content
    return response.json()


def enroll(client, sequence_id, contacts):
    return client.post(
        f"{SEQUENCES}{sequence_id}/enroll", {"contact_ids": [str(c.public_id) for c in contacts]}, format="json"
    )


def sequence_rows():
    return (
        Sequence.objects.count(),
        SequenceStep.objects.count(),
        Campaign.objects.filter(kind=CampaignKind.SEQUENCE).count(),
    )


# --- configuration ---------------------------------------------------------------------------------------------


def test_create_a_three_step_sequence_and_read_it_back(manager):
    client, organization = manager
    templates = email_templates(organization)
    steps = steps_for(templates)
    steps[2]["condition"] = {"type": "not_opened_previous", "otherwise": "exit"}
    response = client.post(
        SEQUENCES,
        {
            "name": "Onboarding",
            "channel": "email",
            "trigger": {"type": "tag_added", "value": "trial"},
            "settings": {"max_new_per_day": 100},
            "steps": steps,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Onboarding"
    assert body["status"] == "draft"
    assert body["activated_at"] is None
    assert body["trigger"] == {"type": "tag_added", "value": "trial"}
    assert body["settings"] == {
        "stop_on_reply": True,
        "respect_business_hours": False,
        "max_new_per_day": 100,
        "allow_reentry": False,
    }
    assert body["steps"] == [
        {"order": 1, "delay": {"unit": "days", "value": 0}, "template": str(templates[0].pk), "condition": None},
        {"order": 2, "delay": {"unit": "days", "value": 2}, "template": str(templates[1].pk), "condition": None},
        {
            "order": 3,
            "delay": {"unit": "days", "value": 2},
            "template": str(templates[2].pk),
            "condition": {"type": "not_opened_previous", "otherwise": "exit"},
        },
    ]
    assert body["enrollments"] == {"active": 0, "completed": 0, "stopped": 0, "waiting": 0}
    sequence = Sequence.objects.get(pk=body["id"])
    assert (sequence.organization_id, sequence.campaign.kind) == (organization.pk, CampaignKind.SEQUENCE)
    assert body["campaign"] == str(sequence.campaign_id)
    assert list(sequence.steps.order_by("order").values_list("order", "delay_value")) == [(1, 0), (2, 2), (3, 2)]
    for path in (f"{SEQUENCES}{body['id']}", f"{SEQUENCES}{body['id']}/"):
        assert client.get(path).json() == body
    listed = client.get(SEQUENCES).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    # A trigger without a value reads back as null, and that round-trips.
    manual = create(client, organization, trigger={"type": "manual", "value": ""})
    assert manual["trigger"] == {"type": "manual", "value": None}
    again = client.patch(f"{SEQUENCES}{manual['id']}", {"trigger": manual["trigger"]}, format="json")
    assert again.status_code == 200, again.content


def test_patch_changes_what_is_given_and_replaces_the_steps(manager):
    client, organization = manager
    created = create(client, organization)
    response = client.patch(f"{SEQUENCES}{created['id']}", {"name": "Renamed"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"
    assert response.json()["steps"] == created["steps"]
    shorter = created["steps"][:2]
    shorter[1]["delay"] = {"unit": "hours", "value": 6}
    response = client.patch(
        f"{SEQUENCES}{created['id']}/", {"steps": shorter, "settings": {"allow_reentry": True}}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [step["delay"] for step in body["steps"]] == [{"unit": "days", "value": 0}, {"unit": "hours", "value": 6}]
    assert body["settings"]["allow_reentry"] is True
    assert SequenceStep.objects.filter(sequence_id=created["id"]).count() == 2


_DROP = object()  # a key to leave out of a step


def _step(index, **changes):
    """A change to the good steps: step `index` gets `changes`."""

    def make(organization, steps):
        steps = copy.deepcopy(steps)
        steps[index].update(changes)
        return {"steps": [{k: v for k, v in step.items() if v is not _DROP} for step in steps]}

    return make


def _sms_template(organization, steps):
    sms = EmailTemplateFactory(organization=organization, channel="sms", subject="", html_body="", text_body="Hi")
    return _step(0, template=str(sms.pk))(organization, steps)


def _foreign_template(organization, steps):
    return _step(2, template=str(EmailTemplateFactory().pk))(organization, steps)


def _fixed(value):
    return lambda organization, steps: value


BAD_INPUT = [
    ("unknown trigger type", _fixed({"trigger": {"type": "whenever"}}), "trigger.type"),
    ("trigger not an object", _fixed({"trigger": "manual"}), "trigger"),
    ("trigger null", _fixed({"trigger": None}), "trigger"),
    ("tag trigger without a tag", _fixed({"trigger": {"type": "tag_added"}}), "trigger.value"),
    ("event name not text", _fixed({"trigger": {"type": "custom_event", "value": ["a"]}}), "trigger.value"),
    ("unknown trigger key", _fixed({"trigger": {"type": "manual", "when": "now"}}), "trigger"),
    ("step without a template", _step(1, template=_DROP), "steps.1.template"),
    ("template of another channel", _sms_template, "steps.0.template"),
    ("template of another organization", _foreign_template, "steps.2.template"),
    ("template not an id", _step(0, template="not-an-id"), "steps.0.template"),
    ("template an object", _step(0, template={"id": 1}), "steps.0.template"),
    ("template a number", _step(1, template=12345), "steps.1.template"),
    ("later step without a delay", _step(1, delay={"unit": "days", "value": 0}), "steps.1.delay.value"),
    ("negative delay", _step(2, delay={"unit": "hours", "value": -3}), "steps.2.delay.value"),
    ("fractional delay", _step(1, delay={"unit": "days", "value": 1.5}), "steps.1.delay.value"),
    ("delay as text", _step(1, delay={"unit": "days", "value": "2"}), "steps.1.delay.value"),
    ("delay beyond any calendar", _step(1, delay={"unit": "weeks", "value": 10**30}), "steps.1.delay.value"),
    ("delay not an object", _step(1, delay="2 days"), "steps.1.delay"),
    ("unknown delay unit", _step(1, delay={"unit": "fortnights", "value": 1}), "steps.1.delay.unit"),
    ("gap in step order", _step(1, order=3), "steps.1.order"),
    ("order as text", _step(1, order="2"), "steps.1.order"),
    ("unknown step key", _step(0, wait=1), "steps.0"),
    ("condition on the first step", _step(0, condition={"type": "opened_previous"}), "steps.0.condition.type"),
    ("unknown condition type", _step(1, condition={"type": "read"}), "steps.1.condition.type"),
    ("condition not an object", _step(1, condition="opened"), "steps.1.condition"),
    ("bad condition rules", _step(1, condition={"rules": {"bogus": 1}}), "steps.1.condition.rules"),
    (
        "unknown otherwise",
        _step(1, condition={"type": "opened_previous", "otherwise": "stop"}),
        "steps.1.condition.otherwise",
    ),
    ("steps not a list", _fixed({"steps": {"1": "first"}}), "steps"),
    ("step not an object", _fixed({"steps": ["first"]}), "steps.0"),
    ("steps null", _fixed({"steps": None}), "steps"),
    ("unknown settings key", _fixed({"settings": {"throttle": 5}}), "settings"),
    ("settings not an object", _fixed({"settings": [1]}), "settings"),
    ("settings null", _fixed({"settings": None}), "settings"),
    ("daily cap as text", _fixed({"settings": {"max_new_per_day": "10"}}), "settings.max_new_per_day"),
    ("daily cap zero", _fixed({"settings": {"max_new_per_day": 0}}), "settings.max_new_per_day"),
    ("flag as text", _fixed({"settings": {"stop_on_reply": "yes"}}), "settings.stop_on_reply"),
    ("blank name", _fixed({"name": ""}), "name"),
    ("name an object", _fixed({"name": {"en": "Welcome"}}), "name"),
    ("unknown channel", _fixed({"channel": "fax"}), "channel"),
    ("channel a list", _fixed({"channel": ["email"]}), "channel"),
]


@pytest.mark.parametrize(("change", "field"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_on_create_is_400_naming_the_field_and_creates_nothing(manager, change, field):
    client, organization = manager
    body = sequence_body(organization)
    body.update(change(organization, body["steps"]))
    before = sequence_rows()
    response = client.post(SEQUENCES, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert sequence_rows() == before


@pytest.mark.parametrize(("change", "field"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_on_patch_is_400_naming_the_field_and_changes_nothing(manager, change, field):
    client, organization = manager
    created = create(client, organization)
    url = f"{SEQUENCES}{created['id']}"
    response = client.patch(url, change(organization, created["steps"]), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert client.get(url).json() == created


def test_a_name_is_required_to_create(manager):
    client, organization = manager
    body = sequence_body(organization)
    del body["name"]
    response = client.post(SEQUENCES, body, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    assert not Sequence.objects.exists()


def test_changing_the_channel_away_from_the_steps_templates_is_refused(manager):
    client, organization = manager
    created = create(client, organization)
    response = client.patch(f"{SEQUENCES}{created['id']}", {"channel": "sms"}, format="json")
    assert response.status_code == 400
    assert "channel" in response.json()
    assert Sequence.objects.get(pk=created["id"]).channel == "email"


def test_steps_that_active_enrollments_reached_cannot_be_removed(manager):
    client, organization = manager
    sequence = active_sequence(client, organization)
    contact = ContactFactory(organization=organization)
    assert enroll(client, sequence["id"], [contact]).status_code == 202
    now = timezone.now()
    sequences.enrollments_advance(now=now + timedelta(seconds=1))
    sequences.enrollments_advance(now=now + timedelta(days=2, minutes=1))
    assert Enrollment.objects.get(sequence_id=sequence["id"]).current_step == 2
    url = f"{SEQUENCES}{sequence['id']}"
    response = client.patch(url, {"steps": sequence["steps"][:1]}, format="json")
    assert response.status_code == 400
    assert "steps" in response.json()
    assert SequenceStep.objects.filter(sequence_id=sequence["id"]).count() == 3
    # Steps after the reached ones can be added (and edited).
    longer = [*sequence["steps"], {**sequence["steps"][2], "order": 4}]
    response = client.patch(url, {"steps": longer}, format="json")
    assert response.status_code == 200, response.content
    assert len(response.json()["steps"]) == 4


def test_list_filters_by_status_and_counts_enrollments_in_a_fixed_number_of_queries(
    manager, django_assert_max_num_queries
):
    client, organization = manager
    drafts = [create(client, organization) for _ in range(2)]
    running = [active_sequence(client, organization) for _ in range(3)]
    contacts = [ContactFactory(organization=organization) for _ in range(3)]
    for sequence in running:
        assert enroll(client, sequence["id"], contacts).status_code == 202
    first_enrollment = Enrollment.objects.filter(sequence_id=running[0]["id"]).first()
    assert client.post(f"/api/v1/enrollments/{first_enrollment.pk}/stop").status_code == 200

    with django_assert_max_num_queries(8):
        response = client.get(SEQUENCES, {"status": "active"})
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert set(rows) == {s["id"] for s in running}
    for sequence in running:
        # The list's counts (one query for the page) are the detail's (sequences.enrollment_counts).
        assert rows[sequence["id"]]["enrollments"] == client.get(f"{SEQUENCES}{sequence['id']}").json()["enrollments"]
    assert rows[running[0]["id"]]["enrollments"] == {"active": 2, "completed": 0, "stopped": 1, "waiting": 0}
    assert {row["id"] for row in client.get(f"{SEQUENCES}?status=draft").json()["results"]} == {s["id"] for s in drafts}
    bad = client.get(SEQUENCES, {"status": "sleeping"})
    assert bad.status_code == 400
    assert "status" in bad.json()


# --- state changes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"])
def test_activate_pause_archive_and_illegal_transitions_are_409(manager, slash):
    client, organization = manager
    created = create(client, organization)
    url = f"{SEQUENCES}{created['id']}"

    activated = client.post(f"{url}/activate{slash}")
    assert activated.status_code == 200, activated.content
    assert activated.json()["status"] == "active"
    assert activated.json()["activated_at"] is not None
    assert Campaign.objects.get(pk=created["campaign"]).status == "running"
    again = client.post(f"{url}/activate{slash}")
    assert again.status_code == 409
    assert "detail" in again.json()

    paused = client.post(f"{url}/pause{slash}")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert client.post(f"{url}/pause{slash}").status_code == 409
    assert client.delete(url).status_code == 409  # only drafts are deleted
    assert client.post(f"{url}/activate{slash}").json()["status"] == "active"

    archived = client.post(f"{url}/archive{slash}")
    assert (archived.status_code, archived.json()["status"]) == (200, "archived")
    for action in ("activate", "pause", "archive"):
        refused = client.post(f"{url}/{action}{slash}")
        assert refused.status_code == 409, action
        assert "detail" in refused.json()
    changed = client.patch(url, {"name": "Again"}, format="json")
    assert changed.status_code == 409
    assert Sequence.objects.get(pk=created["id"]).name == "Welcome"


def test_activating_without_steps_is_400_and_a_draft_is_deleted(manager):
    client, _organization = manager
    response = client.post(SEQUENCES, {"name": "Empty", "trigger": {"type": "manual"}}, format="json")
    assert response.status_code == 201, response.content
    empty = response.json()
    assert (empty["channel"], empty["steps"]) == ("email", [])
    refused = client.post(f"{SEQUENCES}{empty['id']}/activate")
    assert refused.status_code == 400
    assert "steps" in refused.json()
    assert Sequence.objects.get(pk=empty["id"]).status == "draft"
    assert client.delete(f"{SEQUENCES}{empty['id']}/").status_code == 204
    assert not Sequence.objects.filter(pk=empty["id"]).exists()
    assert not Campaign.objects.filter(pk=empty["campaign"]).exists()


# --- enrollment ------------------------------------------------------------------------------------------------


def test_enroll_is_202_with_skipped_reasons(manager):
    client, organization = manager
    sequence = active_sequence(client, organization)
    fine = [ContactFactory(organization=organization) for _ in range(2)]
    unsubscribed = ContactFactory(organization=organization, status="unsubscribed")

    response = enroll(client, sequence["id"], [*fine, unsubscribed])
    assert response.status_code == 202, response.content
    assert response.json() == {"enrolled": 2, "skipped": {"unsubscribed": 1}}

    newcomer = ContactFactory(organization=organization)
    response = client.post(
        f"{SEQUENCES}{sequence['id']}/enroll/",
        {"contact_ids": [str(fine[0].public_id), str(newcomer.public_id)]},
        format="json",
    )
    assert response.status_code == 202
    assert response.json() == {"enrolled": 1, "skipped": {"already_enrolled": 1}}
    assert set(Enrollment.objects.filter(sequence_id=sequence["id"]).values_list("contact_id", flat=True)) == {
        fine[0].pk,
        fine[1].pk,
        newcomer.pk,
    }


def test_enrolling_another_organizations_or_an_unknown_contact_is_404_and_enrolls_nobody(manager):
    client, organization = manager
    sequence = active_sequence(client, organization)
    mine = ContactFactory(organization=organization)
    stranger = ContactFactory()
    for ids in (
        [str(mine.public_id), str(stranger.public_id)],
        [str(mine.public_id), "not-a-contact-id"],
        [str(mine.public_id), "12345"],
        ["00000000-0000-0000-0000-000000000000"],
    ):
        response = client.post(f"{SEQUENCES}{sequence['id']}/enroll", {"contact_ids": ids}, format="json")
        assert response.status_code == 404, (ids, response.content)
        assert "detail" in response.json()
    assert not Enrollment.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contact_ids": []},
        {"contact_ids": "all"},
        {"contact_ids": {"id": 1}},
        {"contact_ids": [1, 2]},
        {"contact_ids": [None]},
        {"contact_ids": [{"id": "x"}]},
        {"contact_ids": [True]},
        {"contact_ids": ["a" * 65]},
    ],
)
def test_contact_ids_that_are_not_a_list_of_ids_are_400(manager, body):
    client, organization = manager
    sequence = active_sequence(client, organization)
    response = client.post(f"{SEQUENCES}{sequence['id']}/enroll", body, format="json")
    assert response.status_code == 400, response.content
    assert "contact_ids" in response.json()
    assert not Enrollment.objects.exists()


def test_enrolling_by_hand_needs_an_active_sequence_with_a_manual_or_api_trigger(manager):
    client, organization = manager
    contact = ContactFactory(organization=organization)
    draft = create(client, organization)
    assert enroll(client, draft["id"], [contact]).status_code == 409
    tagged = active_sequence(client, organization, trigger={"type": "tag_added", "value": "vip"})
    refused = enroll(client, tagged["id"], [contact])
    assert refused.status_code == 409
    assert "detail" in refused.json()
    assert not Enrollment.objects.exists()


def test_enrollments_list_filters_by_status_and_stop(manager, django_assert_max_num_queries):
    client, organization = manager
    sequence = active_sequence(client, organization)
    contacts = [ContactFactory(organization=organization) for _ in range(12)]
    assert enroll(client, sequence["id"], contacts).json()["enrolled"] == 12
    url = f"{SEQUENCES}{sequence['id']}/enrollments"

    with django_assert_max_num_queries(8):
        response = client.get(url)
    assert response.status_code == 200
    listed = response.json()
    assert listed["count"] == 12
    first = listed["results"][0]
    assert set(first) >= {
        "id",
        "contact",
        "status",
        "stop_reason",
        "current_step",
        "next_message_at",
        "entered_at",
        "exited_at",
    }
    assert first["contact"] == str(contacts[0].public_id)
    assert (first["status"], first["stop_reason"], first["current_step"], first["exited_at"]) == (
        "active",
        None,
        0,
        None,
    )
    assert first["next_message_at"] is not None

    stopped = client.post(f"/api/v1/enrollments/{first['id']}/stop")
    assert stopped.status_code == 200, stopped.content
    body = stopped.json()
    assert (body["id"], body["status"], body["stop_reason"]) == (first["id"], "stopped", "manual")
    assert body["exited_at"] is not None
    assert body["next_message_at"] is None
    again = client.post(f"/api/v1/enrollments/{first['id']}/stop/")
    assert again.status_code == 409
    assert "detail" in again.json()
    assert client.get(f"/api/v1/enrollments/{first['id']}").json() == body

    only_stopped = client.get(url, {"status": "stopped"}).json()
    assert [row["id"] for row in only_stopped["results"]] == [first["id"]]
    assert client.get(f"{url}/", {"status": "active"}).json()["count"] == 11
    paged = client.get(url, {"status": "active", "page_size": 5, "page": 3}).json()
    assert len(paged["results"]) == 1
    bad = client.get(url, {"status": "gone"})
    assert bad.status_code == 400
    assert "status" in bad.json()


def test_stats_count_each_steps_messages_and_stops(manager, mailoutbox, django_capture_on_commit_callbacks):
    client, organization = manager
    sequence = active_sequence(client, organization)
    opener, clicker, replier = (ContactFactory(organization=organization) for _ in range(3))
    assert enroll(client, sequence["id"], [opener, clicker, replier]).json()["enrolled"] == 3
    now = timezone.now()
    assert sequences.enrollments_advance(now=now + timedelta(seconds=1)).written == 3
    dispatched = sending.dispatch_due(now=now + timedelta(seconds=2))
    for ids, lease in dispatched.batches:
        sending.send_batch(message_ids=ids, lease=datetime.fromisoformat(lease))
    assert len(mailoutbox) == 3
    campaign_id = Sequence.objects.get(pk=sequence["id"]).campaign_id
    first_step = Message.objects.filter(campaign_id=campaign_id, step=message_step(1, 1))
    assert set(first_step.values_list("status", flat=True)) == {MessageStatus.SENT}
    message_of = dict(first_step.values_list("contact_id", "pk"))
    later = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        tracking_services.event_ingest_batch(
            records=[
                EventRecord(
                    type=kind,
                    occurred_at=later,
                    dedupe_key=hit_key(),
                    message_id=message_of[contact.pk],
                    user_agent=BROWSER,
                    method="GET",
                )
                for kind, contact in (
                    (EventType.OPENED, opener),
                    (EventType.OPENED, clicker),
                    (EventType.CLICKED, clicker),
                    (EventType.REPLIED, replier),
                )
            ]
        )

    response = client.get(f"{SEQUENCES}{sequence['id']}/stats")
    assert response.status_code == 200, response.content
    stats = response.json()
    assert stats["steps"] == [
        {"step": 1, "sent": 3, "opened": 2, "clicked": 1, "replied": 1, "stopped": 1},
        {"step": 2, "sent": 0, "opened": 0, "clicked": 0, "replied": 0, "stopped": 0},
        {"step": 3, "sent": 0, "opened": 0, "clicked": 0, "replied": 0, "stopped": 0},
    ]
    assert stats["enrollments"] == {"active": 2, "completed": 0, "stopped": 1, "waiting": 0}
    replied = client.get(f"{SEQUENCES}{sequence['id']}/enrollments/", {"status": "stopped"}).json()["results"]
    assert [(row["contact"], row["stop_reason"]) for row in replied] == [(str(replier.public_id), "replied")]


# --- tenancy and roles ---------------------------------------------------------------------------------------


def test_another_organizations_sequence_and_enrollment_ids_are_404_on_every_route(manager, member_client):
    client, organization = manager
    other_client, _user, other = member_client(Role.OWNER)
    sends_from(other)
    theirs = active_sequence(other_client, other)
    their_contact = ContactFactory(organization=other)
    assert enroll(other_client, theirs["id"], [their_contact]).status_code == 202
    enrollment = Enrollment.objects.get(sequence_id=theirs["id"])
    mine = ContactFactory(organization=organization)
    routes = [
        ("get", f"{SEQUENCES}{theirs['id']}", None),
        ("patch", f"{SEQUENCES}{theirs['id']}", {"name": "Mine now"}),
        ("delete", f"{SEQUENCES}{theirs['id']}", None),
        ("post", f"{SEQUENCES}{theirs['id']}/activate", None),
        ("post", f"{SEQUENCES}{theirs['id']}/pause", None),
        ("post", f"{SEQUENCES}{theirs['id']}/archive", None),
        ("post", f"{SEQUENCES}{theirs['id']}/enroll", {"contact_ids": [str(mine.public_id)]}),
        ("get", f"{SEQUENCES}{theirs['id']}/enrollments", None),
        ("get", f"{SEQUENCES}{theirs['id']}/stats", None),
        ("get", f"/api/v1/enrollments/{enrollment.pk}", None),
        ("post", f"/api/v1/enrollments/{enrollment.pk}/stop", None),
    ]
    for method, path, body in routes:
        for form in (path, f"{path}/"):
            response = getattr(client, method)(form, body, format="json")
            assert response.status_code == 404, (method, form, response.status_code)
            assert "detail" in response.json()
    assert client.get(SEQUENCES).json()["count"] == 0
    sequence = Sequence.objects.get(pk=theirs["id"])
    assert (sequence.name, sequence.status) == ("Welcome", "active")
    enrollment.refresh_from_db()
    assert enrollment.status == E.ACTIVE
    assert Enrollment.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/sequences/not-a-uuid"),
        ("post", "/api/v1/sequences/not-a-uuid/activate"),
        ("post", "/api/v1/enrollments/abc/stop"),
        ("post", f"/api/v1/enrollments/{'9' * 30}/stop"),
        ("get", f"/api/v1/enrollments/{'9' * 19}"),
    ],
)
def test_malformed_ids_are_json_404(manager, method, path):
    client, _organization = manager
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_viewer_reads_but_cannot_write(manager, member_client):
    client, organization = manager
    viewer, _user, _org = member_client(Role.VIEWER, organization)
    sequence = active_sequence(client, organization)
    contact = ContactFactory(organization=organization)
    assert enroll(client, sequence["id"], [contact]).status_code == 202
    enrollment = Enrollment.objects.get()
    url = f"{SEQUENCES}{sequence['id']}"
    for path in (SEQUENCES, url, f"{url}/enrollments", f"{url}/stats", f"/api/v1/enrollments/{enrollment.pk}"):
        assert viewer.get(path).status_code == 200, path
    writes = [
        ("post", SEQUENCES, sequence_body(organization)),
        ("patch", url, {"name": "Viewer's"}),
        ("delete", url, None),
        ("post", f"{url}/activate", None),
        ("post", f"{url}/pause", None),
        ("post", f"{url}/archive", None),
        ("post", f"{url}/enroll", {"contact_ids": [str(ContactFactory(organization=organization).public_id)]}),
        ("post", f"/api/v1/enrollments/{enrollment.pk}/stop", None),
    ]
    for method, path, body in writes:
        response = getattr(viewer, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.status_code)
    sequence_row = Sequence.objects.get(pk=sequence["id"])
    assert (Sequence.objects.count(), sequence_row.name, sequence_row.status) == (1, "Welcome", "active")
    assert list(Enrollment.objects.values_list("status", flat=True)) == [E.ACTIVE]


# --- sending policy ----------------------------------------------------------------------------------------------

POLICY = "/api/v1/sending-policy/"


def test_sending_policy_reads_the_default_and_owners_change_it(member_client):
    owner, _user, organization = member_client(Role.OWNER)
    default = owner.get("/api/v1/sending-policy")
    assert default.status_code == 200
    assert default.json() == {
        "window": None,
        "holidays": [],
        "frequency_cap": {"per_day": None, "per_week": None},
        "updated_at": None,
    }
    change = {
        "window": {"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "18:00"},
        "holidays": ["2026-12-25"],
        "frequency_cap": {"per_day": 2},
    }
    response = owner.patch(POLICY, change, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["window"] == change["window"]
    assert body["holidays"] == ["2026-12-25"]
    assert body["frequency_cap"] == {"per_day": 2, "per_week": None}
    assert body["updated_at"] is not None
    policy = SendingPolicy.objects.get(organization=organization)
    assert (policy.window, policy.frequency_cap) == (change["window"], {"per_day": 2})
    # PATCH keeps what is not given; a null window goes back to the default hours.
    response = owner.patch("/api/v1/sending-policy", {"window": None}, format="json")
    assert response.status_code == 200
    assert response.json()["window"] is None
    assert response.json()["frequency_cap"] == {"per_day": 2, "per_week": None}
    assert owner.get(POLICY).json() == response.json()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"window": {"days": [0, 1], "start": "25:00", "end": "17:00"}}, "window.start"),
        ({"window": {"days": [0], "start": "09:00", "end": "08:00"}}, "window.end"),
        ({"window": {"days": [7], "start": "09:00", "end": "17:00"}}, "window.days"),
        ({"window": {"days": "weekdays", "start": "09:00", "end": "17:00"}}, "window.days"),
        ({"window": "office hours"}, "window"),
        ({"holidays": ["Christmas"]}, "holidays"),
        ({"holidays": "2026-12-25"}, "holidays"),
        ({"frequency_cap": {"per_day": 0}}, "frequency_cap.per_day"),
        ({"frequency_cap": {"per_week": "3"}}, "frequency_cap.per_week"),
        ({"frequency_cap": {"per_hour": 1}}, "frequency_cap"),
        ({"frequency_cap": 5}, "frequency_cap"),
    ],
)
def test_a_bad_sending_policy_is_400_naming_the_field_and_changes_nothing(member_client, change, field):
    owner, _user, organization = member_client(Role.ADMIN)
    SendingPolicy.objects.create(
        organization=organization, window={"days": [0], "start": "09:00", "end": "12:00"}, frequency_cap={}
    )
    before = owner.get(POLICY).json()
    response = owner.patch(POLICY, change, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert owner.get(POLICY).json() == before


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER, Role.AGENT])
def test_only_owners_and_admins_change_the_sending_policy(member_client, role):
    client, _user, organization = member_client(role)
    assert client.get(POLICY).status_code == 200
    response = client.patch(POLICY, {"frequency_cap": {"per_day": 1}}, format="json")
    assert response.status_code == 403
    assert not SendingPolicy.objects.filter(organization=organization).exists()
