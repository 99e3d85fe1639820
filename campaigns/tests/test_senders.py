"""Senders and sending domains: the From a message carries, the organization's verified domains,
the launch rule that refuses an unverified From domain, and the sending-domain API and admin."""

from email.utils import parseaddr

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, UserFactory
from campaigns import dns, sending, services
from campaigns.models import Campaign, CampaignVariant, Message, SendingDomain
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, SendingDomainFactory
from config.errors import DomainError
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/campaigns/"
DOMAINS = "/api/v1/sending-domains/"


@pytest.fixture
def dns_records(monkeypatch):
    """The DNS boundary: {name: [TXT strings]}; a name mapped to an exception raises it."""
    published: dict = {}

    def txt_records(name):
        found = published.get(name, [])
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(dns, "txt_records", txt_records)
    return published


@pytest.fixture
def owner(member_client):
    client, user, org = member_client(Role.OWNER)
    return client, user, org


def audience_of(org, count=3):
    vip = TagFactory(organization=org, name="vip")
    return [ContactFactory(organization=org, tags=[vip]) for _ in range(count)]


def launch(campaign, capture):
    with capture(execute=True):
        return services.campaign_launch(campaign=campaign)


def dispatch(capture):
    with capture(execute=True):
        return sending.dispatch_due()


# --- the From a message carries --------------------------------------------------------------------


