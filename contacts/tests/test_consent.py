"""Consent per channel and phone-only contacts: the API, the CSV import, the admin and the audience."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from contacts import services
from contacts.audience import AudienceSpec, audience_resolve, contacts_reachable
from contacts.models import Contact, ContactTag, ImportJob, ImportStatus
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db

CONTACTS = "/api/v1/contacts/"


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def manager(member_client):
    return member_client(Role.MANAGER)


# --- API ------------------------------------------------------------------------------------------


def test_consent_is_set_through_the_api_and_a_patch_changes_only_the_channels_given(manager):
    client, _, _ = manager
    response = client.post(
        CONTACTS, {"email": "ana@example.com", "phone": "+31612345678", "consent": {"sms": True}}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["consent"] == {"email": None, "sms": True, "whatsapp": None}
    assert Contact.objects.get(public_id=body["id"]).consent == {"sms": True}

    response = client.patch(f"{CONTACTS}{body['id']}/", {"consent": {"whatsapp": False}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["consent"] == {"email": None, "sms": True, "whatsapp": False}

    # null clears an answer: the channel follows the status again.
    response = client.patch(f"{CONTACTS}{body['id']}/", {"consent": {"sms": None}}, format="json")
    assert response.json()["consent"] == {"email": None, "sms": None, "whatsapp": False}
    assert Contact.objects.get(public_id=body["id"]).consent == {"whatsapp": False}


@pytest.mark.parametrize(
    ("consent", "field"),
    [
        ({"fax": True}, "consent.fax"),
        ({"sms": "yes"}, "consent.sms"),
        ({"whatsapp": 1}, "consent.whatsapp"),
        (["sms"], "consent"),
    ],
)
def test_bad_consent_is_400_naming_the_channel_and_changes_nothing(manager, consent, field):
    client, _, organization = manager
    response = client.post(CONTACTS, {"phone": "+31612345678", "consent": consent}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Contact.objects.filter(organization=organization).exists()

    contact = ContactFactory(organization=organization, consent={"sms": True})
    response = client.patch(f"{CONTACTS}{contact.public_id}/", {"consent": consent}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    contact.refresh_from_db()
    assert contact.consent == {"sms": True}


def test_a_phone_only_contact_through_the_api(manager):
    client, _, organization = manager
    response = client.post(CONTACTS, {"phone": "06 12345678", "first_name": "Ana"}, format="json")
    assert response.status_code == 400  # not an international number
    assert "phone" in response.json()

    response = client.post(CONTACTS, {"phone": "+31 6 12345678", "first_name": "Ana"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["email"], body["phone"]) == (None, "+31612345678")
    # A second phone-only contact is fine: only email addresses are unique.
    assert client.post(CONTACTS, {"phone": "+31612345679"}, format="json").status_code == 201

    response = client.post(CONTACTS, {"first_name": "Nobody"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()
    assert Contact.objects.filter(organization=organization).count() == 2


def test_another_organizations_contact_is_404_for_consent_changes(manager):
    client, _, _ = manager
    foreign = ContactFactory(phone="+31612345678", consent={"sms": True})
    response = client.patch(f"{CONTACTS}{foreign.public_id}/", {"consent": {"sms": False}}, format="json")
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.consent == {"sms": True}


def test_the_organization_setting_and_prices_through_the_api(member_client):
    client, _, organization = member_client(Role.OWNER)
    response = client.patch(
        "/api/v1/organization/",
        {"require_explicit_consent": True, "sms_segment_price": "0.0750", "message_price_currency": "USD"},
        format="json",
    )
    assert response.status_code == 200, response.content
    organization.refresh_from_db()
    assert organization.require_explicit_consent is True
    assert str(organization.sms_segment_price) == "0.07500"
    assert organization.message_price_currency == "USD"

    response = client.patch("/api/v1/organization/", {"message_price_currency": "euro"}, format="json")
    assert response.status_code == 400
    assert "message_price_currency" in response.json()
    response = client.patch("/api/v1/organization/", {"sms_segment_price": "-1"}, format="json")
    assert response.status_code == 400
    assert "sms_segment_price" in response.json()


# --- CSV import -----------------------------------------------------------------------------------


@pytest.fixture
def run_import(django_capture_on_commit_callbacks):
    def run(org, content: str, *, tags=()) -> ImportJob:
        job = ImportJob(organization=org, tag_names=list(tags))
        upload = SimpleUploadedFile("contacts.csv", content.encode(), content_type="text/csv")
        with django_capture_on_commit_callbacks(execute=True):
            services.import_start(job=job, uploaded_file=upload)
        job.refresh_from_db()
        return job

    return run


def errors(job):
    return [(e.line, e.reason) for e in job.row_errors.order_by("line")]


def test_import_reads_consent_columns_and_reports_bad_answers(org, run_import):
    job = run_import(
        org,
        "email,phone,consent_email,consent_sms,consent_whatsapp\n"
        "a@example.com,+31612345671,yes,TRUE,0\n"
        "b@example.com,,,no,\n"
        "c@example.com,+31612345673,maybe,1,\n"
        "d@example.com,,,,\n",
    )
    assert job.status == ImportStatus.COMPLETED
    assert (job.created, job.failed) == (3, 1)
    assert errors(job) == [(4, "consent_email: 'maybe' is not yes/no, true/false or 1/0")]
    consent = dict(Contact.objects.filter(organization=org).values_list("email", "consent"))
    assert consent == {
        "a@example.com": {"email": True, "sms": True, "whatsapp": False},
        "b@example.com": {"sms": False},
        "d@example.com": {},
    }

    # Importing again changes only the answers the file gives; empty cells keep what is stored.
    job = run_import(org, "email,consent_sms\na@example.com,no\nb@example.com,\n")
    assert (job.updated, job.failed) == (2, 0)
    consent = dict(Contact.objects.filter(organization=org).values_list("email", "consent"))
    assert consent["a@example.com"] == {"email": True, "sms": False, "whatsapp": False}
    assert consent["b@example.com"] == {"sms": False}


def test_import_of_phone_only_contacts_creates_updates_and_reports_duplicates(org, run_import):
    existing = ContactFactory(organization=org, email=None, phone="+31612345670", first_name="Old", consent={})
    TagFactory(organization=org, name="sms-club")
    job = run_import(
        org,
        "phone,first_name,consent_sms,tags,city\n"
        "+31612345670,Ann,yes,sms-club,Utrecht\n"
        "0031612345671,Bob,no,,\n"
        "+31612345671,Bobby,,,\n"
        "not a number,Carl,,,\n"
        ",Dave,,,\n",
        tags=["imported"],
    )
    assert job.status == ImportStatus.COMPLETED
    assert (job.created, job.updated, job.failed) == (1, 1, 3)
    reasons = dict(errors(job))
    assert reasons[4] == "duplicate of line 3 (same phone number)"
    assert "not an international phone number" in reasons[5]
    assert reasons[6] == "email and phone are both missing; a contact needs one of them"

    existing.refresh_from_db()
    assert (existing.first_name, existing.consent, existing.attributes) == ("Ann", {"sms": True}, {"city": "Utrecht"})
    assert set(ContactTag.objects.filter(contact=existing).values_list("tag__name", flat=True)) == {
        "sms-club",
        "imported",
    }
    bob = Contact.objects.get(organization=org, phone="+31612345671")
    assert (bob.email, bob.first_name, bob.consent) == (None, "Bob", {"sms": False})
    assert list(ContactTag.objects.filter(contact=bob).values_list("tag__name", flat=True)) == ["imported"]
    assert Contact.objects.filter(organization=org).count() == 2

    # The same file again: nobody new.
    job = run_import(org, "phone,first_name\n+31612345670,Ann\n+31612345671,Bob\n")
    assert (job.created, job.updated) == (0, 2)
    assert Contact.objects.filter(organization=org).count() == 2


def test_import_mixes_email_and_phone_only_rows_and_stays_in_its_organization(org, run_import):
    other = ContactFactory(email=None, phone="+31612345670", first_name="Elsewhere")  # another organization
    job = run_import(org, "email,phone,first_name\na@example.com,+31612345679,A\n,+31612345670,P\n")
    assert (job.created, job.failed) == (2, 0)
    assert set(Contact.objects.filter(organization=org).values_list("email", "phone")) == {
        ("a@example.com", "+31612345679"),
        (None, "+31612345670"),
    }
    other.refresh_from_db()
    assert other.first_name == "Elsewhere"


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(role=Role.MANAGER)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    client.force_login(membership.user)
    return client, membership.organization


def contact_form(org, **fields):
    data = {
        "organization": str(org.pk),
        "email": "",
        "phone": "",
        "first_name": "",
        "last_name": "",
        "timezone": "",
        "locale": "",
        "attributes": "{}",
        "status": "subscribed",
        "consent_email": "",
        "consent_sms": "",
        "consent_whatsapp": "",
        "tag_links-TOTAL_FORMS": "0",
        "tag_links-INITIAL_FORMS": "0",
        "list_memberships-TOTAL_FORMS": "0",
        "list_memberships-INITIAL_FORMS": "0",
    }
    data.update(fields)
    return data


def test_admin_adds_a_phone_only_contact_with_consent_and_changes_it(marketer):
    client, org = marketer
    page = client.get("/admin/contacts/contact/add/")
    assert page.status_code == 200
    assert b'name="consent_sms"' in page.content
    assert b'name="consent"' not in page.content  # no JSON box

    response = client.post(
        "/admin/contacts/contact/add/", contact_form(org, phone="+31 6 12345678", consent_sms="yes", consent_email="no")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    contact = Contact.objects.get(organization=org)
    assert (contact.email, contact.phone, contact.consent) == (None, "+31612345678", {"email": False, "sms": True})

    url = f"/admin/contacts/contact/{contact.pk}/change/"
    page = client.get(url)
    assert b'<option value="yes" selected>' in page.content
    response = client.post(url, contact_form(org, phone="+31612345678", consent_whatsapp="no"))
    assert response.status_code == 302, response.content.decode()[:3000]
    contact.refresh_from_db()
    assert contact.consent == {"whatsapp": False}


def test_admin_refuses_a_contact_without_email_or_phone(marketer):
    client, org = marketer
    response = client.post("/admin/contacts/contact/add/", contact_form(org, first_name="Nobody"))
    assert response.status_code == 200
    assert b"An email address or a phone number is required." in response.content
    assert not Contact.objects.filter(organization=org).exists()


# --- audience -------------------------------------------------------------------------------------


def phones(audience):
    return set(audience.queryset.values_list("phone", flat=True))


def test_sms_audience_needs_a_valid_phone_and_consent_and_says_why_others_are_left_out(org):
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, phone="+31612345601", tags=[vip])  # no answer, subscribed: in
    ContactFactory(organization=org, phone="+31612345602", tags=[vip], consent={"sms": True})
    ContactFactory(organization=org, phone="+31612345603", tags=[vip], consent={"sms": False})
    ContactFactory(organization=org, phone="+31612345604", tags=[vip], consent={"whatsapp": False})  # in for SMS
    # An explicit yes for SMS outranks the status (an email unsubscribe); no answer follows it.
    ContactFactory(organization=org, phone="+31612345605", tags=[vip], status="unsubscribed", consent={"sms": True})
    ContactFactory(organization=org, phone="+31612345606", tags=[vip], status="unsubscribed")
    ContactFactory(organization=org, phone=None, email="mail-only@example.com", tags=[vip])
    ContactFactory(organization=org, phone="0612345678", tags=[vip])  # stored before numbers were checked
    ContactFactory(organization=org, phone="+31612345609", tags=[vip], consent={"sms": True})
    services.suppression_add(organization_id=org.pk, kind="phone", value="+31612345609")

    sms = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]), channel="sms")
    assert phones(sms) == {"+31612345601", "+31612345602", "+31612345604", "+31612345605"}
    assert sms.excluded() == {
        "no_phone": 1,
        "invalid_phone": 1,
        "unsubscribed": 1,
        "no_consent": 1,
        "suppressed": 1,
    }
    whatsapp = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]), channel="whatsapp")
    assert phones(whatsapp) == {"+31612345601", "+31612345602", "+31612345603"}
    assert whatsapp.excluded()["no_consent"] == 1
    assert whatsapp.excluded()["unsubscribed"] == 2


def test_explicit_consent_required_by_the_organization(org):
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, phone="+31612345601", tags=[vip])
    ContactFactory(organization=org, phone="+31612345602", tags=[vip], consent={"sms": True})
    ContactFactory(organization=org, phone="+31612345603", tags=[vip], consent={"sms": False})
    other = OrganizationFactory(require_explicit_consent=False)
    ContactFactory(organization=other, phone="+31612345601", tags=[TagFactory(organization=other, name="vip")])
    org.require_explicit_consent = True
    org.save(update_fields=["require_explicit_consent"])

    sms = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]), channel="sms")
    assert phones(sms) == {"+31612345602"}
    assert sms.excluded() == {"no_consent": 2}
    # Another organization without the rule is unaffected, and email does not need explicit consent.
    assert audience_resolve(organization_id=other.pk, spec=AudienceSpec(tags=["vip"]), channel="sms").queryset.count()
    assert sms.queryset.count() == 1
    reachable = contacts_reachable(
        organization_id=org.pk, contacts=list(Contact.objects.filter(organization=org).values_list("pk", flat=True))
    )
    assert (reachable.queryset.count(), reachable.excluded()) == (3, {})


def test_email_honours_consent_email_false(org):
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, email="yes@example.com", tags=[vip], consent={"email": True})
    ContactFactory(organization=org, email="unsaid@example.com", tags=[vip])
    ContactFactory(organization=org, email="no@example.com", tags=[vip], consent={"email": False, "sms": True})
    ContactFactory(
        organization=org, email="unsub@example.com", tags=[vip], status="unsubscribed", consent={"email": True}
    )

    audience = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]))
    assert set(audience.queryset.values_list("email", flat=True)) == {"yes@example.com", "unsaid@example.com"}
    # The status is the address's own: an unsubscribe outranks an earlier yes.
    assert audience.excluded() == {"unsubscribed": 1, "no_consent": 1}


def test_the_audience_is_one_query_with_consent(org, django_assert_num_queries):
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, phone="+31612345601", tags=[vip], consent={"sms": True})
    audience = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]), channel="sms")
    with django_assert_num_queries(1):
        assert audience.queryset.count() == 1
    with django_assert_num_queries(1):
        assert audience.excluded() == {}


def test_set_consent_by_phone_is_scoped_to_the_organization(org):
    mine = ContactFactory(organization=org, phone="+31612345601", consent={"email": True})
    theirs = ContactFactory(phone="+31612345601")
    ids = services.contacts_set_consent_by_phone(
        organization_id=org.pk, phone="+31612345601", channel="sms", consent=False
    )
    assert ids == [mine.pk]
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.consent, theirs.consent) == ({"email": True, "sms": False}, {})
