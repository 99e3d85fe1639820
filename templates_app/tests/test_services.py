import uuid

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from accounts.tests.factories import OrganizationFactory
from config.errors import DomainError
from templates_app import rendering, selectors, services
from templates_app.models import EmailFooter
from templates_app.selectors import sender_address
from templates_app.tasks import template_send_test_task
from templates_app.tests.factories import LayoutFactory, MessageTemplateFactory

pytestmark = pytest.mark.django_db


def test_send_test_uses_the_template_sender_and_context(settings):
    settings.DEFAULT_FROM_EMAIL = "Campaign Central <noreply@cc.example>"
    organization = OrganizationFactory(default_from_name="Acme", default_from_email="news@acme.example")
    template = MessageTemplateFactory(
        organization=organization,
        subject="{{ promo }} for {{ contact.first_name }}",
        from_name="Acme Deals",
        reply_to="help@acme.example",
        variables={"promo": "TEN"},
    )
    rendered = services.template_send_test(
        template=template, to=["qa@example.com"], context={"contact": {"first_name": "Bo"}}
    )
    [message] = mail.outbox
    assert message.subject == "[Test] TEN for Bo"
    assert message.from_email == "Acme Deals <news@acme.example>"
    assert message.reply_to == ["help@acme.example"]
    assert rendered.subject == "TEN for Bo"


def test_send_test_sends_one_message_per_address_within_the_setting(settings):
    settings.TEST_SEND_MAX_RECIPIENTS = 3
    template = MessageTemplateFactory()
    services.template_send_test(template=template, to=["a@example.com", "b@example.com", "a@example.com"])
    assert sorted(tuple(message.to) for message in mail.outbox) == [("a@example.com",), ("b@example.com",)]

    mail.outbox.clear()
    with pytest.raises(ValidationError) as caught:
        services.template_send_test(template=template, to=[f"q{n}@example.com" for n in range(4)])
    assert "at most 3" in caught.value.message_dict["to"][0]
    assert mail.outbox == []


def test_send_test_refuses_bad_input_and_sends_nothing():
    template = MessageTemplateFactory()
    with pytest.raises(ValidationError) as caught:
        services.template_send_test(template=template, to=[f"a{n}@example.com" for n in range(11)])
    assert "at most 10" in caught.value.message_dict["to"][0]
    with pytest.raises(ValidationError):
        services.template_send_test(template=template, to=[])
    sms = MessageTemplateFactory(channel="sms", sms_body="Hi", subject="", html_body="")
    with pytest.raises(DomainError):
        services.template_send_test(template=sms, to=["a@example.com"])
    broken = MessageTemplateFactory(
        html_body='<p>{{ contact.attributes.nope }}</p><a href="{{ unsubscribe_url }}">u</a>'
    )
    with pytest.raises(rendering.RenderError):
        services.template_send_test(template=broken, to=["a@example.com"])
    assert mail.outbox == []


def test_sender_falls_back_to_the_organization_then_the_default(settings):
    settings.DEFAULT_FROM_EMAIL = "Campaign Central <noreply@cc.example>"
    bare = OrganizationFactory(default_from_name="", default_from_email="")
    assert sender_address(from_name="", from_email="", organization=bare) == "Campaign Central <noreply@cc.example>"
    assert sender_address(from_name="Ann", from_email="", organization=bare) == "Ann <noreply@cc.example>"
    named = OrganizationFactory(default_from_name="Acme", default_from_email="news@acme.example")
    assert sender_address(from_name="", from_email="", organization=named) == "Acme <news@acme.example>"
    assert sender_address(from_name="", from_email="x@acme.example", organization=named) == "Acme <x@acme.example>"


def test_the_footer_must_carry_the_unsubscribe_link():
    organization = OrganizationFactory()
    with pytest.raises(ValidationError) as caught:
        services.email_footer_set(organization=organization, html="<p>Bye</p>", text="{{ x }")
    assert caught.value.message_dict == {
        "html": ["The footer must contain {{ unsubscribe_url }}."],
        "text": ["line 1: unexpected '}'"],
    }
    footer = services.email_footer_set(
        organization=organization, html='<a href="{{ unsubscribe_url }}">x</a>', text="{{ unsubscribe_url }}"
    )
    assert EmailFooter.objects.get(organization=organization) == footer


def test_a_footer_may_only_read_what_every_template_has():
    organization = OrganizationFactory()
    with pytest.raises(ValidationError) as caught:
        services.email_footer_set(
            organization=organization,
            html='<a href="{{ unsubscribe_url }}">{{ shop_name }}</a>',
            text="{{ unsubscribe_url }} {{ organization.name }}",
        )
    assert caught.value.message_dict == {
        "html": [
            "line 1: unknown variable 'shop_name' (a footer can only use callback_url, campaign, contact, "
            "organization, unsubscribe_url, view_in_browser_url)"
        ]
    }


def test_variables_must_be_plain_names():
    organization = OrganizationFactory()
    with pytest.raises(ValidationError) as caught:
        MessageTemplateFactory(organization=organization, variables={"contact": 1, "bad name": 2, "_x": 3, "ok": 4})
    assert caught.value.message_dict["variables"] == [
        "'contact' is reserved.",
        "'bad name' is not a valid variable name (letters, digits and _, not starting with _).",
        "'_x' is not a valid variable name (letters, digits and _, not starting with _).",
    ]


def test_the_send_test_task_sends_and_gives_up_quietly_on_what_it_cannot_send(caplog):
    template = MessageTemplateFactory(subject="Hi {{ contact.first_name }}")
    template_send_test_task.delay(template_id=str(template.pk), to=["qa@example.com"], sent_by="a later version")
    [message] = mail.outbox
    assert (message.subject, message.to) == ("[Test] Hi Jane", ["qa@example.com"])

    broken = MessageTemplateFactory(
        html_body='<p>{{ contact.attributes.nope }}</p><a href="{{ unsubscribe_url }}">u</a>'
    )
    template_send_test_task.delay(template_id=str(broken.pk), to=["qa@example.com"])
    template_send_test_task.delay(template_id=str(uuid.uuid4()), to=["qa@example.com"])
    assert len(mail.outbox) == 1
    assert "has no attribute 'nope'" in caplog.text


def test_queueing_a_test_checks_everything_first_and_sends_after_commit(django_capture_on_commit_callbacks):
    template = MessageTemplateFactory()
    with pytest.raises(ValidationError):
        services.template_send_test_queue(template=template, to=["not an address"])
    broken = MessageTemplateFactory(html_body='<p>{{ contact.attributes.x }}</p><a href="{{ unsubscribe_url }}">u</a>')
    with pytest.raises(rendering.RenderError):
        services.template_send_test_queue(template=broken, to=["qa@example.com"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.template_send_test_queue(template=template, to=[" qa@example.com "]) == ["qa@example.com"]
        assert mail.outbox == []
    assert len(callbacks) == 1
    assert [message.to for message in mail.outbox] == [["qa@example.com"]]


def test_layout_users_is_a_keyword_only_read():
    layout = LayoutFactory(name="brand")
    MessageTemplateFactory(
        organization=layout.organization,
        name="Named",
        html_body='{% extends "layout:brand" %}{% block content %}x{% endblock %}',
    )
    assert selectors.layout_users(layout=layout) == ["template 'Named'"]
    with pytest.raises(TypeError):
        selectors.layout_users(layout)
