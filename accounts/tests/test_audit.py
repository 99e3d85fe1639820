"""The audit trail: the services that matter append an AuditEvent in their own transaction (who,
what, which object, before/after, request id); owners and admins read it through
GET /api/v1/audit/ and the admin, read only and scoped to their organization."""

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from accounts import services as account_services
from accounts.audit import CHANGES_MAX_BYTES, audit_record
from accounts.models import AuditEvent, Membership, Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from campaigns import dns
from campaigns import services as campaign_services
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, SendingDomain
from campaigns.tests.factories import CampaignFactory, SendingDomainFactory, sends_from
from config.errors import ConflictError
from conftest import bearer_client
from contacts.models import Suppression
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db

AUDIT = "/api/v1/audit/"


def events(org, action=None):
    rows = AuditEvent.objects.filter(organization=org)
    return list(rows.filter(action=action) if action else rows)


def only_event(org, action):
    found = events(org, action)
    assert len(found) == 1, [(e.action, e.object_id) for e in events(org)]
    return found[0]


def assert_event(event, *, actor, object_type, object_id):
    assert event.actor == actor
    assert event.actor_email == actor.email
    assert (event.object_type, event.object_id) == (object_type, str(object_id))


@pytest.fixture
def manager(member_client):
    return member_client(Role.MANAGER)


@pytest.fixture
def owner(member_client):
    return member_client(Role.OWNER)


def launchable(org):
    sends_from(org)
    TagFactory(organization=org, name="vip")
    return CampaignFactory(organization=org)


def running(org):
    return CampaignFactory(organization=org, status=CampaignStatus.RUNNING, planned_at=timezone.now())


# --- campaigns and messages -------------------------------------------------------------------------------


def test_launch_is_audited_with_the_actor_and_the_request_id(manager):
    client, user, org = manager
    campaign = launchable(org)

    response = client.post(f"/api/v1/campaigns/{campaign.pk}/launch", HTTP_X_REQUEST_ID="req-launch-1")
    assert response.status_code == 200, response.content

    event = only_event(org, "campaign.launched")
    assert_event(event, actor=user, object_type="campaign", object_id=campaign.pk)
    assert event.object_repr == campaign.name
    assert event.request_id == "req-launch-1"
    assert event.changes["before"] == {"status": "draft"}
    assert event.changes["after"]["status"] == response.json()["status"]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_pause_resume_cancel_are_audited(manager, suffix):
    client, user, org = manager
    campaign = running(org)
    base = f"/api/v1/campaigns/{campaign.pk}"

    assert client.post(f"{base}/pause{suffix}").status_code == 200
    assert client.post(f"{base}/resume{suffix}").status_code == 200
    assert client.post(f"{base}/cancel{suffix}").status_code == 200

    paused, resumed, cancelled = (
        only_event(org, action) for action in ("campaign.paused", "campaign.resumed", "campaign.cancelled")
    )
    for event in (paused, resumed, cancelled):
        assert_event(event, actor=user, object_type="campaign", object_id=campaign.pk)
    assert paused.changes == {"before": {"status": "running"}, "after": {"status": "paused", "reason": ""}}
    assert resumed.changes == {"before": {"status": "paused"}, "after": {"status": "running"}}
    assert cancelled.changes["before"] == {"status": "running"}
    assert cancelled.changes["after"]["status"] == "cancelled"


def test_a_refused_transition_writes_no_event(manager):
    client, _, org = manager
    campaign = CampaignFactory(organization=org)  # a draft cannot be paused
    assert client.post(f"/api/v1/campaigns/{campaign.pk}/pause").status_code == 409
    assert events(org) == []


def test_a_pause_by_the_system_has_no_actor():
    campaign = running(OrganizationFactory())
    campaign_services.campaign_pause(campaign=campaign, reason="Complaint rate above 0.3%")
    event = only_event(campaign.organization, "campaign.paused")
    assert (event.actor, event.actor_email) == (None, "")
    assert event.changes["after"]["reason"] == "Complaint rate above 0.3%"


