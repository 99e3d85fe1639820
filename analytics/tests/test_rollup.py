"""The rollup against a direct count of the same raw rows, and its incremental behaviour."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from analytics import rollup
from analytics.models import COUNTERS, TOTALS, DailyStat, LinkDailyStat, RollupState
from analytics.selectors import report
from analytics.tests.test_rollup_builders import campaign, conversion, event, message, organization
from campaigns.models import MessageStatus
from tracking.models import EventType

pytestmark = pytest.mark.django_db
FIELDS = (*COUNTERS, *TOTALS)
M = MessageStatus
T = EventType
DISTINCT = {T.DELIVERED: "delivered", T.BOUNCED: "bounced", T.COMPLAINED: "complained"}
DISTINCT |= {T.UNSUBSCRIBED: "unsubscribed", T.REPLIED: "replied"}
ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]


def _zero() -> dict:
    return dict.fromkeys(FIELDS, 0) | {"revenue": Decimal("0.00")}


def _rows_by(rows: list[dict], keys: tuple[str, ...]) -> dict:
    return {tuple(row[k] for k in keys): {f: row[f] for f in FIELDS} for row in rows if any(row[f] for f in FIELDS)}


class World:
    """A random event stream over a few organizations, and the counts a person would make from it."""

    def __init__(self, seed: int, now: datetime):
        self.rng = random.Random(seed)
        self.now = now
        self.orgs = [organization(tz) for tz in self.rng.sample(ZONES, 3)]
        self.messages = {org.pk: [] for org in self.orgs}
        self.events = []
        self.conversions = []
        for org in self.orgs:
            self._fill(org)

    def moment(self) -> datetime:
        # Anywhere in the last twelve days, but settled (older than the rollup's safety margins).
        span = int(timedelta(days=12).total_seconds())
        return self.now - timedelta(hours=2) - timedelta(seconds=self.rng.randrange(span))

    def _fill(self, org) -> None:
        rng = self.rng
        campaigns = [campaign(org, variants=2), campaign(org, channel="sms")]
        for made in campaigns:
            variants = list(made.variants.all())
            for _ in range(8):
                status = rng.choice([M.SENT, M.DELIVERED, M.OPENED, M.CLICKED, M.BOUNCED, M.FAILED, M.QUEUED])
                sent_at = self.moment() if status >= M.SENT else None
                scheduled = self.moment() if status == M.FAILED else sent_at
                if status == M.QUEUED:
                    scheduled = self.now + timedelta(days=1)
                self.messages[org.pk].append(
                    message(
                        made,
                        sent_at=sent_at,
                        status=status,
                        step=rng.choice([0, 1]),
                        variant=rng.choice([None, *variants]),
                        sending_domain=rng.choice(["a.example.com", "b.example.com"]),
                        scheduled_at=scheduled,
                    )
                )
        firsts = set()
        types = [T.DELIVERED, T.OPENED, T.OPENED, T.CLICKED, T.BOUNCED, T.COMPLAINED, T.UNSUBSCRIBED, T.REPLIED]
        types += [T.SOFT_BOUNCED, T.QUEUED]
        for _ in range(70):
            sent = self.messages[org.pk]
            target = rng.choice(sent)
            kind = rng.choice(types)
            machine = kind in (T.OPENED, T.CLICKED) and rng.random() < 0.25
            unique = kind in (T.OPENED, T.CLICKED) and not machine and (target.pk, kind) not in firsts
            if unique:
                firsts.add((target.pk, kind))
            url = rng.choice(["https://shop.example.com/", "https://blog.example.com/a"]) if kind == T.CLICKED else ""
            self.events.append(event(target, kind, self.moment(), machine=machine, is_unique=unique, url=url))
        for _ in range(6):
            choice = rng.choice(["message", "campaign", "none"])
            target = rng.choice(self.messages[org.pk])
            value = f"{rng.randrange(1, 50000) / 100:.2f}"
            self.conversions.append(
                conversion(
                    org,
                    self.moment(),
                    value,
                    message=target if choice == "message" else None,
                    campaign=target.campaign if choice == "campaign" else None,
                )
            )

    def expected(self, org, keys: tuple[str, ...]) -> dict:
        """Counts per full dimension key, summed up to `keys` (like the report sums daily rows)."""
        tz = ZoneInfo(org.timezone)
        full: dict[tuple, dict] = defaultdict(_zero)
        distinct: dict[tuple, set] = defaultdict(set)
        channels = {m.campaign_id: m.campaign.channel for m in self.messages[org.pk]}

        def dims(day, m) -> tuple:
            return (day, m.campaign_id, m.step, m.variant_id, channels[m.campaign_id], m.sending_domain)

        for m in self.messages[org.pk]:
            if M.SENT <= m.status <= M.COMPLAINED and m.sent_at:
                full[dims(m.sent_at.astimezone(tz).date(), m)]["sent"] += 1
            if m.status == M.FAILED:
                full[dims((m.scheduled_at or m.created_at).astimezone(tz).date(), m)]["failed"] += 1
        for e in self.events:
            m = e.message
            if m.organization_id != org.pk:
                continue
            key = dims(e.occurred_at.astimezone(tz).date(), m)
            if e.type in DISTINCT:
                distinct[(key, DISTINCT[e.type])].add(m.pk)
            elif e.type in (T.OPENED, T.CLICKED):
                noun = "open" if e.type == T.OPENED else "click"
                if e.machine:
                    full[key][f"machine_{noun}s"] += 1
                else:
                    full[key][f"{noun}s"] += 1
                    full[key][str(e.type)] += int(e.is_unique)
        for (key, name), ids in distinct.items():
            full[key][name] += len(ids)
        for cv in self.conversions:
            if cv.organization_id != org.pk:
                continue
            day = cv.occurred_at.astimezone(tz).date()
            if cv.message is not None:
                key = dims(day, cv.message)
            else:
                channel = cv.campaign.channel if cv.campaign else ""
                key = (day, cv.campaign_id, 0, None, channel, "")
            full[key]["conversions"] += 1
            full[key]["revenue"] += cv.value
        names = ("date", "campaign", "step", "variant", "channel", "sending_domain")
        summed: dict[tuple, dict] = defaultdict(_zero)
        for key, counters in full.items():
            target = summed[tuple(key[names.index(k)] for k in keys)]
            for f in FIELDS:
                target[f] += counters[f]
        return {k: v for k, v in summed.items() if any(v.values())}


def _report(org, by):
    keys = tuple({"campaign": "campaign_id", "variant": "variant_id"}.get(k, k) for k in by)
    return _rows_by(report(organization_id=org.pk, by=by), keys)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_equals_a_direct_count_of_random_event_streams(seed):
    world = World(seed, timezone.now())
    groupings = [("date", "campaign", "variant"), ("date", "step", "channel", "sending_domain"), ()]

    # Nothing rolled up yet: every figure comes from the live tail.
    for org in world.orgs:
        for by in groupings:
            assert _report(org, by) == world.expected(org, by), (org.timezone, by)

    result = rollup.rollup_incremental()
    assert result["slices"] > 0
    for org in world.orgs:
        assert rollup.stale_days(org) == []  # so the figures below come from the rollup rows alone
        for by in groupings:
            assert _report(org, by) == world.expected(org, by), (org.timezone, by)
        # The rows themselves, read without the selectors.
        stored = defaultdict(_zero)
        for row in DailyStat.objects.filter(organization=org).values():
            for f in FIELDS:
                stored[(row["date"], row["campaign_id"], row["variant_id"])][f] += row[f]
        assert {k: v for k, v in stored.items() if any(v.values())} == world.expected(
            org, ("date", "campaign", "variant")
        )


def test_report_filters_by_date_range_and_campaign():
    world = World(7, timezone.now())
    rollup.rollup_incremental()
    org = world.orgs[0]
    expected = world.expected(org, ("date", "campaign"))
    days = sorted({key[0] for key in expected})
    first, last = days[1], days[-2]
    chosen = world.messages[org.pk][0].campaign_id
    rows = report(organization_id=org.pk, date_from=first, date_to=last, campaign_id=chosen, by=("date",))
    want = {(d,): v for (d, c), v in expected.items() if c == chosen and first <= d <= last}
    assert _rows_by(rows, ("date",)) == want
    assert all(first <= row["date"] <= last for row in rows)


def _snapshot():
    return sorted(
        (tuple(str(v) for k, v in row.items() if k != "id") for row in DailyStat.objects.values()),
    )


def test_running_twice_gives_the_same_rows_and_a_rebuild_too():
    World(11, timezone.now())
    rollup.rollup_incremental()
    first = _snapshot()
    links = sorted(LinkDailyStat.objects.values_list("date", "campaign_id", "url", "clicks", "unique_clicks"))
    rollup.rollup_incremental()
    assert _snapshot() == first
    today = timezone.now().date()
    rollup.rebuild(date_from=today - timedelta(days=14), date_to=today + timedelta(days=1))
    assert _snapshot() == first
    assert sorted(LinkDailyStat.objects.values_list("date", "campaign_id", "url", "clicks", "unique_clicks")) == links
    assert len(first) > 10


def test_a_late_event_for_an_old_day_rewrites_that_day_only():
    org = organization("Europe/Amsterdam")
    made = campaign(org)
    now = timezone.now()
    old, recent = now - timedelta(days=5), now - timedelta(days=2)
    first = message(made, sent_at=old)
    second = message(made, sent_at=recent)
    event(first, T.DELIVERED, old + timedelta(minutes=1))
    event(second, T.DELIVERED, recent + timedelta(minutes=1))
    rollup.rollup_incremental()
    tz = ZoneInfo(org.timezone)
    old_day, recent_day = old.astimezone(tz).date(), recent.astimezone(tz).date()
    before = {row.date: row.pk for row in DailyStat.objects.filter(organization=org)}
    assert set(before) == {old_day, recent_day}

    event(first, T.OPENED, old + timedelta(minutes=2), is_unique=True, received_at=timezone.now())  # days late
    result = rollup.rollup_incremental()

    after = {row.date: row for row in DailyStat.objects.filter(organization=org)}
    assert after[recent_day].pk == before[recent_day]  # untouched
    assert after[old_day].pk != before[old_day]  # rewritten
    assert (after[old_day].opened, after[old_day].delivered, after[old_day].sent) == (1, 1, 1)
    assert result["slices"] == 1


def test_an_event_at_2330_utc_lands_on_the_next_amsterdam_day():
    org = organization("Europe/Amsterdam")
    made = campaign(org)
    today = timezone.now().date()
    at = datetime.combine(today - timedelta(days=20), datetime.min.time(), tzinfo=UTC).replace(hour=23, minute=30)
    sent = message(made, sent_at=at)
    event(sent, T.OPENED, at, is_unique=True)
    rollup.rollup_incremental()
    rows = report(organization_id=org.pk, by=("date",))
    next_day = (at + timedelta(days=1)).date()
    assert [(row["date"], row["sent"], row["opened"]) for row in rows] == [(next_day, 1, 1)]
    # In New York the same instant is still that evening.
    org_ny = organization("America/New_York")
    sent_ny = message(campaign(org_ny), sent_at=at)
    event(sent_ny, T.OPENED, at, is_unique=True)
    rollup.rollup_incremental()
    assert [row["date"] for row in report(organization_id=org_ny.pk, by=("date",))] == [at.date()]


def test_machine_opens_and_clicks_stay_out_of_the_unique_and_human_figures():
    org = organization()
    sent = message(campaign(org), sent_at=timezone.now() - timedelta(hours=3))
    at = sent.sent_at + timedelta(seconds=1)
    event(sent, T.OPENED, at, machine=True)
    event(sent, T.CLICKED, at, machine=True, url="https://shop.example.com/")
    rollup.rollup_incremental()
    (row,) = report(organization_id=org.pk)
    assert (row["opened"], row["opens"], row["clicked"], row["clicks"]) == (0, 0, 0, 0)
    assert (row["machine_opens"], row["machine_clicks"], row["sent"]) == (1, 1, 1)
    event(sent, T.OPENED, at + timedelta(minutes=5), is_unique=True)
    event(sent, T.OPENED, at + timedelta(minutes=6))
    (row,) = report(organization_id=org.pk)
    assert (row["opened"], row["opens"], row["machine_opens"]) == (1, 2, 1)


def test_the_tail_is_current_before_the_rollup_and_unchanged_after_it():
    org = organization()
    sent = message(campaign(org), sent_at=timezone.now() - timedelta(hours=3))
    event(sent, T.OPENED, sent.sent_at + timedelta(minutes=1), is_unique=True)
    rollup.rollup_incremental()
    assert rollup.stale_days(org) == []
    (rolled,) = report(organization_id=org.pk)
    assert (rolled["opened"], rolled["opens"]) == (1, 1)

    # New events for a day that already has rollup rows: the live figures replace those rows.
    event(sent, T.OPENED, sent.sent_at + timedelta(minutes=2))
    event(sent, T.CLICKED, sent.sent_at + timedelta(minutes=3), is_unique=True, url="https://shop.example.com/")
    assert rollup.stale_days(org) == [sent.sent_at.astimezone(ZoneInfo(org.timezone)).date()]
    (live,) = report(organization_id=org.pk)
    assert (live["sent"], live["opened"], live["opens"], live["clicked"], live["clicks"]) == (1, 1, 2, 1, 1)
    by_day_live = report(organization_id=org.pk, by=("date", "campaign"))

    rollup.rollup_incremental()
    assert rollup.stale_days(org) == []
    assert report(organization_id=org.pk) == [live]
    assert report(organization_id=org.pk, by=("date", "campaign")) == by_day_live


def test_conversions_count_with_revenue_by_message_campaign_or_none():
    org = organization()
    made = campaign(org, variants=1)
    variant = made.variants.get()
    now = timezone.now() - timedelta(hours=3)
    sent = message(made, sent_at=now, step=1, variant=variant, sending_domain="a.example.com")
    conversion(org, now, "10.50", message=sent)
    conversion(org, now, "4.25", campaign=made)
    conversion(org, now, "100.00")
    rollup.rollup_incremental()
    rows = {
        (r["campaign_id"], r["step"], r["variant_id"], r["sending_domain"]): (r["conversions"], r["revenue"])
        for r in report(organization_id=org.pk, by=("campaign", "step", "variant", "sending_domain"))
    }
    assert rows[(made.pk, 1, variant.pk, "a.example.com")] == (1, Decimal("10.50"))
    assert rows[(made.pk, 0, None, "")] == (1, Decimal("4.25"))
    assert rows[(None, 0, None, "")] == (1, Decimal("100.00"))
    (total,) = report(organization_id=org.pk)
    assert (total["conversions"], total["revenue"], total["sent"]) == (3, Decimal("114.75"), 1)
    assert isinstance(total["revenue"], Decimal)


def test_another_organizations_campaign_gives_nothing():
    org, other = organization(), organization()
    theirs = campaign(other)
    message(theirs, sent_at=timezone.now() - timedelta(hours=3))
    message(campaign(org), sent_at=timezone.now() - timedelta(hours=3))
    rollup.rollup_incremental()
    (row,) = report(organization_id=org.pk, campaign_id=theirs.pk)
    assert row["sent"] == 0
    assert report(organization_id=org.pk)[0]["sent"] == 1


def test_report_refuses_an_unknown_grouping():
    org = organization()
    with pytest.raises(ValueError, match="colour"):
        report(organization_id=org.pk, by=("colour",))


def test_a_failed_message_counts_on_the_day_it_was_due():
    org = organization("UTC")
    due = timezone.now() - timedelta(days=3)
    message(campaign(org), sent_at=None, status=M.FAILED, scheduled_at=due)
    rollup.rollup_incremental()
    assert [(r["date"], r["failed"], r["sent"]) for r in report(organization_id=org.pk, by=("date",))] == [
        (due.date(), 1, 0)
    ]


def test_a_run_while_another_holds_the_lock_writes_nothing_and_keeps_the_watermarks():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has a single writer; the advisory lock is PostgreSQL's")
    import psycopg

    org = organization()
    sent = message(campaign(org), sent_at=timezone.now() - timedelta(hours=3))
    event(sent, T.DELIVERED, sent.sent_at)
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432, password=db["PASSWORD"] or None
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [rollup.LOCK_KEY])
        assert rollup.rollup_incremental()["skipped"] is True
        assert not DailyStat.objects.exists()
        assert RollupState.objects.get(source="events").last_id == 0
        other.execute("SELECT pg_advisory_unlock(%s)", [rollup.LOCK_KEY])
    result = rollup.rollup_incremental()
    assert result["skipped"] is False
    assert RollupState.objects.get(source="events").last_id > 0
    assert DailyStat.objects.get(organization=org).delivered == 1


def test_the_local_day_bounds_follow_daylight_saving():
    tz = ZoneInfo("Europe/Amsterdam")
    ((start, end),) = rollup.time_ranges(tz, [date(2026, 3, 29)])  # clocks go forward: a 23-hour day
    assert (end - start) == timedelta(hours=23)
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    two = rollup.time_ranges(tz, [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)])
    assert [(a.date(), b.date()) for a, b in two] == [
        (date(2025, 12, 31), date(2026, 1, 2)),
        (date(2026, 1, 4), date(2026, 1, 5)),
    ]


def test_days_around_a_clock_change_count_in_local_time():
    tz = ZoneInfo("Europe/Amsterdam")
    today = timezone.now().astimezone(tz).date()
    # The most recent day that was not 24 hours long in Amsterdam (there is one every half year).
    short = next(
        day
        for day in (today - timedelta(days=n) for n in range(1, 366))
        if rollup.day_start(tz, day + timedelta(days=1)) - rollup.day_start(tz, day) != timedelta(hours=24)
    )
    start, end = rollup.day_start(tz, short), rollup.day_start(tz, short + timedelta(days=1))
    org = organization("Europe/Amsterdam")
    made = campaign(org)
    for at in (start + timedelta(minutes=30), end - timedelta(minutes=30), end + timedelta(minutes=30)):
        message(made, sent_at=at)
    rollup.rollup_incremental()
    days = [(row["date"], row["sent"]) for row in report(organization_id=org.pk, by=("date",))]
    assert days == [(short, 2), (short + timedelta(days=1), 1)]
