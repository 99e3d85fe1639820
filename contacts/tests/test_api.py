"""The audience endpoints of the API contract."""

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from contacts import hooks
from contacts.models import Contact, ContactEvent, ImportJob, ListMembership, Suppression
from contacts.segments import MAX_CONDITIONS
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(member_client):
    return member_client(Role.MANAGER)


def test_create_read_update_contact(manager):
    client, _, _ = manager
    response = client.post(
        "/api/v1/contacts/",
        {
            "email": "Ana@Example.com",
            "phone": "+31 6 12345678",
            "first_name": "Ana",
            "attributes": {"city": "Utrecht"},
            "tags": ["vip", "News"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "ana@example.com"
    assert body["phone"] == "+31612345678"
    assert body["tags"] == ["News", "vip"]
    assert body["status"] == "subscribed"
    contact_id = body["id"]

    patched = client.patch(f"/api/v1/contacts/{contact_id}/", {"last_name": "Smit", "tags": ["vip"]}, format="json")
    assert patched.status_code == 200
    assert patched.json()["last_name"] == "Smit"
    assert patched.json()["tags"] == ["vip"]
    assert client.get(f"/api/v1/contacts/{contact_id}/").json()["first_name"] == "Ana"


def test_duplicate_email_is_400_case_insensitive(manager):
    client, _, org = manager
    ContactFactory(organization=org, email="ana@example.com")
    response = client.post("/api/v1/contacts/", {"email": "ANA@example.com"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()
    assert Contact.objects.filter(organization=org).count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"email": "a@example.com", "phone": "12345"}, "phone"),
        ({"email": "a@example.com", "timezone": "Mars/Base"}, "timezone"),
        ({"email": "a@example.com", "attributes": [1, 2]}, "attributes"),
        ({"email": "a@example.com", "status": "sleeping"}, "status"),
        ({"first_name": "no address"}, "email"),
    ],
)
def test_bad_contact_input_is_400_naming_the_field(manager, payload, field):
    client, _, org = manager
    response = client.post("/api/v1/contacts/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Contact.objects.filter(organization=org).exists()


def test_contact_filters(manager):
    client, _, org = manager
    vip = TagFactory(organization=org, name="vip")
    main = ContactListFactory(organization=org)
    ContactFactory(organization=org, email="ana@example.com", first_name="Ana", tags=[vip], lists=[main])
    ContactFactory(organization=org, email="bob@example.com", first_name="Bob", status="unsubscribed")

    def emails(**params):
        return {row["email"] for row in client.get("/api/v1/contacts/", params).json()["results"]}

    assert emails(q="ana") == {"ana@example.com"}
    assert emails(q="bob@") == {"bob@example.com"}
    assert emails(tag="VIP") == {"ana@example.com"}
    assert emails(status="unsubscribed") == {"bob@example.com"}
    assert emails(list=str(main.pk)) == {"ana@example.com"}
    assert client.get("/api/v1/contacts/", {"status": "weird"}).status_code == 400


def test_contact_list_has_no_n_plus_one(manager, django_assert_max_num_queries):
    client, _, org = manager
    tags = [TagFactory(organization=org) for _ in range(3)]
    for _ in range(25):
        ContactFactory(organization=org, tags=tags)
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/contacts/")
    assert len(response.json()["results"]) == 25


def test_another_organizations_rows_answer_404(manager):
    client, _, _ = manager
    contact = ContactFactory()
    contact_list = ContactListFactory()
    segment = SegmentFactory()
    tag = TagFactory()
    for url in [
        f"/api/v1/contacts/{contact.public_id}/",
        f"/api/v1/contacts/{contact.public_id}/export/",
        f"/api/v1/lists/{contact_list.pk}/",
        f"/api/v1/segments/{segment.pk}/",
        f"/api/v1/segments/{segment.pk}/preview/",
        f"/api/v1/tags/{tag.pk}/",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.delete(f"/api/v1/contacts/{contact.public_id}/").status_code == 404
    assert (
        client.post(f"/api/v1/lists/{contact_list.pk}/members/", {"contact_ids": []}, format="json").status_code == 404
    )
    contact.refresh_from_db()
    assert contact.erased_at is None


def test_viewer_reads_contacts_but_cannot_write(member_client):
    client, _, org = member_client(Role.VIEWER)
    ContactFactory(organization=org)
    assert client.get("/api/v1/contacts/").status_code == 200
    assert client.post("/api/v1/contacts/", {"email": "x@example.com"}, format="json").status_code == 403
    assert client.post("/api/v1/events/", {"contact": "x@example.com", "name": "x"}, format="json").status_code == 403


def test_delete_erases_personal_data_and_keeps_a_hashed_suppression(manager):
    client, _, org = manager
    contact = ContactFactory(
        organization=org,
        email="erase@example.com",
        phone="+31612345678",
        attributes={"x": 1},
        tags=[TagFactory(organization=org)],
    )
    assert client.delete(f"/api/v1/contacts/{contact.public_id}/").status_code == 204
    contact.refresh_from_db()
    assert (contact.email, contact.phone, contact.first_name, contact.attributes) == (None, None, "", {})
    assert contact.erased_at is not None
    assert not contact.tag_links.exists()
    kinds = set(Suppression.objects.filter(organization=org).values_list("kind", flat=True))
    assert kinds == {"email_hash", "phone_hash"}
    assert "erase@example.com" not in str(list(Suppression.objects.values_list("value", flat=True)))
    assert client.get(f"/api/v1/contacts/{contact.public_id}/").status_code == 404
    # The address can be added again, but stays suppressed.
    assert client.post("/api/v1/contacts/", {"email": "erase@example.com"}, format="json").status_code == 201
    assert Suppression.objects.filter(organization=org, kind="email", value="erase@example.com").exists()


def test_an_erased_contacts_hashed_suppression_cannot_be_lifted(manager):
    client, _, org = manager
    contact = ContactFactory(organization=org, email="gone@example.com")
    assert client.delete(f"/api/v1/contacts/{contact.public_id}/").status_code == 204
    hashed = Suppression.objects.get(organization=org, kind="email_hash")

    response = client.delete(f"/api/v1/suppressions/{hashed.pk}/")

    assert response.status_code == 409
    assert "erased" in response.json()["detail"]
    assert Suppression.objects.filter(pk=hashed.pk).exists()


def test_export_gives_everything_about_the_contact(manager):
    client, _, org = manager
    contact = ContactFactory(
        organization=org,
        email="me@example.com",
        attributes={"city": "Delft"},
        lists=[ContactListFactory(organization=org)],
    )
    ContactEvent.objects.create(
        organization=org, contact=contact, name="purchase", properties={"sku": "A1"}, occurred_at=contact.created_at
    )
    data = client.get(f"/api/v1/contacts/{contact.public_id}/export/").json()
    assert data["email"] == "me@example.com"
    assert data["attributes"] == {"city": "Delft"}
    assert len(data["lists"]) == 1
    assert data["events"][0]["properties"] == {"sku": "A1"}


def test_lists_and_members(manager):
    client, _, org = manager
    response = client.post("/api/v1/lists/", {"name": "Newsletter"}, format="json")
    assert response.status_code == 201
    list_id = response.json()["id"]
    a, b = ContactFactory(organization=org), ContactFactory(organization=org)
    added = client.post(
        f"/api/v1/lists/{list_id}/members/", {"contact_ids": [str(a.public_id), str(b.public_id)]}, format="json"
    )
    assert added.json() == {"changed": 2}
    again = client.post(f"/api/v1/lists/{list_id}/members/", {"contact_ids": [str(a.public_id)]}, format="json")
    assert again.json() == {"changed": 0}
    assert client.get(f"/api/v1/lists/{list_id}/").json()["subscribers"] == 2
    removed = client.post(
        f"/api/v1/lists/{list_id}/members/remove/", {"contact_ids": [str(a.public_id)]}, format="json"
    )
    assert removed.json() == {"changed": 1}
    assert ListMembership.objects.get(contact=a).unsubscribed_at is not None
    # An unsubscribed member is not re-subscribed by adding again.
    client.post(f"/api/v1/lists/{list_id}/members/", {"contact_ids": [str(a.public_id)]}, format="json")
    assert ListMembership.objects.get(contact=a).unsubscribed_at is not None

    foreign = ContactFactory()
    bad = client.post(f"/api/v1/lists/{list_id}/members/", {"contact_ids": [str(foreign.public_id)]}, format="json")
    assert bad.status_code == 400
    assert "contact_ids" in bad.json()
    assert client.post("/api/v1/lists/", {"name": "newsletter"}, format="json").status_code == 400


def test_segments_validate_rules_and_preview(manager):
    client, _, org = manager
    ContactFactory(organization=org, attributes={"city": "Utrecht"})
    ContactFactory(organization=org, attributes={"city": "Delft"})
    bad = client.post(
        "/api/v1/segments/",
        {"name": "Bad", "rules": {"all": [{"field": "attributes.city", "op": "equals", "value": "x"}]}},
        format="json",
    )
    assert bad.status_code == 400
    assert "rules.all[0].op" in bad.json()["rules"][0]

    rules = {"all": [{"field": "attributes.city", "op": "eq", "value": "Utrecht"}]}
    created = client.post("/api/v1/segments/", {"name": "Utrecht", "rules": rules}, format="json")
    assert created.status_code == 201
    preview = client.get(f"/api/v1/segments/{created.json()['id']}/preview/").json()
    assert preview["count"] == 1
    assert len(preview["sample"]) == 1
    unsaved = client.post(
        "/api/v1/segments/preview/", {"rules": {"field": "attributes.city", "op": "exists"}}, format="json"
    )
    assert unsaved.json()["count"] == 2


def test_suppressions_api(manager):
    client, _, _ = manager
    assert (
        client.post("/api/v1/suppressions/", {"email": "X@Example.com", "reason": "manual"}, format="json").status_code
        == 201
    )
    assert client.post("/api/v1/suppressions/", {"domain": "spam.test"}, format="json").status_code == 201
    both = client.post("/api/v1/suppressions/", {"email": "a@b.co", "domain": "b.co"}, format="json")
    assert both.status_code == 400
    bad = client.post("/api/v1/suppressions/", {"phone": "123"}, format="json")
    assert bad.status_code == 400
    assert "phone" in bad.json()
    values = {row["value"] for row in client.get("/api/v1/suppressions/").json()["results"]}
    assert values == {"x@example.com", "spam.test"}


def test_events_are_stored_and_emitted(manager):
    client, _, org = manager
    contact = ContactFactory(organization=org, email="buyer@example.com")
    received = []

    def receiver(sender, **kwargs):
        received.append((kwargs["name"], list(kwargs["contacts"]), kwargs["properties"]))

    hooks.contact_event.connect(receiver)
    try:
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            by_email = client.post(
                "/api/v1/events/",
                {"contact": "Buyer@example.com", "name": "purchase", "properties": {"total": 42}},
                format="json",
            )
            by_id = client.post(
                "/api/v1/events/", {"contact": str(contact.public_id), "name": "webinar"}, format="json"
            )
    finally:
        hooks.contact_event.disconnect(receiver)
    assert by_email.status_code == 202
    assert by_id.status_code == 202
    assert [name for name, _, _ in received] == ["purchase", "webinar"]
    assert received[0][1] == [contact]
    assert received[0][2] == {"total": 42}
    assert ContactEvent.objects.filter(contact=contact).count() == 2

    unknown = client.post("/api/v1/events/", {"contact": "nobody@example.com", "name": "purchase"}, format="json")
    assert unknown.status_code == 400
    assert "contact" in unknown.json()
    bad_name = client.post("/api/v1/events/", {"contact": "buyer@example.com", "name": "has spaces"}, format="json")
    assert bad_name.status_code == 400
    assert "name" in bad_name.json()


def test_import_upload_and_status(manager, django_capture_on_commit_callbacks):
    client, _, org = manager
    contact_list = ContactListFactory(organization=org)
    upload = SimpleUploadedFile("people.csv", b"email,first_name\na@example.com,A\nbad,B\n", content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/contacts/import",
            {"file": upload, "tags": "imported, spring", "list": str(contact_list.pk)},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    status = client.get(f"/api/v1/contacts/imports/{job_id}/").json()
    assert status["status"] == "completed"
    assert (status["total_rows"], status["created"], status["updated"], status["failed"]) == (2, 1, 0, 1)
    assert status["errors"] == [{"line": 3, "reason": "'bad' is not a valid email address"}]
    assert status["progress"] == 100
    assert client.get(f"/api/v1/contacts/imports/{job_id}/errors/").json()["count"] == 1


def test_import_upload_bad_input(manager):
    client, _, _ = manager
    assert client.post("/api/v1/contacts/import", {}, format="multipart").status_code == 400
    foreign_list = ContactListFactory()
    upload = SimpleUploadedFile("p.csv", b"email\na@example.com\n")
    response = client.post(
        "/api/v1/contacts/import", {"file": upload, "list": str(foreign_list.pk)}, format="multipart"
    )
    assert response.status_code == 400
    assert "list" in response.json()
    assert not ImportJob.objects.exists()


def test_another_organizations_import_answers_404(manager, member_client):
    client, _, _ = manager
    other_client, _, other_org = member_client(Role.MANAGER)
    job = ImportJob.objects.create(organization=other_org, file="imports/x.csv")
    assert client.get(f"/api/v1/contacts/imports/{job.pk}/").status_code == 404
    assert other_client.get(f"/api/v1/contacts/imports/{job.pk}/").status_code == 200


# --- bounds on input --------------------------------------------------------------------------------


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"next": value}
    return value


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"notes": "x" * (100 * 1024)}, "larger than 64 KB"),
        (nested(21), "nested deeper than 20 levels"),
        ({f"key{n}": n for n in range(501)}, "more than 500 keys"),
    ],
    ids=["100-kb", "21-deep", "501-keys"],
)
def test_attributes_beyond_the_json_limits_are_400_naming_attributes(manager, attributes, reason):
    client, _, org = manager
    created = client.post("/api/v1/contacts/", {"email": "a@example.com", "attributes": attributes}, format="json")
    assert created.status_code == 400, created.content
    assert reason in created.json()["attributes"][0]
    assert not Contact.objects.filter(organization=org).exists()

    contact = ContactFactory(organization=org, attributes={"city": "Delft"})
    patched = client.patch(f"/api/v1/contacts/{contact.public_id}/", {"attributes": attributes}, format="json")
    assert patched.status_code == 400
    assert "attributes" in patched.json()
    contact.refresh_from_db()
    assert contact.attributes == {"city": "Delft"}


