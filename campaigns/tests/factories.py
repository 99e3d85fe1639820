import factory
from django.utils import timezone

from accounts.tests.factories import OrganizationFactory
from campaigns.models import Campaign, SendingDomain, SendingDomainStatus, VerificationMethod
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


class SendingDomainFactory(factory.django.DjangoModelFactory):
    """A verified sending domain (pass status="pending" for one still to verify)."""

    class Meta:
        model = SendingDomain

    organization = factory.SubFactory(OrganizationFactory)
    domain = factory.Sequence(lambda n: f"mail{n}.example.com")
    status = SendingDomainStatus.VERIFIED
    method = factory.LazyAttribute(
        lambda o: VerificationMethod.ADMIN if o.status == SendingDomainStatus.VERIFIED else ""
    )
    verified_at = factory.LazyAttribute(lambda o: timezone.now() if o.status == SendingDomainStatus.VERIFIED else None)


def sends_from(organization, email: str = "news@mail.example.com"):
    """Make `email` the organization's default sender, on a verified domain, as a real organization would."""
    organization.default_from_email = email
    organization.save(update_fields=["default_from_email"])
    domain = email.rpartition("@")[2]
    return SendingDomain.objects.filter(organization=organization, domain=domain).first() or SendingDomainFactory(
        organization=organization, domain=domain
    )
