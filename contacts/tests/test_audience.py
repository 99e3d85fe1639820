from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from contacts import services
from contacts.audience import AudienceSpec, audience_resolve
from contacts.models import Suppression
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory()


def emails(audience):
    return set(audience.queryset.values_list("email", flat=True))


def test_lists_tags_and_segment_are_a_union(org):
    main = ContactListFactory(organization=org)
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, email="on-list@example.com", lists=[main])
    ContactFactory(organization=org, email="tagged@example.com", tags=[vip])
    ContactFactory(organization=org, email="segment@example.com", attributes={"city": "Utrecht"})
    ContactFactory(organization=org, email="nobody@example.com")
    segment = SegmentFactory(organization=org, rules={"field": "attributes.city", "op": "eq", "value": "Utrecht"})

    spec = AudienceSpec(lists=[main.pk], tags=["VIP"], segment=segment.pk)
    audience = audience_resolve(organization_id=org.pk, spec=spec)
    assert emails(audience) == {"on-list@example.com", "tagged@example.com", "segment@example.com"}
    assert audience.excluded() == {}


def test_suppression_by_email_and_by_domain_removes_contacts(org):
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, email="keep@example.com", tags=[vip])
    ContactFactory(organization=org, email="blocked@example.com", tags=[vip])
    ContactFactory(organization=org, email="a@spamtrap.test", tags=[vip])
    ContactFactory(organization=org, email="b@spamtrap.test", tags=[vip])
    services.suppression_add(organization_id=org.pk, kind="email", value="Blocked@Example.com")
    services.suppression_add(organization_id=org.pk, kind="domain", value="@SpamTrap.test")
    # Another organization's suppression does not apply here.
    services.suppression_add(organization_id=OrganizationFactory().pk, kind="email", value="keep@example.com")

    audience = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]))
    assert emails(audience) == {"keep@example.com"}
    assert audience.excluded() == {"suppressed": 3}


def test_status_exclude_tags_recent_and_missing_address_are_counted_by_reason(org):
    vip = TagFactory(organization=org, name="vip")
    skip = TagFactory(organization=org, name="skip")
    now = timezone.now()
    ContactFactory(organization=org, email="ok@example.com", tags=[vip])
    ContactFactory(organization=org, email="unsub@example.com", tags=[vip], status="unsubscribed")
    ContactFactory(organization=org, email="bounced@example.com", tags=[vip], status="bounced")
    ContactFactory(organization=org, email="complained@example.com", tags=[vip], status="complained")
    ContactFactory(organization=org, email="skip@example.com", tags=[vip, skip])
    ContactFactory(organization=org, email="recent@example.com", tags=[vip], last_contacted_at=now - timedelta(days=1))
    ContactFactory(organization=org, email="old@example.com", tags=[vip], last_contacted_at=now - timedelta(days=30))
    ContactFactory(organization=org, email=None, email_domain="", phone="+31612345678", tags=[vip])

    spec = AudienceSpec(tags=["vip"], exclude_tags=["skip"], exclude_recent_days=7)
    audience = audience_resolve(organization_id=org.pk, spec=spec)
    assert emails(audience) == {"ok@example.com", "old@example.com"}
    assert audience.excluded() == {
        "no_email": 1,
        "unsubscribed": 1,
        "bounced": 1,
        "complained": 1,
        "excluded_tag": 1,
        "recently_contacted": 1,
    }
    # For SMS the phone-only contact is in, the email-only ones have no address.
    sms = audience_resolve(organization_id=org.pk, spec=spec, channel="sms")
    assert sms.queryset.count() == 1


def test_erased_contacts_never_come_back(org):
    vip = TagFactory(organization=org, name="vip")
    contact = ContactFactory(organization=org, email="erase-me@example.com", tags=[vip])
    services.contact_erase(contact=contact)
    assert audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"])).queryset.count() == 0
    # Re-created later (e.g. by the API), the address is suppressed again.
    services.contact_create(organization_id=org.pk, data={"email": "Erase-Me@example.com"}, tags=["vip"])
    audience = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]))
    assert audience.queryset.count() == 0
    assert audience.excluded() == {"suppressed": 1}


def test_queryset_is_usable_for_insert_select(org):
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, email="x@example.com", tags=[vip])
    audience = audience_resolve(organization_id=org.pk, spec=AudienceSpec(tags=["vip"]))
    sql, _params = audience.queryset.values("id", "email").query.sql_with_params()
    assert sql.upper().startswith("SELECT")
    assert "EXISTS" in sql.upper()


def test_empty_spec_selects_nobody(org):
    ContactFactory(organization=org)
    assert audience_resolve(organization_id=org.pk, spec=AudienceSpec()).queryset.count() == 0


def test_another_organizations_list_or_segment_is_refused(org):
    foreign_list = ContactListFactory()
    foreign_segment = SegmentFactory()
    with pytest.raises(ValidationError) as raised:
        audience_resolve(organization_id=org.pk, spec=AudienceSpec(lists=[foreign_list.pk]))
    assert "audience.lists" in raised.value.message_dict
    with pytest.raises(ValidationError) as raised:
        audience_resolve(organization_id=org.pk, spec=AudienceSpec(segment=foreign_segment.pk))
    assert "audience.segment" in raised.value.message_dict


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"lists": "x"}, "audience.lists"),
        ({"lists": ["not-an-id"]}, "audience.lists"),
        ({"tags": [1]}, "audience.tags"),
        ({"segment": "nope"}, "audience.segment"),
        ({"exclude_recent_days": 0}, "audience.exclude_recent_days"),
        ({"surprise": 1}, "audience"),
    ],
)
def test_spec_parsing_names_the_bad_field(data, field):
    with pytest.raises(ValidationError) as raised:
        AudienceSpec.from_dict(data)
    assert field in raised.value.message_dict


def test_suppression_rows_are_normalized(org):
    services.suppression_add(organization_id=org.pk, kind="phone", value="0031 6 12345678")
    services.suppression_add(organization_id=org.pk, kind="domain", value="Example.COM")
    expected = {("phone", "+31612345678"), ("domain", "example.com")}
    assert set(Suppression.objects.values_list("kind", "value")) == expected