def test_the_model_bounds_attributes_for_every_form(manager):
    """The admin's forms run the model's validators: the same cap applies there."""
    _, _, org = manager
    contact = ContactFactory.build(organization=org, attributes={"notes": "x" * (100 * 1024)})
    with pytest.raises(DjangoValidationError) as refused:
        contact.full_clean()
    assert "attributes" in refused.value.message_dict


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"properties": {"notes": "x" * (100 * 1024)}}, "properties"),
        ({"properties": nested(21)}, "properties"),
        ({"occurred_at": "0001-01-01T00:00:00+09:00"}, "occurred_at"),
        ({"occurred_at": "1969-12-31T23:00:00Z"}, "occurred_at"),
        ({"occurred_at": "9999-12-31T23:00:00-05:00"}, "occurred_at"),
    ],
    ids=["100-kb", "21-deep", "year-1", "before-1970", "year-9999"],
)
def test_event_input_beyond_the_limits_is_400_naming_the_field(manager, body, field):
    client, _, org = manager
    ContactFactory(organization=org, email="buyer@example.com")
    response = client.post(
        "/api/v1/events/", {"contact": "buyer@example.com", "name": "purchase", **body}, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not ContactEvent.objects.exists()


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"field": "created_at", "op": "after", "value": "99999 years ago"}, "too far from now"),
        ({"field": "attributes.signup", "op": "before", "value": "in 99999 years"}, "too far from now"),
        ({"field": "created_at", "op": "before", "value": "0001-01-01"}, "between the years 1970 and 2200"),
        ({"field": "last_contacted_at", "op": "after", "value": "9999-12-31T23:00:00-05:00"}, "between the years"),
    ],
    ids=["years-ago", "in-years", "year-1", "year-9999"],
)
def test_segment_times_out_of_range_are_400_naming_the_rule(manager, condition, reason):
    client, _, _ = manager
    rules = {"all": [condition]}
    created = client.post("/api/v1/segments/", {"name": "Odd", "rules": rules}, format="json")
    assert created.status_code == 400, created.content
    assert "rules.all[0].value" in created.json()["rules"][0]
    assert reason in created.json()["rules"][0]
    preview = client.post("/api/v1/segments/preview/", {"rules": rules}, format="json")
    assert preview.status_code == 400
    assert "rules" in preview.json()


