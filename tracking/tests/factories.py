from datetime import timedelta

import factory
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory
from contacts.tests.factories import ContactFactory


class SentMessageFactory(factory.django.DjangoModelFactory):
    """A message of a running campaign that went out an hour ago."""

    class Meta:
        model = Message

    campaign = factory.SubFactory(CampaignFactory, status=CampaignStatus.RUNNING)
    organization = factory.SelfAttribute("campaign.organization")
    contact = factory.SubFactory(ContactFactory, organization=factory.SelfAttribute("..campaign.organization"))
    to_address = factory.SelfAttribute("contact.email")
    status = MessageStatus.SENT
    sending_domain = "mail.example.com"
    sent_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    provider_message_id = factory.Sequence(lambda n: f"provider-{n}-0000-0000-0000-000000000000")


def sent_messages(count: int, *, campaign: Campaign | None = None, **fields) -> list[Message]:
    campaign = campaign or CampaignFactory(status=CampaignStatus.RUNNING)
    return [SentMessageFactory(campaign=campaign, **fields) for _ in range(count)]
