import html

import pytest
from django.core import mail

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from templates_app import rendering
from templates_app.models import EmailFooter, Layout, MessageTemplate
from templates_app.tests.factories import LAYOUT_HTML, LayoutFactory, MessageTemplateFactory

pytestmark = pytest.mark.django_db

ADMIN = "/admin/templates_app/messagetemplate/"


def staff_member(role, organization=None):
    membership = MembershipFactory(role=role, organization=organization or OrganizationFactory())
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    return membership


def form_data(template: MessageTemplate, **changes) -> dict:
    data = {
        "name": template.name,
        "channel": template.channel,
        "purpose": template.purpose,
        "layout": template.layout_id or "",
        "subject": template.subject,
        "preheader": template.preheader,
        "html_body": template.html_body,
        "text_body": template.text_body,
        "from_name": "",
        "from_email": "",
        "reply_to": "",
        "sms_body": "",
        "whatsapp_template_name": "",
        "whatsapp_language": "",
        "whatsapp_parameters": "[]",
        "variables": "{}",
    }
    data.update(changes)
    return data


def test_change_page_shows_a_preview_in_a_sandboxed_iframe(client):
    membership = staff_member(Role.MANAGER)
    template = MessageTemplateFactory(
        organization=membership.organization,
        subject="Hello {{ contact.first_name }}",
        html_body='<p class="greet">Hi {{ contact.first_name }} {{ "<&>" }} co</p>'
        '<a href="{{ unsubscribe_url }}">u</a>',
    )
    client.force_login(membership.user)
    page = client.get(f"{ADMIN}{template.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "<strong>Subject:</strong> Hello Jane</p>" in content
    iframe = content.split("<iframe sandbox srcdoc=", 1)[1].split(">", 1)[0]
    srcdoc = html.unescape(iframe.split('"')[1])
    assert '<p class="greet">Hi Jane &lt;&amp;&gt; co</p>' in srcdoc
    assert "<&>" not in content
    assert "Hi Jane &lt;&amp;&gt; co" in content.split("Text part:")[1]
    assert f"{ADMIN}{template.pk}/send-test/" in content


def test_change_page_shows_a_render_error_instead_of_failing(client):
    membership = staff_member(Role.MANAGER)
    template = MessageTemplateFactory(
        organization=membership.organization,
        html_body='<p>{{ contact.attributes.tier }}</p><a href="{{ unsubscribe_url }}">u</a>',
    )
    client.force_login(membership.user)
    page = client.get(f"{ADMIN}{template.pk}/change/")
    assert page.status_code == 200
    assert "html_body: line 1: &#x27;dict object&#x27; has no attribute &#x27;tier&#x27;" in page.content.decode()


def test_adding_through_the_admin_validates_and_records_a_version(client):
    membership = staff_member(Role.MANAGER)
    client.force_login(membership.user)
    blank = MessageTemplate(organization=membership.organization, name="Admin made", subject="Hi")
    response = client.post(
        f"{ADMIN}add/",
        {**form_data(blank, html_body="<p>\n{{ x }</p>"), "organization": str(membership.organization.pk)},
    )
    assert response.status_code == 200
    assert "line 2: unexpected &#x27;}&#x27;" in response.content.decode()
    assert not MessageTemplate.objects.exists()

    response = client.post(
        f"{ADMIN}add/", {**form_data(blank, html_body="<p>Hi</p>"), "organization": str(membership.organization.pk)}
    )
    assert response.status_code == 302
    template = MessageTemplate.objects.get()
    assert template.version == 1
    assert "{{ unsubscribe_url }}" in template.html_body  # the footer rule applies here too

    response = client.post(f"{ADMIN}{template.pk}/change/", form_data(template, subject="Changed"))
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.subject, template.version, template.versions.count()) == ("Changed", 2, 2)


def test_staff_only_see_and_pick_their_organizations_templates_and_layouts(client):
    membership = staff_member(Role.MANAGER)
    theirs = MessageTemplateFactory(name="Their template")
    LayoutFactory(organization=theirs.organization, name="their-layout")
    LayoutFactory(organization=membership.organization, name="our-layout")
    MessageTemplateFactory(organization=membership.organization, name="Our template")
    client.force_login(membership.user)
    changelist = client.get(ADMIN).content.decode()
    assert "Our template" in changelist
    assert "Their template" not in changelist
    assert client.get(f"{ADMIN}{theirs.pk}/change/").status_code == 302
    add_page = client.get(f"{ADMIN}add/").content.decode()
    assert "our-layout" in add_page
    assert "their-layout" not in add_page


