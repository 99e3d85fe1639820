"""The campaigns services other apps call for messages, and the one render context of a message."""

import pytest
from django.utils import timezone

from callbacks.tokens import callback_url
from campaigns import selectors, services
from campaigns.models import CampaignStatus, CampaignVariant, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory
from contacts.models import Contact
from contacts.tests.factories import ContactFactory
from templates_app import rendering
from templates_app.services import template_snapshot
from tracking import rules, tokens
from tracking.rendering import render_for_browser
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db

M = MessageStatus
BATCH = 500


def many_messages(campaign, statuses) -> list[int]:
    now = timezone.now()
    contacts = Contact.objects.bulk_create(
        Contact(organization=campaign.organization, email=f"m{i}@example.com", created_at=now, updated_at=now)
        for i in range(len(statuses))
    )
    Message.objects.bulk_create(
        Message(
            organization_id=campaign.organization_id,
            campaign=campaign,
            contact=contact,
            to_address=contact.email,
            status=status,
            created_at=now,
        )
        for contact, status in zip(contacts, statuses, strict=True)
    )
    return list(Message.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True))


def test_advance_status_moves_a_batch_forward_only_in_one_statement(django_assert_num_queries):
    campaign = CampaignFactory(status=CampaignStatus.RUNNING)
    statuses = [M.SENT, M.DELIVERED, M.CLICKED, M.QUEUED, M.BOUNCED] * (BATCH // 5)
    ids = many_messages(campaign, statuses)

    with django_assert_num_queries(1):
        moved = services.messages_advance_status(
            message_ids=ids, to=M.OPENED, from_statuses=rules.movable_from(M.OPENED)
        )

    assert moved == 2 * BATCH // 5  # the sent and the delivered ones
    after = dict(Message.objects.filter(id__in=ids).values_list("id", "status"))
    for pk, before in zip(ids, statuses, strict=True):
        assert after[pk] == rules.next_status(before, M.OPENED)


def test_skip_pending_skips_only_what_is_not_claimed_yet(django_assert_num_queries):
    campaign = CampaignFactory(status=CampaignStatus.RUNNING)
    statuses = [M.PLANNED, M.QUEUED, M.CLAIMED, M.SENDING, M.SENT] * (BATCH // 5)
    ids = many_messages(campaign, statuses)
    contact_ids = list(Message.objects.filter(id__in=ids).values_list("contact_id", flat=True))

    with django_assert_num_queries(1):
        skipped = services.messages_skip_pending(contact_ids=contact_ids, reason="The recipient complained.")

    assert skipped == 2 * BATCH // 5
    assert set(Message.objects.filter(status=M.SKIPPED).values_list("last_error", flat=True)) == {
        "The recipient complained."
    }
    assert Message.objects.filter(status__in=[M.CLAIMED, M.SENDING, M.SENT]).count() == 3 * BATCH // 5


def _campaign_with_versions():
    campaign = CampaignFactory(status=CampaignStatus.RUNNING, variables={"offer": "10%"})
    organization = campaign.organization

    def version(text):
        return template_snapshot(
            template=EmailTemplateFactory(
                organization=organization,
                variables={"offer": "5%"},
                html_body=f'<html><body><p>{text} {{{{ offer }}}}</p><a href="{{{{ unsubscribe_url }}}}">x</a>'
                "</body></html>",
            )
        )

    campaign.template_version = version("Main")
    campaign.followup_template_version = version("Follow-up")
    campaign.save()
    variant = CampaignVariant.objects.create(
        campaign=campaign, name="B", template=campaign.template, template_version=version("Variant")
    )
    return campaign, variant


def test_view_in_browser_renders_the_version_the_send_path_picks():
    campaign, variant = _campaign_with_versions()
    cases = [({}, "Main"), ({"step": 1}, "Follow-up"), ({"variant": variant}, "Variant")]
    for fields, text in cases:
        message = SentMessageFactory(campaign=campaign, **fields)
        base = selectors.message_render_base(campaign=campaign, step=message.step, variant=fields.get("variant"))

        page = render_for_browser(Message.objects.get(pk=message.pk))

        assert base.version.html_body.startswith(f"<html><body><p>{text} ")
        assert f"<p>{text} 10%</p>" in page


def test_the_render_context_holds_the_messages_own_links():
    campaign, _ = _campaign_with_versions()
    message = SentMessageFactory(campaign=campaign, contact=ContactFactory(organization=campaign.organization))
    base = selectors.message_render_base(campaign=campaign)

    context = selectors.message_render_context(message=message, base=base)

    assert context["unsubscribe_url"] == tokens.unsubscribe_url(message.pk)
    assert context["view_in_browser_url"] == tokens.view_url(message.pk)
    assert context["callback_url"] == ""  # the template never reads it: not signed for nothing
    assert context["offer"] == "10%"
    assert context["contact"]["id"] == str(message.contact.public_id)
    rendered = rendering.render_message(base.source, context, organization_id=campaign.organization_id)
    assert tokens.unsubscribe_url(message.pk) in rendered.html


def test_the_callback_link_is_made_when_the_template_reads_it():
    campaign = CampaignFactory(status=CampaignStatus.RUNNING)
    campaign.template_version = template_snapshot(
        template=EmailTemplateFactory(
            organization=campaign.organization,
            html_body='<html><body><a href="{{ callback_url }}">Call me</a>'
            '<a href="{{ unsubscribe_url }}">x</a></body></html>',
        )
    )
    campaign.save()
    message = SentMessageFactory(campaign=campaign)
    base = selectors.message_render_base(campaign=campaign)

    context = selectors.message_render_context(message=message, base=base)

    assert base.uses_callback
    assert context["callback_url"] == callback_url(
        organization_id=message.organization_id,
        contact_public_id=message.contact.public_id,
        campaign_id=message.campaign_id,
    )