def test_resend_is_audited_without_the_recipient_address(manager):
    client, user, org = manager
    campaign = running(org)
    contact = ContactFactory(organization=org, email="private@example.com")
    message = Message.objects.create(
        organization=org, campaign=campaign, contact=contact, to_address=contact.email, status=MessageStatus.FAILED
    )

    assert client.post(f"/api/v1/messages/{message.pk}/resend").status_code == 200

    event = only_event(org, "message.resent")
    assert_event(event, actor=user, object_type="message", object_id=message.pk)
    assert event.changes["before"]["status"] == MessageStatus.FAILED
    assert event.changes["after"]["status"] == MessageStatus.QUEUED
    assert "private@example.com" not in event.object_repr + str(event.changes)


# --- sending domains --------------------------------------------------------------------------------------


def test_sending_domain_add_verify_delete_are_audited(owner, monkeypatch):
    client, user, org = owner
    created = client.post("/api/v1/sending-domains/", {"domain": "mail.example.com"}, format="json")
    assert created.status_code == 201, created.content
    domain_id = created.json()["id"]
    domain = SendingDomain.objects.get(pk=domain_id)
    monkeypatch.setattr(dns, "txt_records", lambda name: [domain.txt_value])

    assert client.post(f"/api/v1/sending-domains/{domain_id}/verify").status_code == 200
    assert client.delete(f"/api/v1/sending-domains/{domain_id}/").status_code == 204

    for action in ("sending_domain.added", "sending_domain.verified", "sending_domain.deleted"):
        event = only_event(org, action)
        assert_event(event, actor=user, object_type="sendingdomain", object_id=domain_id)
        assert event.object_repr == "mail.example.com"
    verified = only_event(org, "sending_domain.verified")
    assert verified.changes == {"before": {"status": "pending"}, "after": {"status": "verified", "method": "dns"}}


def test_a_failed_dns_check_writes_no_event(owner, monkeypatch):
    client, _, org = owner
    domain = SendingDomainFactory(organization=org, status="pending")
    monkeypatch.setattr(dns, "txt_records", lambda name: [])
    assert client.post(f"/api/v1/sending-domains/{domain.pk}/verify").status_code == 400
    assert events(org) == []


def test_confirm_by_the_operator_in_the_admin_is_audited(client):
    domain = SendingDomainFactory(status="pending")
    operator = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(operator)
    response = client.post(
        "/admin/campaigns/sendingdomain/", {"action": "confirm_verified", "_selected_action": [str(domain.pk)]}
    )
    assert response.status_code == 302
    event = only_event(domain.organization, "sending_domain.confirmed")
    assert_event(event, actor=operator, object_type="sendingdomain", object_id=domain.pk)
    assert event.changes["after"] == {"status": "verified", "method": "admin"}


def test_admin_campaign_actions_are_audited_as_the_staff_member(client):
    membership = MembershipFactory(role=Role.MANAGER)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    campaign = running(membership.organization)
    client.force_login(membership.user)
    client.post("/admin/campaigns/campaign/", {"action": "pause", "_selected_action": [str(campaign.pk)]})
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    event = only_event(membership.organization, "campaign.paused")
    assert_event(event, actor=membership.user, object_type="campaign", object_id=campaign.pk)


# --- contacts and suppressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", "/api/v1/contacts/{id}/"), ("post", "/api/v1/contacts/{id}/erase")],
)
def test_erase_is_audited_without_personal_data(manager, method, path):
    client, user, org = manager
    contact = ContactFactory(organization=org, email="gone@example.com", first_name="Gone")
    response = getattr(client, method)(path.format(id=contact.public_id))
    assert response.status_code == 204

    event = only_event(org, "contact.erased")
    assert_event(event, actor=user, object_type="contact", object_id=contact.public_id)
    assert "gone@example.com" not in event.object_repr + str(event.changes)
    assert "Gone" not in event.object_repr


def test_export_is_audited(manager):
    client, user, org = manager
    contact = ContactFactory(organization=org)
    response = client.get(f"/api/v1/contacts/{contact.public_id}/export/")
    assert response.status_code == 200
    assert response.json()["email"] == contact.email
    assert_event(only_event(org, "contact.exported"), actor=user, object_type="contact", object_id=contact.public_id)


