"""Per agent per day metrics for the analytics dashboard (callbacks.selectors.agent_daily_metrics)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from accounts.models import Role
from accounts.tests.factories import OrganizationFactory
from callbacks.selectors import agent_daily_metrics
from callbacks.tests.factories import CallbackRequestFactory, agent_of

pytestmark = pytest.mark.django_db


def at(day, hour, minute=0):
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def handled(organization, agent, *, created, first_contact, closed=None, status="completed", first_by=None):
    return CallbackRequestFactory(
        organization=organization,
        status=status,
        assigned_to=agent,
        created_at=created,
        first_contact_at=first_contact,
        first_contact_by=first_by or agent,
        closed_at=closed,
    )


def test_rows_per_agent_per_day_in_the_organizations_time_zone():
    organization = OrganizationFactory(timezone="Europe/Amsterdam")
    ana, ben = (
        agent_of(organization, user__email="ana@example.com"),
        agent_of(organization, user__email="ben@example.com"),
    )
    handled(organization, ana, created=at(4, 8), first_contact=at(4, 8, 30), closed=at(4, 9, 30))
    handled(organization, ana, created=at(4, 9), first_contact=at(4, 10), closed=at(4, 12))
    handled(organization, ana, created=at(4, 9), first_contact=at(4, 12, 30), status="no_answer")
    # 23:30 UTC is half past midnight in Amsterdam: the next day.
    handled(organization, ana, created=at(4, 23), first_contact=at(4, 23, 30), status="in_progress")
    handled(organization, ben, created=at(4, 10), first_contact=at(4, 10, 10), closed=at(4, 11), status="cancelled")
    handled(organization, ben, created=at(4, 10), first_contact=at(4, 10, 20), status="in_progress")
    handled(organization, ana, created=at(10, 10), first_contact=at(10, 11), closed=at(10, 12))  # outside the range
    handled(OrganizationFactory(), agent_of(OrganizationFactory()), created=at(4, 8), first_contact=at(4, 9))

    rows = agent_daily_metrics(organization=organization, date_from=date(2025, 3, 4), date_to=date(2025, 3, 5))

    assert rows == [
        {
            "agent": str(ana.pk),
            "agent_email": "ana@example.com",
            "date": date(2025, 3, 4),
            "first_contacts": 3,
            "avg_time_to_first_contact": 6000.0,  # (30 + 60 + 210) / 3 minutes
            "median_time_to_first_contact": 3600.0,
            "handled": 2,
            "avg_time_to_resolution": 8100.0,  # (90 + 180) / 2 minutes
        },
        {
            "agent": str(ben.pk),
            "agent_email": "ben@example.com",
            "date": date(2025, 3, 4),
            "first_contacts": 2,
            "avg_time_to_first_contact": 900.0,
            "median_time_to_first_contact": 900.0,  # between 10 and 20 minutes
            "handled": 0,  # cancelled is not handled
            "avg_time_to_resolution": None,
        },
        {
            "agent": str(ana.pk),
            "agent_email": "ana@example.com",
            "date": date(2025, 3, 5),
            "first_contacts": 1,
            "avg_time_to_first_contact": 1800.0,
            "median_time_to_first_contact": 1800.0,
            "handled": 0,
            "avg_time_to_resolution": None,
        },
    ]


def test_first_contact_and_resolution_count_for_the_agent_who_did_them():
    organization = OrganizationFactory(timezone="America/New_York")
    first, second = agent_of(organization), agent_of(organization)
    # The first agent's call went unanswered; the request was handed over and the second agent completed it.
    handled(organization, second, created=at(4, 14), first_contact=at(4, 15), closed=at(4, 18), first_by=first)

    rows = agent_daily_metrics(organization=organization, date_from=date(2025, 3, 4), date_to=date(2025, 3, 4))
    by_agent = {row["agent"]: row for row in rows}
    assert (by_agent[str(first.pk)]["first_contacts"], by_agent[str(first.pk)]["handled"]) == (1, 0)
    assert (by_agent[str(second.pk)]["first_contacts"], by_agent[str(second.pk)]["handled"]) == (0, 1)
    assert by_agent[str(second.pk)]["avg_time_to_resolution"] == timedelta(hours=4).total_seconds()

    only_second = agent_daily_metrics(
        organization=organization, date_from=date(2025, 3, 4), date_to=date(2025, 3, 4), agent_id=second.pk
    )
    assert [row["agent"] for row in only_second] == [str(second.pk)]


# --- the endpoint's query -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=0001-01-01&to=0001-01-31", "from"),
        ("from=9999-12-01&to=9999-12-31", "from"),
        ("from=2025-01-01&to=2201-01-01", "to"),
        ("to=0001-01-01", "to"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/callbacks/metrics", "/api/v1/callbacks/metrics/"])
def test_dates_outside_the_years_are_400_naming_the_parameter(member_client, path, query, field):
    client, _, _ = member_client(Role.MANAGER)
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    assert "between the years" in response.json()[field][0]


def test_dates_inside_the_years_answer(member_client):
    client, _, _ = member_client(Role.MANAGER)
    assert client.get("/api/v1/callbacks/metrics?from=1970-01-01&to=1970-12-31").status_code == 200
    assert client.get("/api/v1/callbacks/metrics?from=2200-01-01&to=2200-12-31").status_code == 200
