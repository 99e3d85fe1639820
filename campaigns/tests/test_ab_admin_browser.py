"""An A/B test watched and decided in a real browser: a marketer opens the running campaign, reads the
per-variant figures and the p-value, picks variant B by hand, confirms, and sees the test decided."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from campaigns import ab
from campaigns.models import Message, MessageStatus
from campaigns.tests.test_ab import ab_campaign, launch_and_prepare, send_test

pytestmark = pytest.mark.django_db(transaction=True)
M = MessageStatus


def test_a_marketer_reads_the_test_and_picks_variant_b(admin_page):
    organization = OrganizationFactory(name="Acme")
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    campaign = launch_and_prepare(ab_campaign(contacts=500, organization=organization))
    campaign.name = "Spring sale"
    campaign.save(update_fields=["name"])
    send_test(campaign, opened={"A": 10, "B": 20}, when=timezone.now() - timedelta(minutes=20))
    state = ab.campaign_ab_state(campaign)
    assert state["status"] == "waiting"
    held_ids = set(Message.objects.filter(campaign=campaign, status=M.HELD).values_list("pk", flat=True))
    page = admin_page(marketer.user, PASSWORD)

    page.goto("/admin/")
    page.locator("tr.model-campaign a").first.click()
    page.get_by_role("link", name="Spring sale").click()
    panel = page.locator("#ab-test")
    panel.wait_for()
    assert panel.locator(".ab-status").inner_text().strip().lower() == "waiting"
    assert panel.locator(".ab-held").inner_text().strip() == str(len(held_ids))
    assert panel.locator(".ab-p-value").inner_text().strip() == f"{state['p_value']:.4g}"
    rows = panel.locator("table.ab-variants tbody tr")
    assert rows.count() == 2
    figures = {row["variant"]: row for row in state["per_variant"]}
    for name in ("A", "B"):
        cells = panel.locator(f'tr[data-variant="{name}"] td').all_inner_texts()
        row = figures[name]
        assert cells[:5] == [name, str(row["sent"]), str(row["opened"]), str(row["clicked"]), f"{row['rate']:.1%}"]

    panel.locator('tr[data-variant="B"]').get_by_role("button", name="Pick winner").click()
    page.get_by_role("button", name="Yes, pick B").wait_for()
    assert f"The {len(held_ids)} held messages" in page.locator("#content-main").inner_text()
    campaign.refresh_from_db()
    assert campaign.ab_result == {}  # asked, not decided yet
    page.get_by_role("button", name="Yes, pick B").click()

    page.locator(".messagelist .success").wait_for()
    assert "variant B picked as the winner" in page.locator(".messagelist").inner_text()
    panel = page.locator("#ab-test")
    assert panel.locator(".ab-status").inner_text().strip().lower() == "decided"
    assert panel.locator(".ab-winner").inner_text().strip() == "B"
    assert panel.locator(".ab-decided-by").inner_text().strip() == "manual"
    assert panel.locator(".ab-held").inner_text().strip() == "0"
    assert panel.get_by_role("button", name="Pick winner").count() == 0
    campaign.refresh_from_db()
    assert (campaign.ab_result["winner"], campaign.ab_result["decided_by"]) == ("B", "manual")
    released = Message.objects.filter(pk__in=held_ids)
    assert set(released.values_list("variant__name", "status")) == {("B", M.QUEUED)}
