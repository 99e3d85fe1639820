"""The analytics API: dashboard, campaign analytics with ROI, the CSV export (rows equal the API's
days), the date range rules, tenancy and roles. Figures are the same before and after a rollup run."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from analytics import rollup
from analytics.models import COUNTERS
from analytics.selectors import organization_today
from analytics.services import conversion_record
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory
from contacts.models import Contact
from tracking.models import EventType, MessageEvent

pytestmark = pytest.mark.django_db

DASHBOARD = "/api/v1/analytics/dashboard"
EXPORT = "/api/v1/analytics/export"
RATES = {"open_rate", "click_rate", "click_to_open_rate", "bounce_rate", "unsubscribe_rate"}
M = MessageStatus


def campaign_url(campaign) -> str:
    return f"/api/v1/analytics/campaigns/{campaign.pk}"


def local(org, day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(org.timezone))


def send(campaign, count: int, at: datetime, *, variant=None, step=0, status=M.SENT) -> list[Message]:
    contacts = Contact.objects.bulk_create(
        [Contact(organization=campaign.organization, email=f"{uuid.uuid4().hex}@example.com") for _ in range(count)]
    )
    return Message.objects.bulk_create(
        [
            Message(
                organization=campaign.organization,
                campaign=campaign,
                contact=contact,
                to_address=contact.email,
                status=status,
                step=step,
                variant=variant,
                sending_domain="mail.example.com",
                sent_at=at,
            )
            for contact in contacts
        ]
    )


def event(message, type_, at, *, unique=False, machine=False, url=""):
    MessageEvent.objects.create(
        type=type_,
        occurred_at=at,
        organization_id=message.organization_id,
        campaign_id=message.campaign_id,
        message_id=message.pk,
        contact_id=message.contact_id,
        is_unique=unique,
        machine=machine,
        url=url,
        dedupe_key=uuid.uuid4().hex,
    )


@pytest.fixture
def scene(member_client):
    """Two campaigns over three days of the last week: opens, clicks (one by a scanner), a bounce, an
    unsubscribe, conversions (one credited to no campaign, one long before the range)."""
    client, _, org = member_client(Role.VIEWER)
    today = organization_today(org)
    d1, d2, d3 = today - timedelta(days=5), today - timedelta(days=3), today - timedelta(days=1)
    spring = CampaignFactory(organization=org, name="Spring sale", status=CampaignStatus.RUNNING, budget=Decimal("100"))
    a = CampaignVariant.objects.create(campaign=spring, name="A", template=spring.template)
    b = CampaignVariant.objects.create(campaign=spring, name="B", template=spring.template)
    reminder = CampaignFactory(
        organization=org, name="=HYPERLINK(1)", channel="sms", status=CampaignStatus.RUNNING, template=None
    )

    spring_a = send(spring, 6, local(org, d1), variant=a)
    spring_b = send(spring, 4, local(org, d1), variant=b)
    followup = send(spring, 2, local(org, d2), variant=a, step=1)
    sms = send(reminder, 3, local(org, d2))
    send(reminder, 1, local(org, d3))

    event(spring_a[0], EventType.OPENED, local(org, d1, 14), unique=True)
    event(spring_a[0], EventType.OPENED, local(org, d2, 9))
    event(spring_a[1], EventType.OPENED, local(org, d1, 15), unique=True)
    event(spring_a[1], EventType.CLICKED, local(org, d1, 15), unique=True, url="https://shop.example.com/sale")
    event(spring_a[1], EventType.CLICKED, local(org, d2, 10), url="https://shop.example.com/sale")
    event(spring_b[0], EventType.OPENED, local(org, d1, 13), machine=True)
    event(spring_b[0], EventType.CLICKED, local(org, d1, 13), machine=True, url="https://shop.example.com/sale")
    event(spring_b[1], EventType.OPENED, local(org, d1, 16), unique=True)
    event(spring_b[1], EventType.CLICKED, local(org, d1, 16), unique=True, url="https://shop.example.com/shoes")
    event(spring_b[2], EventType.BOUNCED, local(org, d1, 12))
    event(followup[0], EventType.UNSUBSCRIBED, local(org, d2, 18))
    event(sms[0], EventType.DELIVERED, local(org, d2, 12))

    conversion_record(
        organization_id=org.pk,
        contact=spring_a[1].contact,
        value=Decimal("150.00"),
        currency="EUR",
        occurred_at=local(org, d2, 11),
    )  # credited to the click
    conversion_record(
        organization_id=org.pk,
        contact=spring_b[1].contact,
        campaign=spring,
        value=Decimal("30.00"),
        currency="EUR",
        occurred_at=local(org, today - timedelta(days=200)),
    )  # long before the range
    conversion_record(
        organization_id=org.pk,
        contact=sms[1].contact,
        value=Decimal("5.50"),
        currency="EUR",
        occurred_at=local(org, d3, 9),
    )  # unattributed
    return {"client": client, "org": org, "today": today, "days": (d1, d2, d3), "spring": spring, "reminder": reminder}


def zero_counters() -> dict:
    return {name: "0.00" if name == "revenue" else 0 for name in COUNTERS}


def counters(**values) -> dict:
    return {**zero_counters(), **values}


def get(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_dashboard_totals_days_and_top_campaigns(scene):
    client, (d1, d2, d3), today = scene["client"], scene["days"], scene["today"]
    date_from = today - timedelta(days=6)
    body = get(client, DASHBOARD, **{"from": date_from.isoformat(), "to": today.isoformat()})

    assert set(body) == {"from", "to", "totals", "days", "top_campaigns"}
    assert (body["from"], body["to"]) == (date_from.isoformat(), today.isoformat())
    assert body["totals"]["counters"] == counters(
        sent=16,
        delivered=1,
        opened=3,
        clicked=2,
        bounced=1,
        unsubscribed=1,
        conversions=2,
        revenue="155.50",
    )
    assert body["totals"]["rates"] == {
        "open_rate": round(3 / 15, 4),
        "click_rate": round(2 / 15, 4),
        "click_to_open_rate": round(2 / 3, 4),
        "bounce_rate": round(1 / 16, 4),
        "unsubscribe_rate": round(1 / 15, 4),
    }
    assert [day["date"] for day in body["days"]] == [(date_from + timedelta(days=n)).isoformat() for n in range(7)]
    by_day = {day["date"]: day["counters"] for day in body["days"]}
    assert by_day[d1.isoformat()] == counters(sent=10, opened=3, clicked=2, bounced=1)
    assert by_day[d2.isoformat()] == counters(sent=5, delivered=1, unsubscribed=1, conversions=1, revenue="150.00")
    assert by_day[d3.isoformat()] == counters(sent=1, conversions=1, revenue="5.50")
    assert by_day[today.isoformat()] == zero_counters()

    spring, reminder = scene["spring"], scene["reminder"]
    assert body["top_campaigns"] == [
        {
            "campaign_id": str(spring.pk),
            "name": "Spring sale",
            "channel": "email",
            "sent": 12,
            "opened": 3,
            "clicked": 2,
            "conversions": 1,
            "revenue": "150.00",
            "open_rate": round(3 / 11, 4),
            "click_rate": round(2 / 11, 4),
        },
        {
            "campaign_id": str(reminder.pk),
            "name": "=HYPERLINK(1)",
            "channel": "sms",
            "sent": 4,
            "opened": 0,
            "clicked": 0,
            "conversions": 0,
            "revenue": "0.00",
            "open_rate": 0.0,
            "click_rate": 0.0,
        },
    ]


def test_the_figures_are_the_same_live_and_rolled_up(scene):
    client, today = scene["client"], scene["today"]
    params = {"from": (today - timedelta(days=10)).isoformat(), "to": today.isoformat()}
    live = get(client, DASHBOARD, **params), get(client, campaign_url(scene["spring"]), **params)
    rollup.rollup_incremental()
    assert rollup.stale_days(scene["org"]) == []
    assert (get(client, DASHBOARD, **params), get(client, campaign_url(scene["spring"]), **params)) == live


def test_top_campaigns_are_the_ten_that_sent_most(member_client):
    client, _, org = member_client(Role.MANAGER)
    yesterday = organization_today(org) - timedelta(days=1)
    campaigns = [CampaignFactory(organization=org, status=CampaignStatus.RUNNING) for _ in range(12)]
    for count, campaign in enumerate(campaigns, start=1):
        send(campaign, count, local(org, yesterday))
    top = get(client, DASHBOARD)["top_campaigns"]
    assert [row["campaign_id"] for row in top] == [str(c.pk) for c in reversed(campaigns[2:])]
    assert [row["sent"] for row in top] == list(range(12, 2, -1))


def test_the_range_defaults_to_the_last_30_days_in_the_organizations_time_zone(member_client):
    client, _, org = member_client(Role.VIEWER)
    org.timezone = "Pacific/Kiritimati"  # UTC+14: often a day ahead of UTC
    org.save(update_fields=["timezone"])
    today = organization_today(org)
    body = get(client, DASHBOARD)
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert len(body["days"]) == 30
    only_to = get(client, DASHBOARD, to="2025-03-31")
    assert (only_to["from"], only_to["to"]) == ("2025-03-02", "2025-03-31")


def test_campaign_analytics_with_roi_variants_steps_and_links(scene):
    client, (d1, d2, d3), today = scene["client"], scene["days"], scene["today"]
    spring = scene["spring"]
    body = get(client, campaign_url(spring), **{"from": (today - timedelta(days=6)).isoformat()})

    assert set(body) == {"campaign", "budget", "revenue", "roi", "totals", "days", "variants", "steps", "links"}
    assert (body["campaign"], body["budget"]) == (str(spring.pk), "100.00")
    # Over the campaign's life: 150 from the click in range and 30 from long before it.
    assert (body["revenue"], body["roi"]) == ("180.00", 0.8)
    assert body["totals"]["counters"] == counters(
        sent=12, opened=3, clicked=2, bounced=1, unsubscribed=1, conversions=1, revenue="150.00"
    )
    assert set(body["totals"]["rates"]) == RATES
    assert len(body["days"]) == 7
    by_day = {day["date"]: day["counters"] for day in body["days"]}
    assert by_day[d1.isoformat()] == counters(sent=10, opened=3, clicked=2, bounced=1)
    assert by_day[d2.isoformat()] == counters(sent=2, unsubscribed=1, conversions=1, revenue="150.00")
    assert by_day[d3.isoformat()] == zero_counters()

    variants = {row["variant"]: row for row in body["variants"]}
    assert list(variants) == ["A", "B"]
    assert variants["A"]["variant_id"] == str(CampaignVariant.objects.get(campaign=spring, name="A").pk)
    assert variants["A"]["counters"] == counters(
        sent=8, opened=2, clicked=1, unsubscribed=1, conversions=1, revenue="150.00"
    )
    assert variants["B"]["counters"] == counters(sent=4, opened=1, clicked=1, bounced=1)
    assert [(row["step"], row["counters"]["sent"]) for row in body["steps"]] == [(0, 10), (1, 2)]
    assert body["links"] == [
        {"url": "https://shop.example.com/sale", "clicks": 2, "unique_clicks": 1},
        {"url": "https://shop.example.com/shoes", "clicks": 1, "unique_clicks": 1},
    ]


@pytest.mark.parametrize(("budget", "roi"), [(None, None), (Decimal("0"), None), (Decimal("400"), -0.5)])
def test_roi_is_revenue_less_budget_over_budget_and_null_without_one(member_client, budget, roi):
    client, _, org = member_client(Role.VIEWER)
    campaign = CampaignFactory(organization=org, status=CampaignStatus.RUNNING, budget=budget)
    [message] = send(campaign, 1, local(org, organization_today(org) - timedelta(days=2)))
    conversion_record(
        organization_id=org.pk, contact=message.contact, message=message, value=Decimal("200"), currency="EUR"
    )
    body = get(client, campaign_url(campaign))
    assert (body["revenue"], body["roi"]) == ("200.00", roi)


def test_the_budget_is_set_through_the_campaigns_api(member_client):
    client, _, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(organization=org)
    url = f"/api/v1/campaigns/{campaign.pk}/"
    response = client.patch(url, {"budget": "250.50"}, format="json")
    assert response.status_code == 200, response.content
    assert client.get(url).json()["budget"] == "250.50"
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal("250.50")
    for bad in ("-1", "abc", "1.234"):
        response = client.patch(url, {"budget": bad}, format="json")
        assert response.status_code == 400
        assert "budget" in response.json()
    assert client.patch(url, {"budget": None}, format="json").json()["budget"] is None
    assert get(client, campaign_url(campaign))["roi"] is None


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_has_a_row_per_day_and_campaign_equal_to_the_api(scene):
    client, today = scene["client"], scene["today"]
    params = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    rows = read_csv(client.get(EXPORT, {**params, "format": "csv"}))
    assert rows[0] == ["date", "campaign_id", "campaign_name", "channel", *COUNTERS]
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert len(records) == len({(r["date"], r["campaign_id"]) for r in records})  # one row per day and campaign

    for campaign in (scene["spring"], scene["reminder"]):
        api_days = {
            day["date"]: {name: str(value) for name, value in day["counters"].items()}
            for day in get(client, campaign_url(campaign), **params)["days"]
            if day["counters"] != zero_counters()
        }
        exported = {
            r["date"]: {name: r[name] for name in COUNTERS} for r in records if r["campaign_id"] == str(campaign.pk)
        }
        assert exported == api_days
        assert exported
    names = {r["campaign_id"]: (r["campaign_name"], r["channel"]) for r in records}
    assert names[str(scene["spring"].pk)] == ("Spring sale", "email")
    assert names[str(scene["reminder"].pk)] == ("'=HYPERLINK(1)", "sms")  # never a formula in a spreadsheet
    # The conversion credited to no campaign is exported too, so the file adds up to the dashboard.
    assert [(r["campaign_id"], r["conversions"], r["revenue"]) for r in records if not r["campaign_id"]] == [
        ("", "1", "5.50")
    ]
    totals = get(client, DASHBOARD, **params)["totals"]["counters"]
    assert sum(int(r["sent"]) for r in records) == totals["sent"]
    assert sum(Decimal(r["revenue"]) for r in records) == Decimal(totals["revenue"])


def test_the_export_defaults_to_csv_and_refuses_other_formats(scene):
    client = scene["client"]
    assert read_csv(client.get(EXPORT))[0][:4] == ["date", "campaign_id", "campaign_name", "channel"]
    response = client.get(EXPORT, {"format": "xlsx"})
    assert response.status_code == 400
    assert "format" in response.json()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-02-30"}, "from"),
        ({"to": "2025-13-01"}, "to"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ({"from": "2024-01-01", "to": "2025-01-01"}, "from"),  # 367 days
    ],
)
@pytest.mark.parametrize("path", ["dashboard", "campaign", "export"])
def test_a_bad_range_is_a_400_naming_the_field(member_client, params, field, path):
    client, _, org = member_client(Role.VIEWER)
    url = {"dashboard": DASHBOARD, "export": EXPORT, "campaign": campaign_url(CampaignFactory(organization=org))}[path]
    response = client.get(url, params)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_a_range_of_366_days_is_accepted(member_client):
    client, _, _ = member_client(Role.VIEWER)
    body = get(client, DASHBOARD, **{"from": "2024-01-01", "to": "2024-12-31"})
    assert len(body["days"]) == 366


def test_another_organizations_campaign_is_a_404_and_its_figures_stay_out(scene, member_client):
    client, today = scene["client"], scene["today"]
    other_client, _, other = member_client(Role.OWNER)
    theirs = CampaignFactory(organization=other, status=CampaignStatus.RUNNING)
    send(theirs, 5, local(other, today - timedelta(days=1)))

    assert client.get(campaign_url(theirs)).status_code == 404
    assert client.get("/api/v1/analytics/campaigns/not-a-uuid").status_code == 404
    assert client.get(f"/api/v1/analytics/campaigns/{uuid.uuid4()}").status_code == 404
    assert other_client.get(campaign_url(scene["spring"])).status_code == 404
    assert get(client, DASHBOARD)["totals"]["counters"]["sent"] == 16
    assert str(theirs.pk) not in {row[1] for row in read_csv(client.get(EXPORT))}
    mine = get(other_client, DASHBOARD)
    assert (mine["totals"]["counters"]["sent"], [row["campaign_id"] for row in mine["top_campaigns"]]) == (
        5,
        [str(theirs.pk)],
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.OWNER, True), (Role.ADMIN, True), (Role.MANAGER, True), (Role.VIEWER, True), (Role.AGENT, False)],
)
def test_roles_that_read_campaigns_read_analytics(member_client, role, allowed):
    client, _, org = member_client(role)
    campaign = CampaignFactory(organization=org)
    for url in (DASHBOARD, campaign_url(campaign), EXPORT):
        assert client.get(url).status_code == (200 if allowed else 403), url
        assert client.post(url, {}).status_code in (403, 405)


def test_the_schema_documents_the_analytics_endpoints(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {"/api/v1/analytics/dashboard/", "/api/v1/analytics/export/", "/api/v1/conversions/"} <= set(paths)
    campaign = next(path for path in paths if path.startswith("/api/v1/analytics/campaigns/"))
    response = paths[campaign]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert response == {"$ref": "#/components/schemas/CampaignAnalytics"}
    assert "text/csv" in paths["/api/v1/analytics/export/"]["get"]["responses"]["200"]["content"]


def test_a_sequences_steps_count_every_entrys_messages_together(member_client):
    client, _, org = member_client(Role.MANAGER)
    sequence_campaign = CampaignFactory(organization=org, kind="sequence", status=CampaignStatus.RUNNING)
    yesterday = local(org, organization_today(org) - timedelta(days=1))
    send(sequence_campaign, 3, yesterday, step=1)
    send(sequence_campaign, 1, yesterday, step=101)  # the first step of a second enrollment
    send(sequence_campaign, 2, yesterday, step=2)
    steps = get(client, campaign_url(sequence_campaign))["steps"]
    assert [(row["step"], row["counters"]["sent"]) for row in steps] == [(1, 4), (2, 2)]


def test_the_number_of_queries_does_not_grow_with_campaigns(member_client):
    client, _, org = member_client(Role.VIEWER)
    yesterday = local(org, organization_today(org) - timedelta(days=1))

    def queries(url) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
            assert response.status_code == 200
            if response.streaming:
                b"".join(response.streaming_content)  # the export reads as it streams
        return len(captured.captured_queries)

    first = CampaignFactory(organization=org, status=CampaignStatus.RUNNING)
    a = CampaignVariant.objects.create(campaign=first, name="A", template=first.template)
    send(first, 2, yesterday, variant=a)
    before = [queries(url) for url in (DASHBOARD, EXPORT, campaign_url(first))]
    for _ in range(10):
        campaign = CampaignFactory(organization=org, status=CampaignStatus.RUNNING)
        b = CampaignVariant.objects.create(campaign=first, name=f"B{campaign.pk}", template=first.template)
        send(campaign, 2, yesterday)
        send(first, 1, yesterday, variant=b)
    assert [queries(url) for url in (DASHBOARD, EXPORT, campaign_url(first))] == before