def test_admin_csv_export_is_audited_per_organization(client):
    operator = UserFactory(is_superuser=True, is_staff=True)
    ours, theirs = ContactFactory(), ContactFactory()
    mine_too = ContactFactory(organization=ours.organization)
    client.force_login(operator)
    response = client.post(
        "/admin/contacts/contact/",
        {"action": "export_csv", "_selected_action": [str(c.pk) for c in (ours, theirs, mine_too)]},
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content).count(b"@example.com") == 3
    assert only_event(ours.organization, "contacts.exported").changes == {"after": {"count": 2, "format": "csv"}}
    assert only_event(theirs.organization, "contacts.exported").actor == operator


def test_suppression_add_and_remove_are_audited_with_the_address_masked(manager):
    client, user, org = manager
    created = client.post("/api/v1/suppressions/", {"email": "someone@example.com"}, format="json")
    assert created.status_code == 201
    again = client.post("/api/v1/suppressions", {"email": "someone@example.com"}, format="json")
    assert again.status_code == 201  # idempotent: nothing changed, nothing audited
    suppression_id = created.json()["id"]
    assert client.delete(f"/api/v1/suppressions/{suppression_id}/").status_code == 204
    assert not Suppression.objects.filter(pk=suppression_id).exists()

    added, removed = only_event(org, "suppression.added"), only_event(org, "suppression.removed")
    for event in (added, removed):
        assert_event(event, actor=user, object_type="suppression", object_id=suppression_id)
        assert event.object_repr == "email: s…@example.com"
    assert added.changes == {"after": {"kind": "email", "reason": "manual", "source": "api"}}
    assert removed.changes["before"]["kind"] == "email"


def test_admin_suppression_removal_goes_through_the_service(client):
    membership = MembershipFactory(role=Role.MANAGER)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    suppression = Suppression.objects.create(organization=membership.organization, kind="domain", value="spam.test")
    client.force_login(membership.user)
    response = client.post(f"/admin/contacts/suppression/{suppression.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Suppression.objects.filter(pk=suppression.pk).exists()
    event = only_event(membership.organization, "suppression.removed")
    assert (event.actor, event.object_repr) == (membership.user, "domain: spam.test")


# --- members ----------------------------------------------------------------------------------------------


def test_member_invite_role_change_and_removal_are_audited(owner):
    client, user, org = owner
    invited = client.post("/api/v1/members/", {"email": "new@example.com", "role": "viewer"}, format="json")
    assert invited.status_code == 201, invited.content
    member_id = invited.json()["id"]
    assert client.patch(f"/api/v1/members/{member_id}/", {"role": "manager"}, format="json").status_code == 200
    assert client.delete(f"/api/v1/members/{member_id}").status_code == 204

    for action in ("member.invited", "member.role_changed", "member.removed"):
        event = only_event(org, action)
        assert_event(event, actor=user, object_type="membership", object_id=member_id)
        assert event.object_repr == "new@example.com"
    assert only_event(org, "member.invited").changes == {"after": {"email": "new@example.com", "role": "viewer"}}
    assert only_event(org, "member.role_changed").changes == {
        "before": {"role": "viewer"},
        "after": {"role": "manager"},
    }


# --- rollback --------------------------------------------------------------------------------------------


def test_a_rolled_back_action_leaves_no_event():
    campaign = running(OrganizationFactory())

    def pause_then_fail():
        with transaction.atomic():
            campaign_services.campaign_pause(campaign=campaign)
            raise RuntimeError("something later in the same transaction failed")

    with pytest.raises(RuntimeError):
        pause_then_fail()
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    assert events(campaign.organization) == []


def test_an_all_or_nothing_admin_removal_that_is_refused_leaves_no_event(client):
    # Removed in key order: the viewer first, then the last owner, which is refused.
    owner = MembershipFactory(role=Role.OWNER, id=uuid.UUID(int=2))
    org = owner.organization
    viewer = MembershipFactory(organization=org, role=Role.VIEWER, id=uuid.UUID(int=1))
    owner.user.is_staff = True
    owner.user.save(update_fields=["is_staff"])
    client.force_login(owner.user)
    response = client.post(
        "/admin/accounts/membership/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [str(viewer.pk), str(owner.pk)]},
        follow=True,
    )
    assert b"at least one owner" in response.content
    assert Membership.objects.filter(pk__in=[viewer.pk, owner.pk]).count() == 2
    assert events(org) == []


def test_the_trail_cannot_be_changed_through_the_orm():
    org = OrganizationFactory()
    with transaction.atomic():
        event = audit_record(organization=org, by=None, action="test.recorded")
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.action = "forged"
    with pytest.raises(TypeError):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.recorded"


def test_a_large_change_summary_is_cut_down():
    org = OrganizationFactory()
    event = audit_record(
        organization=org, by=None, action="test.recorded", changes={"after": {"body": "x" * CHANGES_MAX_BYTES}}
    )
    assert event.changes == {"truncated": True, "keys": ["after"]}


def test_deleting_the_actor_keeps_the_event_and_its_email(owner):
    client, _, org = owner
    other = MembershipFactory(organization=org, role=Role.ADMIN)
    campaign = running(org)
    campaign_services.campaign_pause(campaign=campaign, by=other.user)
    email = other.user.email
    other.user.delete()
    body = client.get(AUDIT).json()
    assert body["results"][0]["actor"] == {"id": None, "email": email}


# --- the API ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
@pytest.mark.parametrize("path", ["/api/v1/audit/", "/api/v1/audit"])
def test_owners_and_admins_list_the_trail_newest_first(member_client, role, path):
    client, user, org = member_client(role)
    campaign = running(org)
    campaign_services.campaign_pause(campaign=campaign, by=user)
    campaign_services.campaign_resume(campaign=campaign, by=user)

    response = client.get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    latest = body["results"][0]
    assert latest["action"] == "campaign.resumed"
    assert latest["id"] == str(AuditEvent.objects.get(action="campaign.resumed").pk)
    assert latest["actor"] == {"id": str(user.pk), "email": user.email}
    assert latest["object"] == {"type": "campaign", "id": str(campaign.pk), "repr": campaign.name}
    assert latest["changes"] == {"before": {"status": "paused"}, "after": {"status": "running"}}
    assert set(latest) == {"id", "action", "actor", "object", "changes", "request_id", "created_at"}
    assert body["results"][1]["action"] == "campaign.paused"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT, Role.VIEWER])
