import factory

from accounts.tests.factories import OrganizationFactory
from campaigns.models import Campaign
from templates_app.models import MessageTemplate


class EmailTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    channel = "email"
    subject = "Hello {{ contact.first_name }}"
    html_body = (
        '<html><body><p>Hi {{ contact.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'
    )


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    channel = "email"
    template = factory.SubFactory(EmailTemplateFactory, organization=factory.SelfAttribute("..organization"))
    audience = factory.LazyFunction(lambda: {"tags": ["vip"]})