def test_segment_attribute_dates_keep_the_years_people_are_born_in(manager):
    client, _, org = manager
    ContactFactory(organization=org, attributes={"born": "1950-06-01"})
    rules = {"field": "attributes.born", "op": "before", "value": "1960-01-01"}
    preview = client.post("/api/v1/segments/preview/", {"rules": rules}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["count"] == 1


def test_segment_rules_beyond_the_json_limits_are_400_naming_rules(manager):
    client, _, _ = manager
    huge = {"any": [{"field": "email", "op": "eq", "value": f"{'x' * 450}{n}@example.com"} for n in range(150)]}
    response = client.post("/api/v1/segments/", {"name": "Huge", "rules": huge}, format="json")
    assert response.status_code == 400
    assert "larger than 64 KB" in response.json()["rules"][0]
    preview = client.post("/api/v1/segments/preview/", {"rules": huge}, format="json")
    assert preview.status_code == 400
    assert "rules" in preview.json()


def test_a_segment_with_as_many_conditions_as_the_rules_allow_is_accepted(manager):
    client, _, _ = manager
    rules = {"any": [{"field": "email", "op": "eq", "value": f"c{n}@example.com"} for n in range(MAX_CONDITIONS)]}
    response = client.post("/api/v1/segments/", {"name": "Many", "rules": rules}, format="json")
    assert response.status_code == 201, response.content


def test_renaming_a_list_onto_another_lists_name_is_400(manager):
    client, _, org = manager
    ContactListFactory(organization=org, name="Newsletter")
    other = ContactListFactory(organization=org, name="Customers")

    response = client.patch(f"/api/v1/lists/{other.pk}/", {"name": "NEWSLETTER"}, format="json")

    assert response.status_code == 400, response.content
    assert "already exists" in response.json()["name"][0]
    other.refresh_from_db()
    assert other.name == "Customers"
    renamed = client.patch(f"/api/v1/lists/{other.pk}/", {"name": "customers"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "customers"


def test_creating_a_list_with_a_taken_name_is_400(manager):
    client, _, org = manager
    ContactListFactory(organization=org, name="Newsletter")
    response = client.post("/api/v1/lists/", {"name": "newsletter"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


@pytest.mark.parametrize("name", ["unsubscribed", "message_replied", "contact_created"])
def test_built_in_event_names_are_refused(manager, name):
    client, _, org = manager
    ContactFactory(organization=org, email="buyer@example.com")
    response = client.post("/api/v1/events/", {"contact": "buyer@example.com", "name": name}, format="json")
    assert response.status_code == 400, response.content
    assert "built-in" in response.json()["name"][0]
    assert not ContactEvent.objects.exists()
