"""The bulk services tracking and sending call: one statement per batch, whatever its size."""

import math
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from contacts import hooks, services
from contacts.models import Contact, ContactStatus, ListMembership, Suppression, SuppressionKind, SuppressionReason
from contacts.tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db(transaction=False)

BATCH = 500


@pytest.fixture
def organization():
    return OrganizationFactory()


def many_contacts(organization, n=BATCH, **fields) -> list[int]:
    now = timezone.now()
    Contact.objects.bulk_create(
        Contact(
            organization=organization,
            email=f"bulk{i}@example.com",
            email_domain="example.com",
            created_at=now,
            updated_at=now,
            **fields,
        )
        for i in range(n)
    )
    return list(Contact.objects.filter(organization=organization).values_list("pk", flat=True))


@pytest.fixture
def heard():
    received = []

    def receiver(**kwargs):
        received.append((kwargs["name"], sorted(kwargs["contacts"].values_list("pk", flat=True))))

    hooks.contact_event.connect(receiver)
    yield received
    hooks.contact_event.disconnect(receiver)


def test_set_status_moves_a_batch_in_constant_queries_and_only_upward(
    organization, heard, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    ids = many_contacts(organization)
    complained = ContactFactory(organization=organization, status=ContactStatus.COMPLAINED)

    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(4):
        changed = services.contacts_set_status(
            organization_id=organization.pk,
            contact_ids=[*ids, complained.pk],
            status=ContactStatus.BOUNCED,
            hook="bounced",
        )

    assert sorted(changed) == sorted(ids)
    assert Contact.objects.filter(pk__in=ids, status=ContactStatus.BOUNCED).count() == BATCH
    complained.refresh_from_db()
    assert complained.status == ContactStatus.COMPLAINED  # a complaint outranks a bounce
    assert heard == [("bounced", sorted(ids))]


def test_set_status_changes_nothing_and_tells_no_one_when_nothing_outranks(organization, heard):
    contact = ContactFactory(organization=organization, status=ContactStatus.BOUNCED)

    changed = services.contacts_set_status(
        organization_id=organization.pk,
        contact_ids=[contact.pk],
        status=ContactStatus.UNSUBSCRIBED,
        hook="unsubscribed",
    )

    assert changed == []
    contact.refresh_from_db()
    assert contact.status == ContactStatus.BOUNCED
    assert heard == []


def test_suppressions_add_bulk_is_one_insert_and_idempotent(organization, django_assert_max_num_queries):
    Suppression.objects.create(
        organization=organization,
        kind=SuppressionKind.EMAIL,
        value="bulk0@example.com",
        reason=SuppressionReason.MANUAL,
    )
    addresses = [(organization.pk, f" Bulk{i}@Example.com ") for i in range(BATCH)] + [
        (organization.pk, "not an address")
    ]

    # One SELECT for erased addresses and one INSERT (SQLite splits it by its bound-parameter limit).
    inserts = math.ceil(BATCH / connection.ops.bulk_batch_size(Suppression._meta.concrete_fields, [None] * BATCH))
    with django_assert_max_num_queries(1 + inserts):
        services.suppressions_add_bulk(addresses=addresses, reason=SuppressionReason.HARD_BOUNCE, source="tracking")
    services.suppressions_add_bulk(addresses=addresses, reason=SuppressionReason.HARD_BOUNCE, source="tracking")

    rows = Suppression.objects.filter(organization=organization, kind=SuppressionKind.EMAIL)
    assert rows.count() == BATCH
    assert rows.get(value="bulk0@example.com").reason == SuppressionReason.MANUAL  # the existing one is kept
    assert rows.get(value="bulk7@example.com").reason == SuppressionReason.HARD_BOUNCE


def test_suppressions_add_bulk_keeps_an_erased_address_out_of_plain_text(organization):
    contact = ContactFactory(organization=organization, email="gone@example.com")
    services.contact_erase(contact=contact)

    services.suppressions_add_bulk(
        addresses=[(organization.pk, "gone@example.com"), (organization.pk, "other@example.com")],
        reason=SuppressionReason.COMPLAINT,
        source="tracking",
    )

    values = set(Suppression.objects.filter(organization=organization).values_list("kind", "value"))
    assert (SuppressionKind.EMAIL, "gone@example.com") not in values
    assert (SuppressionKind.EMAIL, "other@example.com") in values
    assert any(kind == SuppressionKind.EMAIL_HASH for kind, _ in values)  # still suppressed, by its hash


def test_mark_contacted_is_one_update(organization, django_assert_num_queries):
    ids = many_contacts(organization)
    at = timezone.now() - timedelta(minutes=5)

    with django_assert_num_queries(1):
        assert services.contacts_mark_contacted(contact_ids=ids[:-1], at=at) == BATCH - 1

    assert Contact.objects.filter(pk__in=ids[:-1], last_contacted_at=at).count() == BATCH - 1
    assert Contact.objects.get(pk=ids[-1]).last_contacted_at is None


def test_mark_contacted_sql_composes_into_one_statement(organization):
    ids = many_contacts(organization, n=3)
    at = timezone.now()
    placeholders = ", ".join(["%s"] * 2)
    sql = services.contacts_mark_contacted_sql(
        contact_ids_query=f"SELECT id FROM contacts_contact WHERE id IN ({placeholders})"  # noqa: S608
    )
    stamp = connection.ops.adapt_datetimefield_value(at) if connection.vendor == "sqlite" else at

    with connection.cursor() as cursor:
        cursor.execute(sql, [stamp, *ids[:2]])

    assert Contact.objects.filter(pk__in=ids[:2], last_contacted_at=at).count() == 2
    assert Contact.objects.get(pk=ids[2]).last_contacted_at is None


def test_unsubscribe_from_lists_leaves_other_lists(organization):
    kept, left = ContactListFactory(organization=organization), ContactListFactory(organization=organization)
    contact = ContactFactory(organization=organization, lists=[kept, left])

    assert services.contact_unsubscribe_from_lists(contact_id=contact.pk, list_ids=[left.pk]) == 1

    memberships = {m.contact_list_id: m.unsubscribed_at for m in ListMembership.objects.filter(contact=contact)}
    assert memberships[left.pk] is not None
    assert memberships[kept.pk] is None
