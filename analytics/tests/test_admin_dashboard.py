"""The analytics page in the admin: the selectors' figures for the member's organization and period,
a form error (never a 500) for a bad period, nothing of another organization, and only for roles
that may read analytics."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from analytics import selectors
from analytics.admin import MAX_DAYS
from analytics.models import COUNTERS, AgentDailyStat, DailyStat
from analytics.selectors import EXPORT_HEADER
from campaigns.models import CampaignKind
from campaigns.tests.factories import CampaignFactory
from tracking.tests.factories import sent_messages

pytestmark = pytest.mark.django_db

URL = "/admin/analytics/dailystat/"
EXPORT_URL = "/admin/analytics/dailystat/export/"


class Figures(HTMLParser):
    """data-counter / data-rate values, the text of elements with an id, and links, from a page."""

    def __init__(self, html: str):
        super().__init__()
        self.counters: dict[str, str] = {}
        self.rates: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self._href = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-counter" in attrs:
            self.counters[attrs["data-counter"]] = attrs["data-value"]
        if "data-rate" in attrs:
            self.rates[attrs["data-rate"]] = attrs["data-value"]
        if tag == "a":
            self._href = attrs.get("href")

    def handle_data(self, data):
        if self._href and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def staff(organization, role=Role.MANAGER):
    return MembershipFactory(organization=organization, role=role, user__is_staff=True).user


def stat(organization, day, campaign=None, **counters):
    return DailyStat.objects.create(
        organization=organization,
        date=day,
        campaign=campaign,
        channel=campaign.channel if campaign else "",
        **counters,
    )


@pytest.fixture
def acme():
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    today = selectors.organization_today(organization)
    spring = CampaignFactory(organization=organization, name="Spring sale")
    welcome = CampaignFactory(organization=organization, name="Welcome", channel="sms")
    stat(organization, today, spring, sent=120, delivered=100, opened=40, clicked=12, bounced=20, opens=55, clicks=15)
    stat(organization, today - timedelta(days=1), spring, sent=80, opened=30, clicked=9, unsubscribed=2)
    stat(organization, today - timedelta(days=2), welcome, sent=50, opened=5, clicked=1, failed=3, replied=4)
    stat(organization, today - timedelta(days=3), None, conversions=2, revenue=Decimal("99.50"))
    stat(organization, today - timedelta(days=40), spring, sent=1000, opened=900)  # before the default 30 days
    agent = MembershipFactory(organization=organization, role=Role.AGENT, user__full_name="Ada Agent").user
    AgentDailyStat.objects.create(
        organization=organization,
        date=today,
        agent=agent,
        handled=3,
        first_contacts=2,
        first_contact_seconds=2 * 1800,
        resolutions=3,
        resolution_seconds=3 * 7200,
        sla_breaches=1,
    )
    return {"organization": organization, "today": today, "spring": spring, "welcome": welcome, "agent": agent}


@pytest.fixture
def globex():
    organization = OrganizationFactory(name="Globex")
    secret = CampaignFactory(organization=organization, name="Globex secret plan")
    stat(organization, selectors.organization_today(organization), secret, sent=777, opened=333)
    return {"organization": organization, "secret": secret}


def test_the_page_shows_the_selectors_figures_for_the_last_30_days(client, acme, globex):
    client.force_login(staff(acme["organization"]))
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    today = acme["today"]
    date_from = today - timedelta(days=29)
    [expected] = selectors.report(organization_id=acme["organization"].pk, date_from=date_from, date_to=today)
    page = Figures(html)
    assert {name: page.counters[name] for name in COUNTERS} == {name: str(expected[name]) for name in COUNTERS}
    # The figures are the rows inside the period, and only this organization's.
    assert page.counters["sent"] == "250"
    assert page.counters["opened"] == "75"
    assert page.counters["revenue"] == "99.50"
    assert page.counters["opens"] == str(expected["opens"])
    assert page.rates == {name: str(value) for name, value in selectors.rates(expected).items()}
    assert page.rates["open_rate"] == str(round(75 / 230, 4))
    assert "32.61%" in html  # the open rate as the marketer reads it
    # The period the form shows is the default one.
    assert f'name="from" value="{date_from.isoformat()}"' in html
    assert f'name="to" value="{today.isoformat()}"' in html
    assert "Globex" not in html
    assert str(globex["secret"].pk) not in html


def test_the_daily_chart_covers_every_day_of_the_period(client, acme):
    client.force_login(staff(acme["organization"]))
    today = acme["today"]
    response = client.get(URL, {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()})
    html = response.content.decode()
    start = html.index('<div class="chart daily-chart">') + len('<div class="chart daily-chart">')
    svg = html[start : html.index("</svg>", start) + len("</svg>")]
    root = ET.fromstring(svg)  # noqa: S314 - our own page
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img"
    assert "Acme: sent, opened and clicked per day" in root.find(f"{ns}title").text
    labels = [t.text for t in root.find(f"{ns}g[@class='x-axis']").iter(f"{ns}text")]
    assert labels == [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    # Seven days are drawn as bars: three series of seven days.
    bars = [r for g in root.iter(f"{ns}g") if g.get("class") == "series" for r in g.iter(f"{ns}rect")]
    assert len(bars) == 21
    tips = {r.find(f"{ns}title").text for r in bars}
    assert f"{today.isoformat()}: 120 Sent" in tips
    assert f"{(today - timedelta(days=2)).isoformat()}: 5 Opened" in tips


def test_top_campaigns_link_to_their_admin_pages_most_sent_first(client, acme):
    client.force_login(staff(acme["organization"]))
    response = client.get(URL)
    html = response.content.decode()
    page = Figures(html)
    assert page.links["Spring sale"] == reverse("admin:campaigns_campaign_change", args=[acme["spring"].pk])
    assert page.links["Welcome"] == reverse("admin:campaigns_campaign_change", args=[acme["welcome"].pk])
    assert html.index(">Spring sale</a>") < html.index(">Welcome</a>")
    spring_row = html[html.index(f'data-campaign="{acme["spring"].pk}"') :].split("</tr>")[0]
    assert '<td class="num">200</td>' in spring_row  # 120 + 80 in the period
    assert "38.89%" in spring_row  # opened 70 of (200 - 20)


def test_a_sequence_links_to_its_sequence_page(client, acme):
    from campaigns.models import Sequence

    organization = acme["organization"]
    drip = CampaignFactory(organization=organization, name="Onboarding drip", kind=CampaignKind.SEQUENCE)
    sequence = Sequence.objects.create(organization=organization, name="Onboarding drip", campaign=drip)
    stat(organization, acme["today"], drip, sent=7)
    client.force_login(staff(organization))
    page = Figures(client.get(URL).content.decode())
    assert page.links["Onboarding drip"] == reverse("admin:campaigns_sequence_change", args=[sequence.pk])


def test_agents_figures_show_counts_and_average_times(client, acme):
    client.force_login(staff(acme["organization"]))
    html = client.get(URL).content.decode()
    row = html[html.index(f'data-agent="{acme["agent"].pk}"') :].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells == ["Ada Agent", "3", "2", "30 min", "3", "2 h 00 min", "1"]


def test_the_figures_are_live_before_any_rollup_ran(client):
    organization = OrganizationFactory(name="Fresh")
    campaign = CampaignFactory(organization=organization, name="Just sent")
    sent_messages(3, campaign=campaign)
    client.force_login(staff(organization))
    page = Figures(client.get(URL).content.decode())
    assert page.counters["sent"] == "3"
    assert "Just sent" in page.links


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2025-13-45"}, "from", "Enter a valid date."),
        ({"to": "yesterday"}, "to", "Enter a valid date."),
        ({"from": "2025-03-10", "to": "2025-03-01"}, "from", "The first day must be on or before the last."),
        ({"from": "2024-01-01", "to": "2025-01-01"}, "from", f"The range may span at most {MAX_DAYS} days."),
    ],
)
def test_a_bad_period_is_a_form_error_on_its_field(client, acme, query, field, message):
    client.force_login(staff(acme["organization"]))
    response = client.get(URL, query)
    assert response.status_code == 400
    html = response.content.decode()
    errors = html[html.index(f'id="{field}-errors"') :].split("</ul>")[0]
    assert message in errors
    assert "data-counter" not in html  # no figures for a period that is not one
    export = client.get(EXPORT_URL, query)
    assert export.status_code == 400
    assert f"{field}: {message}" in export.content.decode()


def test_a_full_year_is_accepted(client, acme):
    client.force_login(staff(acme["organization"]))
    today = acme["today"]
    response = client.get(URL, {"from": (today - timedelta(days=MAX_DAYS - 1)).isoformat(), "to": today.isoformat()})
    assert response.status_code == 200
    assert Figures(response.content.decode()).counters["sent"] == "1250"


def test_another_organizations_figures_cannot_be_asked_for(client, acme, globex):
    client.force_login(staff(acme["organization"]))
    response = client.get(URL, {"organization": str(globex["organization"].pk)})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Select a valid choice" in html
    assert "Globex secret plan" not in html
    assert "data-counter" not in html
    export = client.get(EXPORT_URL, {"organization": str(globex["organization"].pk)})
    assert export.status_code == 400
    for junk in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert client.get(URL, {"organization": junk}).status_code == 400


def test_a_member_of_two_organizations_picks_one(client, acme, globex):
    user = staff(acme["organization"])
    MembershipFactory(organization=globex["organization"], user=user, role=Role.VIEWER)
    client.force_login(user)
    default = Figures(client.get(URL).content.decode())
    assert default.counters["sent"] == "250"  # the first membership's organization
    response = client.get(URL, {"organization": str(globex["organization"].pk)})
    assert response.status_code == 200
    page = Figures(response.content.decode())
    assert page.counters["sent"] == "777"
    assert "Globex secret plan" in page.links
    assert "Spring sale" not in page.links


@pytest.mark.parametrize(("role", "allowed"), [(Role.VIEWER, True), (Role.OWNER, True), (Role.AGENT, False)])
def test_only_roles_that_read_analytics_see_the_page(client, acme, role, allowed):
    user = staff(acme["organization"], role=role)
    client.force_login(user)
    assert client.get(URL).status_code == (200 if allowed else 403)
    assert client.get(EXPORT_URL).status_code == (200 if allowed else 403)
    index = client.get("/admin/").content.decode()
    assert (f'href="{URL}"' in index) is allowed


def test_staff_without_membership_and_non_staff_are_refused(client, acme):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(URL).status_code == 403
    member = MembershipFactory(organization=acme["organization"], role=Role.MANAGER).user  # not staff
    client.force_login(member)
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_nothing_can_be_added_changed_or_deleted(client, acme):
    user = staff(acme["organization"], role=Role.OWNER)
    client.force_login(user)
    row = DailyStat.objects.filter(organization=acme["organization"]).first()
    assert client.get(f"{URL}add/").status_code == 403
    assert client.post(f"{URL}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DailyStat.objects.filter(pk=row.pk).exists()


def test_superuser_sees_any_organization(client, acme, globex):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(URL, {"organization": str(globex["organization"].pk)})
    assert response.status_code == 200
    assert Figures(response.content.decode()).counters["sent"] == "777"


def test_the_csv_has_the_exports_rows_for_the_period(client, acme, globex):
    acme["welcome"].name = "=HYPERLINK(evil)"
    acme["welcome"].save(update_fields=["name"])
    client.force_login(staff(acme["organization"]))
    today = acme["today"]
    date_from = today - timedelta(days=5)
    html = client.get(URL, {"from": date_from.isoformat(), "to": today.isoformat()}).content.decode()
    link = re.search(r'href="([^"]+)" class="button export-csv"', html).group(1).replace("&amp;", "&")
    response = client.get(link)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="analytics-{date_from}-{today}.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == EXPORT_HEADER
    expected = selectors.report(
        organization_id=acme["organization"].pk, date_from=date_from, date_to=today, by=("date", "campaign")
    )
    assert len(rows) - 1 == len(expected) == 4
    by_key = {(row[0], row[1]): dict(zip(EXPORT_HEADER, row, strict=True)) for row in rows[1:]}
    for row in expected:
        line = by_key[(row["date"].isoformat(), str(row["campaign_id"] or ""))]
        assert [line[name] for name in COUNTERS] == [str(row[name]) for name in COUNTERS]
    welcome = by_key[((today - timedelta(days=2)).isoformat(), str(acme["welcome"].pk))]
    assert welcome["campaign_name"] == "'=HYPERLINK(evil)"  # never a formula
    assert welcome["channel"] == "sms"
    assert by_key[((today - timedelta(days=3)).isoformat(), "")]["revenue"] == "99.50"
    assert "Globex" not in "".join(",".join(row) for row in rows)