def test_send_test_queues_the_rendered_template_for_the_email_backend(client, django_capture_on_commit_callbacks):
    membership = staff_member(Role.MANAGER)
    template = MessageTemplateFactory(
        organization=membership.organization,
        subject="Hi {{ contact.first_name }}",
        html_body='<p>Hello {{ contact.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )
    client.force_login(membership.user)
    url = f"{ADMIN}{template.pk}/send-test/"
    assert client.get(url).status_code == 200

    response = client.post(url, {"to": "not an address"})
    assert response.status_code == 200
    assert "not a valid email address" in response.content.decode()
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(url, {"to": "qa@example.com, boss@example.com"}, follow=True)
    assert len(callbacks) == 1  # sent by a worker after commit, not inside the request
    assert "queued for qa@example.com, boss@example.com" in response.content.decode()
    assert [m.to for m in mail.outbox] == [["qa@example.com"], ["boss@example.com"]]  # one message per address
    message = mail.outbox[0]
    assert message.subject == "[Test] Hi Jane"
    assert message.body == "Hello Jane\n\nUnsubscribe (http://127.0.0.1:8000/u/preview)"
    [(html_part, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "<p>Hello Jane</p>" in html_part


def test_viewers_cannot_send_tests_and_strangers_cannot_reach_them(client):
    viewer = staff_member(Role.VIEWER)
    template = MessageTemplateFactory(organization=viewer.organization)
    client.force_login(viewer.user)
    assert client.get(f"{ADMIN}{template.pk}/change/").status_code == 200
    assert client.post(f"{ADMIN}{template.pk}/send-test/", {"to": "a@example.com"}).status_code == 403
    stranger = staff_member(Role.MANAGER)
    client.force_login(stranger.user)
    assert client.post(f"{ADMIN}{template.pk}/send-test/", {"to": "a@example.com"}).status_code == 302
    assert mail.outbox == []


def test_send_test_action_opens_the_send_test_page(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    template = MessageTemplateFactory()
    client.force_login(admin)
    response = client.post(ADMIN, {"action": "send_test_action", "_selected_action": [str(template.pk)]})
    assert response.status_code == 302
    assert response["Location"] == f"{ADMIN}{template.pk}/send-test/"


def test_layout_admin_validates_through_the_service(client):
    membership = staff_member(Role.MANAGER)
    client.force_login(membership.user)
    url = "/admin/templates_app/layout/add/"
    organization = str(membership.organization.pk)
    response = client.post(url, {"organization": organization, "name": "brand", "html": "<p>no block</p>"})
    assert response.status_code == 200
    assert "needs a {% block content %}" in response.content.decode()
    response = client.post(url, {"organization": organization, "name": "brand", "html": LAYOUT_HTML})
    assert response.status_code == 302
    assert Layout.objects.get().name == "brand"


def test_versions_are_read_only_in_the_admin(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    template = MessageTemplateFactory()
    version = template.versions.get()
    client.force_login(admin)
    page = client.get(f"/admin/templates_app/templateversion/{version.pk}/change/")
    assert page.status_code == 200
    assert "Hello Jane" in page.content.decode()
    client.post(f"/admin/templates_app/templateversion/{version.pk}/change/", {"subject": "Changed"})
    version.refresh_from_db()
    assert version.subject == "Hello {{ contact.first_name }}"
    assert client.get("/admin/templates_app/templateversion/add/").status_code == 403


def test_an_admin_save_validates_and_compiles_the_template_once(client, monkeypatch):
    membership = staff_member(Role.MANAGER)
    client.force_login(membership.user)
    compiled = []
    real_check = rendering.check_source
    monkeypatch.setattr(
        rendering, "check_source", lambda *args, **kwargs: compiled.append(1) or real_check(*args, **kwargs)
    )
    blank = MessageTemplate(organization=membership.organization, name="Once", subject="Hi")
    data = {**form_data(blank, html_body="<p>Hi</p>"), "organization": str(membership.organization.pk)}
    assert client.post(f"{ADMIN}add/", data).status_code == 302
    assert len(compiled) == 1


def test_what_the_service_refuses_is_shown_on_the_form_with_the_data_as_submitted(client):
    membership = staff_member(Role.MANAGER)
    client.force_login(membership.user)
    blank = MessageTemplate(organization=membership.organization, name="Typo", subject="Hi")
    data = {**form_data(blank, html_body="<p>{{ promo_cod }}</p>"), "organization": str(membership.organization.pk)}
    response = client.post(f"{ADMIN}add/", data)
    assert response.status_code == 200
    content = response.content.decode()
    assert "line 1: unknown variable &#x27;promo_cod&#x27; (declare it in variables)" in content
    assert "&lt;p&gt;{{ promo_cod }}&lt;/p&gt;</textarea>" in content
    assert not MessageTemplate.objects.exists()


def test_renaming_a_layout_in_use_through_the_admin_shows_the_conflict(client):
    membership = staff_member(Role.MANAGER)
    layout = LayoutFactory(organization=membership.organization, name="brand")
    MessageTemplateFactory(
        organization=membership.organization,
        name="Uses it",
        html_body='{% extends "layout:brand" %}{% block content %}x{% endblock %}',
    )
    client.force_login(membership.user)
    url = f"/admin/templates_app/layout/{layout.pk}/change/"
    response = client.post(url, {"name": "renamed", "html": LAYOUT_HTML})
    assert response.status_code == 200
    assert "Layout &#x27;brand&#x27; is named by template &#x27;Uses it&#x27;; it cannot be renamed." in (
        response.content.decode()
    )
    layout.refresh_from_db()
    assert layout.name == "brand"
    assert client.post(url, {"name": "brand", "html": LAYOUT_HTML.replace("layout", "v2")}).status_code == 302
    layout.refresh_from_db()
    assert 'class="v2"' in layout.html


def test_footer_admin_shows_the_services_errors(client):
    membership = staff_member(Role.MANAGER)
    client.force_login(membership.user)
    response = client.post(
        "/admin/templates_app/emailfooter/add/",
        {"organization": str(membership.organization.pk), "html": "<p>Bye</p>", "text": "{{ unsubscribe_url }}"},
    )
    assert response.status_code == 200
    assert "The footer must contain {{ unsubscribe_url }}." in response.content.decode()
    assert not EmailFooter.objects.exists()
