import factory
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from contacts.models import Contact, ContactList, ContactTag, ListMembership, Segment, Tag


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"tag-{n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    email_domain = factory.LazyAttribute(lambda c: c.email.rpartition("@")[2] if c.email else "")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = "Tester"
    attributes = factory.LazyFunction(dict)

    @factory.post_generation
    def tags(obj, create, extracted, **kwargs):
        for tag in extracted or []:
            ContactTag.objects.create(contact=obj, tag=tag, created_at=timezone.now())

    @factory.post_generation
    def lists(obj, create, extracted, **kwargs):
        for contact_list in extracted or []:
            ListMembership.objects.create(contact=obj, contact_list=contact_list)


class ContactListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactList

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"List {n}")


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Segment {n}")
    rules = factory.LazyFunction(lambda: {"all": [{"field": "status", "op": "eq", "value": "subscribed"}]})
