import pytest
from django.core.exceptions import ValidationError

from accounts.tests.factories import OrganizationFactory, UserFactory
from templates_app import rendering, selectors, services
from templates_app.models import MessageTemplate, TemplateVersion
from templates_app.tests.factories import LayoutFactory, MessageTemplateFactory

pytestmark = pytest.mark.django_db


def test_creating_a_template_records_version_one():
    template = MessageTemplateFactory(subject="First")
    [version] = template.versions.all()
    assert (template.version, version.number, version.subject) == (1, 1, "First")
    assert version.organization_id == template.organization_id


def test_editing_creates_a_new_version_and_leaves_the_old_one_unchanged():
    user = UserFactory()
    template = MessageTemplateFactory(subject="First", html_body='<p>Old</p><a href="{{ unsubscribe_url }}">u</a>')
    first = services.template_snapshot(template=template)

    updated = services.template_update(template=template, by=user, subject="Second", html_body="<p>New</p>")

    assert updated.version == 2
    first.refresh_from_db()
    assert first.number == 1
    assert first.subject == "First"
    assert first.html_body == '<p>Old</p><a href="{{ unsubscribe_url }}">u</a>'
    second = services.template_snapshot(template=updated)
    assert second.number == 2
    assert second.subject == "Second"
    assert second.created_by == user
    assert "<p>New</p>" in second.html_body
    assert second.pk != first.pk


def test_a_save_that_changes_no_content_records_no_version():
    template = MessageTemplateFactory()
    services.template_update(template=template, name="Renamed")
    services.template_update(template=template, subject=template.subject)
    assert template.versions.count() == 1
    assert services.template_snapshot(template=template).number == 1


def test_a_campaign_keeps_its_version_when_the_layout_changes_later():
    organization = OrganizationFactory()
    layout = LayoutFactory(organization=organization, name="brand")
    template = MessageTemplateFactory(organization=organization, layout=layout, html_body="<p>Body</p>")
    launched = services.template_snapshot(template=template)
    assert launched.layout_name == "brand"
    assert "layout" in launched.layouts["brand"]

    services.layout_update(
        layout=layout,
        html='<div class="v2">{% block content %}{% endblock %}<a href="{{ unsubscribe_url }}">u</a></div>',
    )
    relaunched = services.template_snapshot(template=template)

    assert relaunched.number == launched.number + 1
    launched.refresh_from_db()
    context = {"unsubscribe_url": "https://u", "contact": {"first_name": "Ann"}}
    old = rendering.render_message(selectors.version_source(launched), context, organization_id=organization.pk)
    new = rendering.render_message(selectors.version_source(relaunched), context, organization_id=organization.pk)
    assert '<div class="layout"><p>Body</p></div>' in old.html
    assert '<div class="v2"><p>Body</p>' in new.html


def test_a_version_cannot_be_edited():
    version = services.template_snapshot(template=MessageTemplateFactory())
    version.subject = "Changed"
    with pytest.raises(ValidationError):
        version.save()
    assert TemplateVersion.objects.get(pk=version.pk).subject != "Changed"


def test_snapshot_reapplies_the_footer_when_a_layout_lost_its_unsubscribe_link():
    organization = OrganizationFactory()
    layout = LayoutFactory(organization=organization, name="brand")
    template = MessageTemplateFactory(organization=organization, layout=layout, html_body="<p>Body</p>")
    assert "unsubscribe_url" not in template.html_body

    services.layout_update(layout=layout, html="<div>{% block content %}{% endblock %}</div>")
    version = services.template_snapshot(template=template)

    assert "{{ unsubscribe_url }}" in version.html_body
    assert version.number == 2
    template.refresh_from_db()
    assert "{{ unsubscribe_url }}" in template.html_body


def test_snapshot_takes_its_template_by_keyword_only():
    template = MessageTemplateFactory()
    with pytest.raises(TypeError):
        services.template_snapshot(template)
    assert services.template_snapshot(template=template).number == 1


def test_snapshot_refuses_a_template_whose_variables_are_no_longer_all_declared():
    template = MessageTemplateFactory(html_body='<p>{{ promo }}</p><a href="{{ unsubscribe_url }}">u</a>',
                                      variables={"promo": "TEN"})  # fmt: skip
    MessageTemplate.objects.filter(pk=template.pk).update(variables={})  # as saved before the check existed
    with pytest.raises(ValidationError) as caught:
        services.template_snapshot(template=template)
    assert caught.value.message_dict == {"html_body": ["line 1: unknown variable 'promo' (declare it in variables)"]}
