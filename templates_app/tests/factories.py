import factory

from accounts.tests.factories import OrganizationFactory
from templates_app import services
from templates_app.models import Channel, Layout, MessageTemplate

LAYOUT_HTML = (
    "<html><body>\n"
    '<div class="layout">{% block content %}{% endblock %}</div>\n'
    '<p class="footer"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>\n'
    "</body></html>"
)


class LayoutFactory(factory.django.DjangoModelFactory):
    """Layouts are created through the service, so they are validated like in the app."""

    class Meta:
        model = Layout

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"layout-{n}")
    html = LAYOUT_HTML

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.layout_create(**kwargs)


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    """Templates are created through the service: validated, with version 1 recorded."""

    class Meta:
        model = MessageTemplate

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    channel = Channel.EMAIL
    subject = "Hello {{ contact.first_name }}"
    html_body = '<p>Hi {{ contact.first_name }}!</p>\n<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.template_create(**kwargs)