def test_other_roles_get_403(member_client, role):
    client, _, org = member_client(role)
    audit_record(organization=org, by=None, action="test.recorded")
    for path in ("/api/v1/audit/", "/api/v1/audit"):
        assert client.get(path).status_code == 403


def test_the_trail_is_read_only(owner):
    client, _, _ = owner
    assert client.post(AUDIT, {"action": "forged"}, format="json").status_code in (403, 405)
    assert AuditEvent.objects.count() == 0


def test_another_organizations_events_never_appear(owner):
    client, user, org = owner
    theirs = running(OrganizationFactory())
    campaign_services.campaign_pause(campaign=theirs, by=UserFactory())
    # Even a user who belongs to both sees only the organization the request acts in.
    MembershipFactory(user=user, organization=theirs.organization, role=Role.VIEWER)
    audit_record(organization=org, by=user, action="test.recorded")
    body = client.get(AUDIT).json()
    assert [row["action"] for row in body["results"]] == ["test.recorded"]
    by_object = client.get(AUDIT, {"object_id": str(theirs.pk)}).json()
    assert by_object["count"] == 0


def test_filters(owner):
    client, user, org = owner
    other = MembershipFactory(organization=org, role=Role.ADMIN).user
    first, second = running(org), running(org)
    campaign_services.campaign_pause(campaign=first, by=user)
    campaign_services.campaign_pause(campaign=second, by=other)
    campaign_services.campaign_cancel(campaign=second, by=other)
    AuditEvent.objects.create(
        organization=org, action="test.recorded", created_at=timezone.now() - timedelta(days=10), actor=user
    )

    def actions(**params):
        response = client.get(AUDIT, params)
        assert response.status_code == 200, response.content
        return sorted(row["action"] for row in response.json()["results"])

    assert actions(action="campaign.paused") == ["campaign.paused", "campaign.paused"]
    assert actions(object_type="campaign", object_id=str(second.pk)) == ["campaign.cancelled", "campaign.paused"]
    assert actions(actor=str(other.pk)) == ["campaign.cancelled", "campaign.paused"]
    today = timezone.localdate(timezone=ZoneInfo(org.timezone))
    assert actions(**{"from": today.isoformat()}) == ["campaign.cancelled", "campaign.paused", "campaign.paused"]
    ten_days_ago = (today - timedelta(days=10)).isoformat()
    assert actions(**{"from": ten_days_ago, "to": ten_days_ago}) == ["test.recorded"]
    assert actions(action="") == sorted(["campaign.cancelled", "campaign.paused", "campaign.paused", "test.recorded"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "2030-01-02", "to": "2030-01-01"}, "from"),
        ({"actor": "not-a-uuid"}, "actor"),
        ({"action": "x" * 65}, "action"),
    ],
)
def test_bad_filters_are_400_naming_the_field(owner, params, field):
    client, _, _ = owner
    response = client.get(AUDIT, params)
    assert response.status_code == 400
    assert field in response.json()