def test_without_sending_domains_the_template_from_goes_out_as_written(django_capture_on_commit_callbacks):
    template = EmailTemplateFactory(from_email="shop@example.com", from_name="The Shop")
    org = template.organization
    SendingDomainFactory(organization=org, domain="example.com")
    audience_of(org, 2)
    campaign = CampaignFactory(organization=org, template=template)

    launch(campaign, django_capture_on_commit_callbacks)
    # Planned (and throttled) on the From's own domain, not on DEFAULT_FROM_EMAIL's.
    assert set(Message.objects.filter(campaign=campaign).values_list("sending_domain", flat=True)) == {"example.com"}
    dispatch(django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 2
    assert {parseaddr(email.from_email) for email in mail.outbox} == {("The Shop", "shop@example.com")}
    assert {email.extra_headers["Message-ID"].rpartition("@")[2] for email in mail.outbox} == {"example.com>"}


def test_a_planned_domain_never_rewrites_the_from_of_a_campaign_without_sending_domains(
    django_capture_on_commit_callbacks,
):
    from campaigns.tests.test_sending import queue, running_campaign

    campaign = running_campaign(from_email="shop@example.com")
    # A message planned on another domain (e.g. before this rule, from DEFAULT_FROM_EMAIL's).
    queue(campaign, [ContactFactory(organization=campaign.organization)], domain="localhost")
    dispatch(django_capture_on_commit_callbacks)
    assert [parseaddr(email.from_email)[1] for email in mail.outbox] == ["shop@example.com"]


def test_dry_run_says_which_from_each_sending_domain_produces(owner):
    client, _, org = owner
    audience_of(org, 4)
    for domain in ("a.example.com", "b.example.com"):
        SendingDomainFactory(organization=org, domain=domain)
    template = EmailTemplateFactory(organization=org, from_email="shop@example.com")
    campaign = CampaignFactory(organization=org, template=template, sending_domains=["a.example.com", "b.example.com"])

    response = client.post(f"{CAMPAIGNS}{campaign.pk}/dry-run")
    assert response.status_code == 200, response.content
    assert response.json()["per_domain"] == [
        {"domain": "a.example.com", "count": 2, "from_email": "shop@a.example.com", "verified": True},
        {"domain": "b.example.com", "count": 2, "from_email": "shop@b.example.com", "verified": True},
    ]

    campaign.sending_domains = []
    campaign.save()
    body = client.post(f"{CAMPAIGNS}{campaign.pk}/dry-run/").json()
    # Unverified: the dry-run says so; launch refuses it.
    assert body["per_domain"] == [
        {"domain": "example.com", "count": 4, "from_email": "shop@example.com", "verified": False}
    ]


def test_the_operators_default_sender_needs_no_verification(settings, django_capture_on_commit_callbacks):
    settings.DEFAULT_FROM_EMAIL = "Campaign Central <noreply@operator.example>"
    campaign = CampaignFactory()  # no from_email on the template, no default sender on the organization
    audience_of(campaign.organization, 1)
    launch(campaign, django_capture_on_commit_callbacks)
    dispatch(django_capture_on_commit_callbacks)
    assert [parseaddr(email.from_email)[1] for email in mail.outbox] == ["noreply@operator.example"]


# --- the launch rule ---------------------------------------------------------------------------------


def test_launch_refuses_a_from_domain_the_organization_has_not_verified(owner, django_capture_on_commit_callbacks):
    client, _, org = owner
    audience_of(org)
    template = EmailTemplateFactory(organization=org, from_email="security@paypal.com")
    campaign = CampaignFactory(organization=org, template=template)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{CAMPAIGNS}{campaign.pk}/launch")
    assert response.status_code == 400, response.content
    [problem] = response.json()["from_email"]
    assert "paypal.com" in problem
    assert "/api/v1/sending-domains/" in problem  # how to verify it
    campaign.refresh_from_db()
    assert (campaign.status, campaign.template_version_id) == ("draft", None)
    assert not Message.objects.exists()

    pending = services.sending_domain_add(organization=org, domain="paypal.com")
    response = client.post(f"{CAMPAIGNS}{campaign.pk}/launch/")
    assert response.status_code == 400
    # A pending domain: the message gives its own TXT record and verify URL.
    assert pending.txt_value in response.json()["from_email"][0]
    assert f"/api/v1/sending-domains/{pending.pk}/verify" in response.json()["from_email"][0]

    services.sending_domain_confirm(sending_domain=pending, by=UserFactory(is_superuser=True, is_staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{CAMPAIGNS}{campaign.pk}/launch")
    assert response.status_code == 200, response.content
    assert Message.objects.filter(campaign=campaign).count() == 3


@pytest.mark.parametrize("where", ["organization", "variant", "followup"])
def test_every_from_a_campaign_would_use_is_checked_at_launch(where):
    campaign = CampaignFactory()
    org = campaign.organization
    audience_of(org)
    if where == "organization":
        org.default_from_email = "news@unverified.example"
        org.save()
        field = "from_email"
    elif where == "variant":
        other = EmailTemplateFactory(organization=org, from_email="b@unverified.example")
        CampaignVariant.objects.create(campaign=campaign, name="B", template=other)
        field = "from_email"
    else:
        later = EmailTemplateFactory(organization=org, from_email="later@unverified.example")
        campaign.followup = {"enabled": True, "days": 2, "template": str(later.pk)}
        campaign.save()
        field = "from_email"
    with pytest.raises(ValidationError) as refused:
        services.campaign_launch(campaign=campaign)
    assert "unverified.example" in refused.value.message_dict[field][0]
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_campaign_sending_domains_must_be_verified_domains_of_the_organization(owner):
    client, _, org = owner
    template = EmailTemplateFactory(organization=org)
    SendingDomainFactory(organization=org, domain="mail.example.com")
    SendingDomainFactory(organization=org, domain="pending.example.com", status="pending")
    SendingDomainFactory(domain="theirs.example.com")  # verified, by another organization
    body = {"name": "x", "template": str(template.pk), "audience": {"tags": ["vip"]}}

    for domains in (["pending.example.com"], ["theirs.example.com"], ["mail.example.com", "paypal.com"]):
        response = client.post(CAMPAIGNS, {**body, "sending_domains": domains}, format="json")
        assert response.status_code == 400, (domains, response.content)
        assert domains[-1] in response.json()["sending_domains"][0]
    assert not Campaign.objects.filter(organization=org).exists()

    created = client.post(CAMPAIGNS, {**body, "sending_domains": ["Mail.Example.com"]}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["sending_domains"] == ["mail.example.com"]
    url = f"{CAMPAIGNS}{created.json()['id']}/"
    patched = client.patch(url, {"sending_domains": ["pending.example.com"]}, format="json")
    assert patched.status_code == 400
    assert "sending_domains" in patched.json()
    assert Campaign.objects.get(pk=created.json()["id"]).sending_domains == ["mail.example.com"]


# --- schedule dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"start_at": "0001-01-01T00:00:00+00:00"}, "schedule.start_at"),
        ({"start_at": "9999-12-31T23:59:59-05:00"}, "schedule.start_at"),
        ({"holidays": ["2026-12-25", "1900-01-01"]}, "schedule.holidays"),
        ({"holidays": ["9999-12-31"]}, "schedule.holidays"),
    ],
)
def test_schedule_dates_outside_the_sane_range_are_a_400_naming_the_field(owner, schedule, field):
    client, _, org = owner
    template = EmailTemplateFactory(organization=org)
    body = {"name": "x", "template": str(template.pk), "audience": {"tags": ["vip"]}, "schedule": schedule}
    response = client.post(CAMPAIGNS, body, format="json")
    assert response.status_code == 400, response.content
    assert "between the years" in response.json()[field][0]
    assert not Campaign.objects.filter(organization=org).exists()
    draft = CampaignFactory(organization=org, template=template)
    response = client.patch(f"{CAMPAIGNS}{draft.pk}/", {"schedule": schedule}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    draft.refresh_from_db()
    assert draft.schedule == {}


# --- the sending-domain list ---------------------------------------------------------------------------


def test_sending_domains_api_add_list_verify_delete(owner, dns_records):
    client, user, _ = owner
    created = client.post(DOMAINS, {"domain": " Mail.Example.COM. "}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["domain"], body["status"], body["method"]) == ("mail.example.com", "pending", "")
    record = body["verification_record"]
    assert record["type"] == "TXT"
    assert record["names"] == ["mail.example.com", "_campaign-central.mail.example.com"]
    token = SendingDomain.objects.get(pk=body["id"]).verification_token
    assert record["value"] == f"campaign-central-verification={token}"

    assert client.post(DOMAINS.rstrip("/"), {"domain": "mail.example.com"}, format="json").status_code == 400
    # Verification is earned, never posted.
    forged = client.post(DOMAINS, {"domain": "paypal.com", "status": "verified", "method": "admin"}, format="json")
    assert (forged.status_code, forged.json()["status"]) == (201, "pending")
    assert client.get(DOMAINS).json()["count"] == 2
    assert client.get(f"{DOMAINS}{body['id']}").json()["domain"] == "mail.example.com"

    verify = f"{DOMAINS}{body['id']}/verify"
    dns_records["mail.example.com"] = ["v=spf1 -all", "campaign-central-verification=not-the-token"]
    refused = client.post(verify)
    assert refused.status_code == 400
    assert "No TXT record" in refused.json()["domain"][0]
    row = SendingDomain.objects.get(pk=body["id"])
    assert (row.status, row.last_check_error[:12]) == ("pending", "No TXT recor")
    assert row.last_checked_at is not None

    dns_records["mail.example.com"] = dns.LookupFailed("DNS did not answer for mail.example.com: Timeout")
    unreachable = client.post(f"{verify}/")
    assert unreachable.status_code == 400
    assert "Try again" in unreachable.json()["domain"][0]

    dns_records["mail.example.com"] = []
    dns_records["_campaign-central.mail.example.com"] = [record["value"]]
    verified = client.post(verify)
    assert verified.status_code == 200, verified.content
    assert (verified.json()["status"], verified.json()["method"]) == ("verified", "dns")
    assert verified.json()["verified_by"] == user.email

    assert client.delete(f"{DOMAINS}{body['id']}/").status_code == 204
    assert list(SendingDomain.objects.values_list("domain", flat=True)) == ["paypal.com"]


@pytest.mark.parametrize("domain", ["not a domain", "user@example.com", "localhost", "x" * 300 + ".com", "1.2.3.4", ""])
def test_a_bad_domain_is_a_400_naming_domain(owner, domain):
    client, _, _ = owner
    response = client.post(DOMAINS, {"domain": domain}, format="json")
    assert response.status_code == 400, response.content
    assert "domain" in response.json()
    assert not SendingDomain.objects.exists()


def test_sending_domains_are_the_organizations_own(owner, member_client, dns_records):
    client, _, _ = owner
    theirs = SendingDomainFactory(status="pending", domain="theirs.example.com")
    dns_records["theirs.example.com"] = [theirs.txt_value]
    assert client.get(DOMAINS).json()["count"] == 0
    for method, url in [
        ("get", f"{DOMAINS}{theirs.pk}/"),
        ("get", f"{DOMAINS}{theirs.pk}"),
        ("delete", f"{DOMAINS}{theirs.pk}/"),
        ("post", f"{DOMAINS}{theirs.pk}/verify"),
        ("post", f"{DOMAINS}{theirs.pk}/verify/"),
    ]:
        assert getattr(client, method)(url).status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.status == "pending"

    # Organization settings: everyone reads, owners and admins change.
    manager, _, org = member_client(Role.MANAGER)
    mine = SendingDomainFactory(organization=org, status="pending")
    assert manager.get(DOMAINS).json()["count"] == 1
    assert manager.post(DOMAINS, {"domain": "new.example.com"}, format="json").status_code == 403
    assert manager.post(f"{DOMAINS}{mine.pk}/verify").status_code == 403
    assert manager.delete(f"{DOMAINS}{mine.pk}/").status_code == 403


def test_a_domain_a_launched_campaign_sends_from_cannot_be_deleted(owner):
    client, _, org = owner
    domain = SendingDomainFactory(organization=org, domain="mail.example.com")
    CampaignFactory(organization=org, status="running", sending_domains=["mail.example.com"], name="Spring")
    response = client.delete(f"{DOMAINS}{domain.pk}/")
    assert response.status_code == 409
    assert "Spring" in response.json()["detail"]
    assert SendingDomain.objects.filter(pk=domain.pk).exists()


def test_only_the_platform_operator_confirms_a_domain_without_dns():
    membership = MembershipFactory(role=Role.OWNER)
    domain = SendingDomainFactory(organization=membership.organization, domain="paypal.com", status="pending")
    with pytest.raises(DomainError):
        services.sending_domain_confirm(sending_domain=domain, by=membership.user)
    domain.refresh_from_db()
    assert domain.status == "pending"
    operator = UserFactory(is_superuser=True, is_staff=True)
    confirmed = services.sending_domain_confirm(sending_domain=domain, by=operator)
    assert (confirmed.status, confirmed.method, confirmed.verified_by) == ("verified", "admin", operator)


# --- the admin -------------------------------------------------------------------------------------------


def test_admin_adds_verifies_and_confirms_through_the_services(client, dns_records):
    membership = MembershipFactory(role=Role.OWNER)
    org = membership.organization
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    SendingDomainFactory(domain="not-mine.example.com")
    client.force_login(membership.user)

    added = client.post(
        "/admin/campaigns/sendingdomain/add/", {"organization": str(org.pk), "domain": "Mail.Example.com"}
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    domain = SendingDomain.objects.get(organization=org)
    assert (domain.domain, domain.status, domain.created_by) == ("mail.example.com", "pending", membership.user)
    again = client.post(
        "/admin/campaigns/sendingdomain/add/", {"organization": str(org.pk), "domain": "mail.example.com"}
    )
    assert again.status_code == 200  # the form again, with the reason
    assert b"already in this organization" in again.content

    listing = client.get("/admin/campaigns/sendingdomain/")
    assert b"mail.example.com" in listing.content
    assert b"not-mine.example.com" not in listing.content

    def act(action):
        return client.post(
            "/admin/campaigns/sendingdomain/", {"action": action, "_selected_action": [str(domain.pk)]}, follow=True
        )

    assert b"only" in act("confirm_verified").content.lower()  # an organization owner cannot vouch for itself
    domain.refresh_from_db()
    assert domain.status == "pending"

    assert b"No TXT record" in act("verify_now").content
    dns_records["mail.example.com"] = [domain.txt_value]
    act("verify_now")
    domain.refresh_from_db()
    assert (domain.status, domain.method) == ("verified", "dns")

    pending = SendingDomainFactory(organization=org, domain="other.example.com", status="pending")
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    client.post(
        "/admin/campaigns/sendingdomain/", {"action": "confirm_verified", "_selected_action": [str(pending.pk)]}
    )
    pending.refresh_from_db()
    assert (pending.status, pending.method) == ("verified", "admin")
