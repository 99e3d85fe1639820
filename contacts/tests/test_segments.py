"""Every operator of the segment rules language, compiled to SQL and run on the database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from contacts.models import Contact, ContactEvent, ListMembership
from contacts.segments import SegmentRuleError, compile_rules, parse_when
from contacts.tests.factories import ContactFactory, ContactListFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    org = OrganizationFactory()
    now = timezone.now()
    vip = TagFactory(organization=org, name="VIP")
    news = TagFactory(organization=org, name="newsletter")
    main_list = ContactListFactory(organization=org, name="Main")
    other_list = ContactListFactory(organization=org, name="Other")
    ana = ContactFactory(
        organization=org,
        email="ana@gmail.com",
        first_name="Ana",
        last_name="Smit",
        locale="nl",
        attributes={"city": "Utrecht", "age": 34, "vip": True, "renewal": "2026-12-01", "plan": {"tier": "pro"}},
        tags=[vip],
        lists=[main_list],
        created_at=now - timedelta(days=100),
        last_contacted_at=now - timedelta(days=2),
    )
    bob = ContactFactory(
        organization=org,
        email="bob@example.com",
        first_name="Bob",
        last_name="de Vries",
        status="unsubscribed",
        attributes={"city": "Amsterdam", "age": "forty", "renewal": "2027-03-01"},
        tags=[news],
        lists=[other_list],
        created_at=now - timedelta(days=10),
    )
    cas = ContactFactory(
        organization=org,
        email="cas@gmail.com",
        first_name="Cas",
        last_name="Jansen",
        phone="+31612345678",
        attributes={"city": "utrecht", "age": 19},
        created_at=now - timedelta(days=1),
    )
    ListMembership.objects.create(contact=cas, contact_list=main_list, unsubscribed_at=now)
    dee = ContactFactory(organization=org, email=None, email_domain="", first_name="Dee", phone="+31687654321")
    ContactEvent.objects.create(organization=org, contact=ana, name="purchase", occurred_at=now - timedelta(days=5))
    ContactEvent.objects.create(organization=org, contact=bob, name="purchase", occurred_at=now - timedelta(days=60))
    # Another organization's contact matches nearly everything and must never show up.
    stranger_org = OrganizationFactory()
    ContactFactory(
        organization=stranger_org,
        email="ana@gmail.com",
        first_name="Ana",
        attributes={"city": "Utrecht", "age": 34},
        tags=[TagFactory(organization=stranger_org, name="VIP")],
    )
    return {"org": org, "main": main_list, "other": other_list, "ana": ana, "bob": bob, "cas": cas, "dee": dee}


def match(people, rules) -> set[str]:
    contacts = Contact.objects.filter(organization=people["org"]).filter(compile_rules(rules))
    return set(contacts.values_list("first_name", flat=True))


def cond(field, op, value=None, **extra):
    rule = {"field": field, "op": op, **extra}
    if value is not None:
        rule["value"] = value
    return rule


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (cond("email", "eq", "ANA@gmail.com"), {"Ana"}),
        (cond("email", "neq", "ana@gmail.com"), {"Bob", "Cas", "Dee"}),
        (cond("email", "contains", "gmail"), {"Ana", "Cas"}),
        (cond("email", "starts_with", "bo"), {"Bob"}),
        (cond("email", "in", ["bob@example.com", "CAS@gmail.com"]), {"Bob", "Cas"}),
        (cond("email", "exists", True), {"Ana", "Bob", "Cas"}),
        (cond("email", "exists", False), {"Dee"}),
        (cond("email_domain", "eq", "gmail.com"), {"Ana", "Cas"}),
        (cond("email_domain", "in", ["example.com"]), {"Bob"}),
        (cond("first_name", "eq", "ana"), {"Ana"}),
        (cond("first_name", "in", ["ANA", "bob"]), {"Ana", "Bob"}),
        (cond("last_name", "contains", "vries"), {"Bob"}),
        (cond("phone", "exists"), {"Cas", "Dee"}),
        (cond("locale", "eq", "nl"), {"Ana"}),
        (cond("status", "eq", "unsubscribed"), {"Bob"}),
        (cond("status", "neq", "subscribed"), {"Bob"}),
        (cond("status", "in", ["subscribed"]), {"Ana", "Cas", "Dee"}),
    ],
)
def test_contact_field_operators(people, rule, expected):
    assert match(people, rule) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (cond("tags", "contains", "vip"), {"Ana"}),
        (cond("tags", "in", ["VIP", "Newsletter"]), {"Ana", "Bob"}),
        (cond("tags", "exists", True), {"Ana", "Bob"}),
        (cond("tags", "exists", False), {"Cas", "Dee"}),
        (cond("lists", "exists", True), {"Ana", "Bob"}),  # Cas unsubscribed from Main
    ],
)
def test_tag_and_list_operators(people, rule, expected):
    assert match(people, rule) == expected


def test_list_membership_counts_only_subscribed_members(people):
    assert match(people, cond("lists", "contains", str(people["main"].pk))) == {"Ana"}
    assert match(people, cond("lists", "in", [str(people["main"].pk), str(people["other"].pk)])) == {"Ana", "Bob"}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (cond("attributes.city", "eq", "Utrecht"), {"Ana"}),
        (cond("attributes.city", "neq", "Utrecht"), {"Bob", "Cas", "Dee"}),
        (cond("attributes.city", "in", ["Utrecht", "utrecht"]), {"Ana", "Cas"}),
        (cond("attributes.city", "contains", "TRECHT"), {"Ana", "Cas"}),
        (cond("attributes.vip", "eq", True), {"Ana"}),
        (cond("attributes.age", "eq", 34), {"Ana"}),
        (cond("attributes.age", "exists"), {"Ana", "Bob", "Cas"}),
        (cond("attributes.age", "exists", False), {"Dee"}),
        # Numbers compare with numbers: Bob's "forty" is text and never matches.
        (cond("attributes.age", "gt", 20), {"Ana"}),
        (cond("attributes.age", "gte", 19), {"Ana", "Cas"}),
        (cond("attributes.age", "lt", 34), {"Cas"}),
        (cond("attributes.age", "lte", 34), {"Ana", "Cas"}),
        (cond("attributes.age", "lt", 1000), {"Ana", "Cas"}),
        # Strings compare with strings.
        (cond("attributes.age", "gt", "a"), {"Bob"}),
        (cond("attributes.renewal", "before", "2027-01-01"), {"Ana"}),
        (cond("attributes.renewal", "after", "2027-01-01"), {"Bob"}),
        (cond("attributes.plan.tier", "eq", "pro"), {"Ana"}),
    ],
)
def test_attribute_operators(people, rule, expected):
    assert match(people, rule) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (cond("created_at", "before", "30 days ago"), {"Ana"}),
        (cond("created_at", "after", "30 days ago"), {"Bob", "Cas", "Dee"}),
        (cond("created_at", "after", "2 weeks ago"), {"Bob", "Cas", "Dee"}),
        (cond("last_contacted_at", "exists"), {"Ana"}),
        (cond("last_contacted_at", "after", "7 days ago"), {"Ana"}),
        (cond("last_contacted_at", "before", "1 day ago"), {"Ana"}),
        (cond("created_at", "before", "2000-01-01"), set()),
    ],
)
def test_time_operators(people, rule, expected):
    assert match(people, rule) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (cond("event", "did", "purchase"), {"Ana", "Bob"}),
        (cond("event", "did", "purchase", within_days=30), {"Ana"}),
        (cond("event", "did_not", "purchase", within_days=30), {"Bob", "Cas", "Dee"}),
        (cond("event", "did_not", "purchase"), {"Cas", "Dee"}),
        (cond("event", "did", "refund"), set()),
    ],
)
def test_event_operators(people, rule, expected):
    assert match(people, rule) == expected


def test_nested_all_any_not(people):
    rules = {
        "all": [
            {"any": [cond("attributes.city", "eq", "Utrecht"), cond("tags", "contains", "newsletter")]},
            {"not": cond("status", "eq", "unsubscribed")},
        ]
    }
    assert match(people, rules) == {"Ana"}
    assert match(people, {"any": [cond("first_name", "eq", "cas"), cond("first_name", "eq", "dee")]}) == {"Cas", "Dee"}


def test_three_condition_rule_is_one_query(people, django_assert_num_queries):
    rules = {
        "all": [
            cond("attributes.city", "eq", "Utrecht"),
            cond("tags", "contains", "vip"),
            cond("event", "did", "purchase", within_days=30),
        ]
    }
    q = compile_rules(rules)
    with django_assert_num_queries(1):
        assert Contact.objects.filter(organization=people["org"]).filter(q).count() == 1


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ("not a dict", "rules"),
        ({}, "rules"),
        ({"all": []}, "rules.all"),
        ({"all": [{"field": "email", "op": "eq", "value": "a"}, {"field": "nope", "op": "eq"}]}, "rules.all[1].field"),
        ({"all": [{"field": "status", "op": "gt", "value": 1}]}, "rules.all[0].op"),
        ({"field": "status", "op": "eq", "value": "gone"}, "rules.value"),
        ({"field": "email", "op": "in", "value": "a@b.c"}, "rules.value"),
        ({"field": "created_at", "op": "before", "value": "last tuesday"}, "rules.value"),
        ({"field": "event", "op": "did", "value": "x", "within_days": 0}, "rules.within_days"),
        ({"field": "attributes.bad key", "op": "eq", "value": 1}, "rules.field"),
        ({"field": "attributes.age", "op": "gt", "value": [1]}, "rules.value"),
        ({"field": "lists", "op": "contains", "value": "not-a-uuid"}, "rules.value"),
        ({"not": {"any": [{"field": "tags", "op": "in", "value": [""]}]}}, "rules.not.any[0].value[0]"),
        ({"all": [{"field": "email", "op": "eq", "value": "x", "extra": 1}]}, "rules.all[0]"),
        ({"all": [{"field": "email", "op": "eq", "value": "x"}], "any": []}, "rules"),
    ],
)
def test_invalid_rules_name_the_path(rules, path):
    with pytest.raises(SegmentRuleError) as raised:
        compile_rules(rules)
    assert raised.value.path == path


def test_rules_nested_too_deep_are_refused():
    rules = cond("email", "exists")
    for _ in range(12):
        rules = {"not": rules}
    with pytest.raises(SegmentRuleError, match="deeper"):
        compile_rules(rules)


def test_relative_and_absolute_times():
    now = timezone.now()
    assert parse_when("30 days ago", "p", now) == now - timedelta(days=30)
    assert parse_when("in 2 weeks", "p", now) == now + timedelta(weeks=2)
    assert parse_when("now", "p", now) == now
    assert parse_when("2026-01-31", "p", now).date().isoformat() == "2026-01-31"
    assert parse_when("2026-01-31T08:00:00+01:00", "p", now).utcoffset() == timedelta(hours=1)