def test_list_queries_do_not_grow_with_the_page(owner, django_assert_max_num_queries):
    client, _, org = owner
    for _ in range(25):
        audit_record(organization=org, by=UserFactory(), action="test.recorded", changes={"after": {"n": 1}})
    # The user, the membership, the count and the page: actors come from the row, not a join per row.
    with django_assert_max_num_queries(4):
        body = client.get(AUDIT).json()
    assert body["count"] == 25
    assert len({row["actor"]["email"] for row in body["results"]}) == 25


# --- the admin --------------------------------------------------------------------------------------------


def staff(role, organization=None):
    membership = MembershipFactory(role=role, organization=organization or OrganizationFactory())
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    return membership


def test_admin_changelist_is_read_only_and_scoped(client):
    membership = staff(Role.ADMIN)
    ours = audit_record(organization=membership.organization, by=membership.user, action="ours.recorded")
    theirs = audit_record(organization=OrganizationFactory(), by=None, action="theirs.recorded")
    client.force_login(membership.user)

    changelist = client.get("/admin/accounts/auditevent/")
    assert changelist.status_code == 200
    assert b"ours.recorded" in changelist.content
    assert b"theirs.recorded" not in changelist.content
    assert b"delete_selected" not in changelist.content
    assert client.get("/admin/accounts/auditevent/add/").status_code == 403
    page = client.get(f"/admin/accounts/auditevent/{ours.pk}/change/")
    assert page.status_code == 200
    assert b'name="action"' not in page.content  # shown, not editable
    client.post(f"/admin/accounts/auditevent/{ours.pk}/change/", {"action": "forged"})
    assert client.post(f"/admin/accounts/auditevent/{ours.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"/admin/accounts/auditevent/{theirs.pk}/change/").status_code == 302
    assert AuditEvent.objects.get(pk=ours.pk).action == "ours.recorded"
    assert AuditEvent.objects.count() == 2


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_admin_trail_is_for_owners_and_admins(client, role):
    membership = staff(role)
    audit_record(organization=membership.organization, by=None, action="ours.recorded")
    client.force_login(membership.user)
    assert client.get("/admin/accounts/auditevent/").status_code == 403


def test_superuser_sees_every_organization_but_cannot_change_anything(client):
    first = audit_record(organization=OrganizationFactory(), by=None, action="first.recorded")
    audit_record(organization=OrganizationFactory(), by=None, action="second.recorded")
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    changelist = client.get("/admin/accounts/auditevent/")
    assert b"first.recorded" in changelist.content
    assert b"second.recorded" in changelist.content
    assert client.get("/admin/accounts/auditevent/add/").status_code == 403
    assert client.post(f"/admin/accounts/auditevent/{first.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.count() == 2


def test_a_worker_action_records_the_task_id():
    from config.logging import request_id_var

    campaign = running(OrganizationFactory())
    token = request_id_var.set("task:abc123")
    try:
        campaign_services.campaign_pause(campaign=campaign)
    finally:
        request_id_var.reset(token)
    assert only_event(campaign.organization, "campaign.paused").request_id == "task:abc123"


def test_a_refused_last_owner_removal_writes_nothing():
    membership = MembershipFactory(role=Role.OWNER)
    with pytest.raises(ConflictError):
        account_services.member_remove(membership=membership, by=membership.user)
    assert events(membership.organization) == []


def test_x_organization_picks_whose_trail_is_read(owner):
    client, user, _ = owner
    other = MembershipFactory(user=user, role=Role.OWNER).organization
    audit_record(organization=other, by=user, action="other.recorded")
    assert client.get(AUDIT).json()["count"] == 0
    assert bearer_client(user, other).get(AUDIT).json()["results"][0]["action"] == "other.recorded"
