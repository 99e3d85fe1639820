"""A marketer in a real browser: imports a CSV and watches a real worker finish it, then builds a
segment from rows of field, operator and value and counts it before saving. No JSON typed."""

import json
from pathlib import Path

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from contacts.models import Contact, ImportJob, ImportStatus, Segment
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.e2e
def test_a_marketer_imports_a_csv_and_watches_it_finish(admin_page, start_worker, tmp_path):
    worker = start_worker()
    organization = OrganizationFactory(name="Acme")
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    rows = "".join(f"person{i}@example.com,Person,{i},vip;spring,yes,Utrecht\n" for i in range(1_500))
    upload = tmp_path / "people.csv"
    upload.write_text("email,first_name,last_name,tags,consent_email,city\n" + rows + "not-an-address,X,Y,,,\n")
    page = admin_page(marketer.user, PASSWORD)

    page.goto("/admin/")
    page.get_by_role("link", name="Import jobs").first.click()
    page.get_by_role("link", name="Add import job").click()
    assert "consent_whatsapp" in page.locator("#import-help").inner_text()
    with page.expect_download() as download:
        page.click("#import-sample")
    assert download.value.suggested_filename == "contacts-sample.csv"
    assert page.locator("#id_organization").input_value() == str(organization.pk)  # preselected
    page.set_input_files("#id_file", str(upload))
    page.fill("#id_tags", "from-browser")
    shot(page, "import-upload")
    page.get_by_role("button", name="Save", exact=True).click()

    # The job's own page, which follows the worker until the job is done.
    page.wait_for_url("**/admin/contacts/importjob/*/change/")
    page.locator(".field-status .readonly", has_text="Completed").wait_for(timeout=60_000)
    job = ImportJob.objects.get(organization=organization)
    assert job.status == ImportStatus.COMPLETED, worker.log
    assert page.locator(".field-progress .readonly").inner_text().startswith("100%")
    assert "line 1502" in page.locator(".field-bad_lines").inner_text()
    shot(page, "import-finished")
    assert (job.created, job.failed) == (1_500, 1)
    ada = Contact.objects.get(organization=organization, email="person7@example.com")
    assert ada.attributes == {"city": "Utrecht"}
    assert ada.consent == {"email": True}


def test_a_marketer_builds_a_segment_and_counts_it_before_saving(admin_page):
    organization = OrganizationFactory(name="Acme")
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    vip = TagFactory(organization=organization, name="vip")
    for n in range(3):
        ContactFactory(organization=organization, tags=[vip], attributes={"city": "Utrecht", "orders": n + 1})
    ContactFactory(organization=organization, tags=[vip], attributes={"city": "Delft", "orders": 9})
    ContactFactory(organization=organization, attributes={"city": "Utrecht", "orders": 5})
    page = admin_page(marketer.user, PASSWORD)

    page.goto("/admin/")
    page.get_by_role("link", name="Segments").first.click()
    page.get_by_role("link", name="Add segment").click()
    page.fill("#id_name", "Utrecht VIPs")

    # First row: tag is vip.
    first = page.locator(".segment-row").nth(0)
    first.locator(".segment-field").select_option(label="Tags")
    first = page.locator(".segment-row").nth(0)
    first.locator(".segment-op").select_option(label="contains")
    page.locator(".segment-row").nth(0).locator(".segment-value").fill("vip")

    # Second row: attribute city is Utrecht.
    page.get_by_role("button", name="Add a condition").click()
    second = page.locator(".segment-row").nth(1)
    second.locator(".segment-field").select_option(label="Attribute…")
    page.locator(".segment-row").nth(1).locator(".segment-key").fill("city")
    page.locator(".segment-row").nth(1).locator(".segment-op").select_option(label="is")
    page.locator(".segment-row").nth(1).locator(".segment-value").fill("Utrecht")

    page.get_by_role("button", name="Count matching contacts").click()
    page.locator(".segment-count-result", has_text="3 matching contacts").wait_for()

    # A group: any of orders at least 2, or locale nl.
    page.get_by_role("button", name="Add a group").click()
    group = page.locator(".segment-group .segment-group")
    group.locator(".segment-field").select_option(label="Attribute…")
    group = page.locator(".segment-group .segment-group")
    group.locator(".segment-key").fill("orders")
    group.locator(".segment-op").select_option(label="at least")
    group.locator(".segment-value").fill("2")
    page.get_by_role("button", name="Count matching contacts").click()
    page.locator(".segment-count-result", has_text="2 matching contacts").wait_for()

    # A slip: a value that is no number for "at least" still counts as text, but an empty event name is
    # refused on its row.
    page.get_by_role("button", name="Add a condition").last.click()  # the outer group's
    last = page.locator(".segment-group > .segment-row").last
    last.locator(".segment-field").select_option(label="Custom event")
    page.get_by_role("button", name="Count matching contacts").click()
    page.locator(".segment-row.segment-error").wait_for()
    assert "non-empty string" in page.locator(".segment-row.segment-error").inner_text()
    shot(page, "segment-builder-error")
    page.locator(".segment-row.segment-error .segment-remove").click()
    page.get_by_role("button", name="Count matching contacts").click()
    page.locator(".segment-count-result", has_text="2 matching contacts").wait_for()
    shot(page, "segment-builder-count")

    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".messagelist .success").wait_for()
    segment = Segment.objects.get(organization=organization, name="Utrecht VIPs")
    assert segment.rules == {
        "all": [
            {"field": "tags", "op": "contains", "value": "vip"},
            {"field": "attributes.city", "op": "eq", "value": "Utrecht"},
            {"any": [{"field": "attributes.orders", "op": "gte", "value": 2}]},
        ]
    }
    page.locator("#result_list").get_by_role("link", name="Utrecht VIPs").click()
    assert page.locator(".field-matching_contacts .readonly").inner_text() == "2"
    assert json.loads(page.locator("textarea[name=rules]").input_value()) == segment.rules
