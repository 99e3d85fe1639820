"""A marketer who knows no ids and no JSON runs a campaign in a real browser: makes a list and fills it,
picks it by name in the campaign form, sets the schedule with the date and time widgets, dry-runs it
(a table and a chart), launches it after a confirmation, pauses and resumes it, and watches the figures
follow the sends without reloading. Screenshots go to var/screenshots/."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from campaigns import sending
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.tests.factories import EmailTemplateFactory, sends_from
from contacts.models import ContactList, ListMembership
from contacts.tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"campaign-{name}.png"), full_page=True)


def send_due() -> None:
    """The send pipeline's own dispatch and send, as the beat and the workers run them."""
    later = timezone.now() + timedelta(minutes=5)
    for ids, lease in sending.dispatch_due(now=later).batches:
        sending.send_batch(message_ids=ids, lease=datetime.fromisoformat(lease))


def test_a_marketer_runs_a_campaign_from_the_admin_without_ids_or_json(admin_page, mailoutbox):
    organization = OrganizationFactory(name="Acme", timezone="Europe/Amsterdam")
    sends_from(organization, "news@mail.acme.test")
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    EmailTemplateFactory(organization=organization, name="Spring newsletter", subject="Spring is here")
    for name in ("ada", "bob", "cy"):
        ContactFactory(organization=organization, email=f"{name}@example.org", first_name=name.capitalize())
    ContactListFactory(name="Globex list")  # another organization's
    page = admin_page(marketer.user, PASSWORD)

    # A list, made and filled by name.
    page.goto("/admin/contacts/contactlist/add/")
    if not page.input_value("#id_organization"):
        page.select_option("#id_organization", label="Acme")
    page.fill("#id_name", "Spring customers")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".messagelist .success").wait_for()
    page.goto("/admin/contacts/contact/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", value="add_to_list")
    page.select_option("select[name=contact_list]", label="Spring customers")
    page.get_by_role("button", name="Go").click()
    page.locator(".messagelist li").first.wait_for()
    assert ListMembership.objects.filter(contact_list__name="Spring customers").count() == 3

    # The campaign, by names, dates, times and ticks.
    page.goto("/admin/")
    page.locator("tr.model-campaign").get_by_role("link", name="Add").click()
    assert page.input_value("#id_organization") == str(organization.pk)  # preselected: the only one
    page.fill("#id_name", "Spring sale")
    page.select_option("#id_channel", label="Email")
    page.select_option("#id_template", label="Spring newsletter")
    offered = page.locator("#id_audience_lists_from option").all_inner_texts()
    assert "Spring customers" in offered
    assert "Globex list" not in offered
    page.select_option("#id_audience_lists_from", label="Spring customers")
    page.click("#id_audience_lists_add")
    page.locator("#id_start_date").locator("xpath=..").get_by_role("link", name="Today").click()
    today = page.input_value("#id_start_date")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", today)
    page.fill("#id_start_time", "00:00")
    page.select_option("#id_schedule_timezone", label="Europe/Amsterdam")
    for day in range(7):
        page.check(f"#id_window_days_{day}")
    page.fill("#id_window_start", "00:00")
    page.fill("#id_window_end", "00:00")
    page.fill("#id_holidays", "2030-12-25\n2030-12-26")
    page.fill("#id_max_per_hour", "3600")
    page.get_by_label("mail.acme.test").check()
    shot(page, "1-form")
    page.get_by_role("button", name="Save and continue editing").click()
    page.locator(".messagelist .success").wait_for()
    campaign = Campaign.objects.get(name="Spring sale")
    spring = ContactList.objects.get(organization=organization, name="Spring customers")
    assert campaign.audience == {"lists": [str(spring.pk)]}
    assert campaign.schedule["window"] == {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "00:00"}
    assert campaign.schedule["holidays"] == ["2030-12-25", "2030-12-26"]
    assert campaign.schedule["timezone"] == "Europe/Amsterdam"
    assert re.fullmatch(rf"{today}T00:00:00\+0[12]:00", campaign.schedule["start_at"])
    assert (campaign.throttle, campaign.sending_domains) == ({"max_per_hour": 3600}, ["mail.acme.test"])
    # The page shows what was chosen, by name.
    assert page.locator("#id_audience_lists_to option").all_inner_texts() == ["Spring customers"]
    assert page.is_checked("#id_window_days_6")

    # Dry run: a table and a chart, nothing written.
    page.get_by_role("link", name="Dry run").click()
    table = page.locator("table.dry-run-summary")
    table.wait_for()
    assert page.locator(".dry-run-recipients").inner_text() == "3"
    assert "(Europe/Amsterdam)" in page.locator(".dry-run-first").inner_text()
    chart = page.locator("#dry-run .chart svg")
    assert chart.count() == 1
    assert chart.locator("title").first.text_content() == "Messages planned per day"
    assert chart.bounding_box()["width"] > 100
    assert page.locator("table.dry-run-per-domain tbody tr").first.locator("td").first.inner_text() == "mail.acme.test"
    shot(page, "2-dry-run")
    assert not Message.objects.exists()
    page.get_by_role("link", name="Back to the campaign").click()

    # Launch, after a confirmation that says how many and when.
    page.locator("#campaign-workspace").get_by_role("link", name="Launch").click()
    assert page.locator(".dry-run-recipients").inner_text() == "3"
    assert page.locator(".dry-run-first").inner_text().endswith("(Europe/Amsterdam)")
    assert page.locator(".dry-run-last").inner_text().endswith("(Europe/Amsterdam)")
    shot(page, "3-launch-confirmation")
    page.get_by_role("button", name="Yes, launch it").click()
    page.locator(".messagelist .success").wait_for()
    assert "Spring sale: launched." in page.locator(".messagelist").inner_text()
    figures = page.locator("#campaign-figures")
    assert figures.locator(".figure-status").inner_text().startswith("Running")
    assert figures.locator(".figure-recipients").inner_text() == "3"
    assert figures.locator(".figure-pending").inner_text() == "3"
    assert page.locator("#id_audience_lists_from").count() == 0  # launched: nothing to edit
    shot(page, "4-running")

    # Pause and resume, each confirmed.
    page.locator("#campaign-workspace").get_by_role("link", name="Pause").click()
    assert page.locator(".confirm-count").inner_text() == "3"
    page.get_by_role("button", name="Yes, pause it").click()
    page.locator(".messagelist .success").wait_for()
    assert figures.locator(".figure-status").inner_text().startswith("Paused")
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.PAUSED
    page.locator("#campaign-workspace").get_by_role("link", name="Resume").click()
    page.get_by_role("button", name="Yes, resume it").click()
    page.locator(".messagelist .success").wait_for()
    assert figures.locator(".figure-status").inner_text().startswith("Running")

    # The workers send; the open page's figures follow without a reload.
    send_due()
    assert sorted(message.to[0] for message in mailoutbox) == ["ada@example.org", "bob@example.org", "cy@example.org"]
    page.wait_for_function(
        "document.querySelector('#campaign-figures .figure-sent').textContent.trim() === '3'", timeout=20_000
    )
    # Everything went out, so the campaign completed: the page reloads itself and offers no more buttons.
    page.wait_for_function(
        "document.querySelector('#campaign-figures .figure-status').textContent.trim().startsWith('Completed')"
        " && !document.querySelector('.campaign-buttons a[href$=\"/status/pause/\"]')",
        timeout=20_000,
    )
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED
    shot(page, "5-sent")

    # The recipients, filtered by status.
    page.locator("#campaign-workspace").get_by_role("link", name="Recipients").click()
    page.select_option("#id_status", label="sent")
    page.get_by_role("button", name="Filter").click()
    assert sorted(page.locator("#recipient-list tbody tr td:first-child").all_inner_texts()) == [
        "ada@example.org",
        "bob@example.org",
        "cy@example.org",
    ]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
    shot(page, "6-recipients")
