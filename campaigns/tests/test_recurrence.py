"""Recurring broadcasts: the rule, series launch, runs at their occurrences, pause/resume/cancel, the API."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Role
from campaigns import recurrence, sending, services, tasks
from campaigns.models import Campaign, Message, MessageStatus, SendingDomain
from campaigns.recurrence import RecurrenceError, parse, series_run_due
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, sends_from
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/campaigns/"
WEEKLY = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def manager(member_client):
    client, _, org = member_client(Role.MANAGER)
    sends_from(org, "news@mail.example.com")
    return client, org


@pytest.fixture
def vip(manager):
    _, org = manager
    tag = TagFactory(organization=org, name="vip")
    for _ in range(3):
        ContactFactory(organization=org, tags=[tag])
    return tag


def create(client, org, **extra):
    template = EmailTemplateFactory(organization=org)
    body = {"name": "Weekly news", "channel": "email", "template": str(template.pk), "audience": {"tags": ["vip"]}}
    body.update(extra)
    return client.post(CAMPAIGNS, body, format="json")


def launch_series(client, org, **extra) -> Campaign:
    created = create(client, org, **extra)
    assert created.status_code == 201, created.content
    launched = client.post(f"{CAMPAIGNS}{created.json()['id']}/launch")
    assert launched.status_code == 200, launched.content
    return Campaign.objects.get(pk=created.json()["id"])


def runs_of(series: Campaign) -> list[Campaign]:
    return list(Campaign.objects.filter(series=series).order_by("created_at"))


# --- the rule ---------------------------------------------------------------------------------------


def test_a_weekly_rule_keeps_its_local_hour_across_the_daylight_saving_change():
    rule = parse(WEEKLY, timezone_name="America/New_York", anchor=at("2027-03-03T12:00:00+00:00"))
    first = rule.first()
    assert first == at("2027-03-08T14:00:00+00:00")  # 09:00 EST
    second = rule.next_after(first)
    assert second == at("2027-03-15T13:00:00+00:00")  # 09:00 EDT: clocks moved on 14 March
    assert rule.next_after(at("2027-03-08T14:00:00.000001+00:00")) == second


def test_until_in_utc_is_read_as_that_instant():
    # 2027-03-22T13:30Z is 09:30 in New York: the run at 09:00 that day is the last one.
    rule = parse(
        WEEKLY + ";UNTIL=20270322T133000Z", timezone_name="America/New_York", anchor=at("2027-03-03T12:00:00+00:00")
    )
    assert rule.next_after(at("2027-03-15T13:00:00+00:00")) == at("2027-03-22T13:00:00+00:00")
    assert rule.next_after(at("2027-03-22T13:00:00+00:00")) is None


def test_two_runs_an_hour_apart_are_allowed_even_on_the_day_the_clocks_skip_an_hour():
    rule = parse(
        "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=0", timezone_name="America/New_York", anchor=at("2027-03-10T12:00:00+00:00")
    )
    assert rule.first() is not None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("FREQ=HOURLY;BYMINUTE=0,30", "less than an hour apart"),
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=0,15", "less than an hour apart"),
        ("FREQ=MINUTELY;INTERVAL=90", "at most hourly"),
        ("FREQ=WEEKLY;COUNT=-2", "COUNT"),
    ],
)
def test_the_rule_says_why_it_is_refused(text, reason):
    with pytest.raises(RecurrenceError, match=reason):
        parse(text, timezone_name="Europe/Amsterdam", anchor=at("2027-01-01T00:00:00+00:00"))


# --- validation through the API -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "not a rule",
        "BYDAY=MO;BYHOUR=9",  # no FREQ
        "FREQ=FORTNIGHTLY",
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;INTERVAL=30",
        "FREQ=HOURLY;BYMINUTE=0,20,40",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;BYHOUR=24",
        "FREQ=WEEKLY;UNTIL=20200101T000000Z",  # over before it starts
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # never happens
        "FREQ=WEEKLY;COUNT=0",
        "FREQ=WEEKLY;COUNT=3;UNTIL=20301231",
        "FREQ=WEEKLY;INTERVAL=0",
        "FREQ=WEEKLY;UNTIL=tomorrow",
        "DTSTART:20270101T090000\nRRULE:FREQ=DAILY",
        "FREQ=DAILY;FREQ=WEEKLY",
    ],
)
def test_a_bad_recurrence_is_400_naming_recurrence(manager, rule):
    client, org = manager
    response = create(client, org, recurrence=rule)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["recurrence"], response.json()
    assert not Campaign.objects.filter(organization=org).exists()


def test_an_ab_test_cannot_recur(manager):
    client, org = manager
    response = create(client, org, recurrence=WEEKLY, ab_test={"test_fraction": 0.2, "metric": "open_rate"})
    assert response.status_code == 400
    assert "A/B test cannot recur" in response.json()["recurrence"][0]


def test_a_rule_that_ran_out_before_launch_is_refused_at_launch(manager):
    client, org = manager
    created = create(client, org, recurrence="FREQ=DAILY;UNTIL=20990101").json()
    Campaign.objects.filter(pk=created["id"]).update(recurrence="FREQ=DAILY;UNTIL=20200101")
    response = client.post(f"{CAMPAIGNS}{created['id']}/launch")
    assert response.status_code == 400
    assert "no occurrence" in response.json()["recurrence"][0]
    assert Campaign.objects.get(pk=created["id"]).status == "draft"


# --- series and runs ------------------------------------------------------------------------------------


def test_launching_a_series_schedules_its_first_run_and_expands_nothing(
    manager, vip, django_capture_on_commit_callbacks
):
    client, org = manager
    created = create(client, org, recurrence=f"  {WEEKLY} ")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["recurrence"], body["series"], body["next_run_at"]) == (WEEKLY, None, None)
    with django_capture_on_commit_callbacks(execute=True):
        launched = client.post(f"{CAMPAIGNS}{body['id']}/launch").json()
    assert launched["status"] == "running"
    next_run = datetime.fromisoformat(launched["next_run_at"])
    local = next_run.astimezone(ZoneInfo(org.timezone))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)
    assert timezone.now() < next_run <= timezone.now() + timedelta(days=7)
    assert not Message.objects.filter(campaign_id=body["id"]).exists()
    assert Campaign.objects.get(pk=body["id"]).expanded_at is None


def test_a_weekly_series_in_new_york_runs_at_9_local_across_the_dst_change(
    manager, vip, django_capture_on_commit_callbacks
):
    client, org = manager
    org.timezone = "America/New_York"
    org.save(update_fields=["timezone"])
    schedule = {
        "start_at": "2027-03-03T12:00:00+00:00",
        "window": {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "17:00"},
    }
    series = launch_series(client, org, recurrence=WEEKLY, schedule=schedule, throttle={"max_per_hour": 500})
    assert series.status == "running"
    assert series.next_run_at == at("2027-03-08T14:00:00+00:00")

    assert series_run_due(now=at("2027-03-08T13:59:59+00:00")) == 0  # not yet
    with django_capture_on_commit_callbacks(execute=True):
        assert series_run_due(now=at("2027-03-08T14:00:20+00:00")) == 1
    series.refresh_from_db()
    assert series.next_run_at == at("2027-03-15T13:00:00+00:00")  # still 09:00 on the wall clock, now EDT
    [first] = runs_of(series)
    assert first.name == "Weekly news — 2027-03-08"
    assert first.status == "running"
    assert (first.recurrence, first.template_id, first.audience) == ("", series.template_id, series.audience)
    assert first.schedule == {"window": schedule["window"]}  # the start is the occurrence, not the series'
    assert first.throttle == {"max_per_hour": 500}
    assert Message.objects.filter(campaign=first).count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert series_run_due(now=at("2027-03-15T13:00:05+00:00")) == 1
    series.refresh_from_db()
    assert [run.name for run in runs_of(series)] == ["Weekly news — 2027-03-08", "Weekly news — 2027-03-15"]
    assert series.next_run_at == at("2027-03-22T13:00:00+00:00")
    assert series.status == "running"


def test_each_run_expands_the_audience_as_it_is_at_run_time(manager, vip, django_capture_on_commit_callbacks):
    client, org = manager
    series = launch_series(client, org, recurrence=WEEKLY, variables={"edition": "weekly"})
    with django_capture_on_commit_callbacks(execute=True):
        series_run_due(now=series.next_run_at)
    newcomer = ContactFactory(organization=org, tags=[vip])
    series.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        series_run_due(now=series.next_run_at)
    first, second = runs_of(series)
    assert Message.objects.filter(campaign=first).count() == 3
    assert Message.objects.filter(campaign=second).count() == 4
    assert Message.objects.filter(campaign=second, contact=newcomer).exists()
    assert not Message.objects.filter(campaign=first, contact=newcomer).exists()
    assert second.variables == {"edition": "weekly"}
    assert second.template_version is not None  # each run keeps the version it launched with

    listed = client.get(f"{CAMPAIGNS}{series.pk}/runs", {"page_size": 1})
    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert body["count"] == 2
    assert body["next"] is not None
    assert body["results"][0]["id"] == str(second.pk)
    assert body["results"][0]["series"] == str(series.pk)
    assert body["results"][0]["recipients"] == 4
    # The series' own figures stay empty: its runs carry the messages.
    stats = client.get(f"{CAMPAIGNS}{series.pk}/stats").json()
    assert stats["kpis"]["planned"] == 0
    assert stats["kpis"]["sent"] == 0
    assert not Message.objects.filter(campaign=series).exists()


def test_runs_list_reads_a_fixed_number_of_queries(manager, vip, django_assert_max_num_queries):
    client, org = manager
    series = launch_series(client, org, recurrence="FREQ=HOURLY")
    for hour in range(4):
        series_run_due(now=series.next_run_at + timedelta(hours=hour))
    assert len(runs_of(series)) == 4
    # Seven queries for four runs: one more per run (an N+1) would be eleven.
    with django_assert_max_num_queries(8):
        assert client.get(f"{CAMPAIGNS}{series.pk}/runs").json()["count"] == 4


def test_dispatch_never_completes_a_series_for_having_no_messages(manager, vip, django_capture_on_commit_callbacks):
    client, org = manager
    series = launch_series(client, org, recurrence=WEEKLY)
    with django_capture_on_commit_callbacks(execute=True):
        series_run_due(now=series.next_run_at)
    [run] = runs_of(series)
    Message.objects.filter(campaign=run).update(status=MessageStatus.SKIPPED)  # nothing left for the run
    result = sending.dispatch_due()
    assert result.completed == 1
    series.refresh_from_db()
    run.refresh_from_db()
    assert run.status == "completed"
    assert series.status == "running"
    assert series.next_run_at is not None


def test_pause_stops_new_runs_and_resume_recomputes_the_next_run_from_now(
    manager, vip, django_capture_on_commit_callbacks
):
    client, org = manager
    rule = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"
    series = launch_series(client, org, recurrence=rule)
    with django_capture_on_commit_callbacks(execute=True):
        series_run_due(now=series.next_run_at)
    [run] = runs_of(series)

    assert client.post(f"{CAMPAIGNS}{series.pk}/pause").json()["status"] == "paused"
    assert series_run_due(now=timezone.now() + timedelta(days=30)) == 0
    assert len(runs_of(series)) == 1
    run.refresh_from_db()
    assert run.status == "running"  # a run under way goes on

    # Paused for long: the stored next run lies in the past, and resuming must not make up for it.
    Campaign.objects.filter(pk=series.pk).update(next_run_at=timezone.now() - timedelta(days=3))
    before = timezone.now()
    resumed = client.post(f"{CAMPAIGNS}{series.pk}/resume").json()
    after = timezone.now()
    assert resumed["status"] == "running"
    zone = ZoneInfo(org.timezone)
    expected = set()
    for moment in (before, after):
        local = moment.astimezone(zone)
        nine = local.replace(hour=9, minute=0, second=0, microsecond=0)
        expected.add((nine if nine > local else nine + timedelta(days=1)).astimezone(UTC))
    assert datetime.fromisoformat(resumed["next_run_at"]) in expected
    assert series_run_due() == 0  # nothing due right after resuming
    assert len(runs_of(series)) == 1


def test_cancel_ends_the_series_and_leaves_its_runs_alone(manager, vip, django_capture_on_commit_callbacks):
    client, org = manager
    series = launch_series(client, org, recurrence=WEEKLY)
    with django_capture_on_commit_callbacks(execute=True):
        series_run_due(now=series.next_run_at)
    cancelled = client.post(f"{CAMPAIGNS}{series.pk}/cancel").json()
    assert (cancelled["status"], cancelled["next_run_at"]) == ("cancelled", None)
    assert series_run_due(now=timezone.now() + timedelta(days=60)) == 0
    [run] = runs_of(series)
    run.refresh_from_db()
    assert run.status == "running"
    assert client.post(f"{CAMPAIGNS}{series.pk}/resume").status_code == 409


def test_a_series_completes_when_its_rule_runs_out(manager, vip):
    client, org = manager
    series = launch_series(client, org, recurrence="FREQ=DAILY;COUNT=2")
    first_at = series.next_run_at
    assert series_run_due(now=first_at) == 1
    series.refresh_from_db()
    assert series.next_run_at == first_at + timedelta(days=1)
    assert series_run_due(now=series.next_run_at) == 1
    series.refresh_from_db()
    assert (series.status, series.next_run_at) == ("completed", None)
    assert series.completed_at is not None
    assert series_run_due(now=first_at + timedelta(days=30)) == 0
    assert len(runs_of(series)) == 2


def test_running_the_due_task_twice_for_one_occurrence_makes_one_run(manager, vip):
    client, org = manager
    series = launch_series(client, org, recurrence=WEEKLY)
    Campaign.objects.filter(pk=series.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    tasks.recurrence_due_task()
    tasks.recurrence_due_task()
    assert len(runs_of(series)) == 1
    series.refresh_from_db()
    assert series.next_run_at > timezone.now()


def test_a_crash_after_the_run_is_made_leaves_no_run_and_the_retry_makes_one(manager, vip, monkeypatch):
    client, org = manager
    series = launch_series(client, org, recurrence=WEEKLY)
    due = series.next_run_at
    real_launch = services.campaign_launch

    def launch_then_die(**kwargs):
        real_launch(**kwargs)
        raise RuntimeError("worker lost")

    monkeypatch.setattr(services, "campaign_launch", launch_then_die)
    assert series_run_due(now=due) == 0
    assert runs_of(series) == []
    series.refresh_from_db()
    assert series.next_run_at == due  # the occurrence is still to run

    monkeypatch.setattr(services, "campaign_launch", real_launch)
    assert series_run_due(now=due) == 1
    assert series_run_due(now=due) == 0
    assert len(runs_of(series)) == 1


def test_a_run_that_cannot_launch_stays_a_draft_and_pauses_the_series(manager, vip):
    client, org = manager
    series = launch_series(client, org, recurrence=WEEKLY)
    # The sender's domain lost its verification since the series was launched.
    SendingDomain.objects.filter(organization=org).update(status="pending")
    assert series_run_due(now=series.next_run_at) == 1
    [run] = runs_of(series)
    assert run.status == "draft"
    assert "mail.example.com" in run.status_reason
    series.refresh_from_db()
    assert series.status == "paused"
    assert "could not launch" in series.status_reason
    assert series_run_due(now=timezone.now() + timedelta(days=30)) == 0


def test_another_organizations_series_runs_are_404(manager, vip):
    client, _ = manager
    foreign = CampaignFactory(recurrence=WEEKLY)
    assert client.get(f"{CAMPAIGNS}{foreign.pk}/runs").status_code == 404
    assert client.get(f"{CAMPAIGNS}{foreign.pk}/runs/").status_code == 404


def test_only_a_broadcast_can_recur(manager):
    _, org = manager
    campaign = CampaignFactory(organization=org, recurrence=WEEKLY, kind="sequence")
    assert recurrence.recurrence_problems(campaign) == {"recurrence": ["Only a broadcast campaign can recur."]}
