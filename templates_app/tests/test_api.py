import uuid

import pytest

from accounts.models import Role
from accounts.tests.factories import OrganizationFactory
from contacts.models import Contact
from templates_app import services
from templates_app.models import EmailFooter, Layout, MessageTemplate, TemplateVersion
from templates_app.tests.factories import LAYOUT_HTML, LayoutFactory, MessageTemplateFactory

pytestmark = pytest.mark.django_db

TEMPLATES = "/api/v1/templates/"
LAYOUTS = "/api/v1/layouts/"
UNSUBSCRIBE = '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'


def preview_url(template) -> str:
    return f"{TEMPLATES}{template.pk}/preview"


def test_create_and_read_an_email_template(member_client):
    client, _, organization = member_client(Role.MANAGER)
    payload = {
        "name": "Welcome",
        "channel": "email",
        "subject": "Welcome {{ contact.first_name }}",
        "preheader": "Glad you are here",
        "html_body": f"<p>Hi {{{{ contact.first_name }}}}, use {{{{ promo }}}}</p>{UNSUBSCRIBE}",
        "variables": {"promo": "WELCOME10"},
        "from_name": "Acme",
        "from_email": "news@acme.example",
        "reply_to": "help@acme.example",
    }
    response = client.post(TEMPLATES, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    template = MessageTemplate.objects.get(pk=body["id"])
    assert template.organization == organization
    assert body["version"] == 1
    assert body["html_body"] == payload["html_body"]
    assert body["text_body"] == ""
    assert body["variables"] == {"promo": "WELCOME10"}
    assert {"created_at", "updated_at", "layout", "sms_segments", "whatsapp_parameters"} <= set(body)
    assert client.get(f"{TEMPLATES}{template.pk}/").json()["subject"] == "Welcome {{ contact.first_name }}"


def test_a_syntax_error_is_400_naming_the_field_and_the_line(member_client):
    client, _, _ = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES,
        {"name": "Broken", "subject": "Hi", "html_body": "<p>\n{% if x %}\n{{ x }</p>\n{% endif %}"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"html_body": ["line 3: unexpected '}'"]}
    assert not MessageTemplate.objects.exists()


def test_unknown_filters_and_layouts_are_400_with_the_line(member_client):
    client, _, _ = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES,
        {"name": "x", "subject": "{{ name|shout }}", "html_body": '<p>x</p>\n{% include "layout:nope" %}'},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "subject": ["line 1: No filter named 'shout'."],
        "html_body": ["line 2: layout 'nope' not found"],
    }


def test_required_fields_depend_on_the_channel(member_client):
    client, _, _ = member_client(Role.MANAGER)
    assert client.post(TEMPLATES, {"name": "e", "channel": "email"}, format="json").json() == {
        "subject": ["An email needs a subject."],
        "html_body": ["An email needs an HTML or a text body."],
    }
    assert client.post(TEMPLATES, {"name": "s", "channel": "sms"}, format="json").json() == {
        "text_body": ["An SMS needs a body."]
    }
    response = client.post(
        TEMPLATES, {"name": "w", "channel": "whatsapp", "whatsapp_parameters": [1, 2]}, format="json"
    )
    assert set(response.json()) == {"whatsapp_template_name", "whatsapp_language", "whatsapp_parameters"}


def test_sms_segment_count_is_computed_and_read_only(member_client):
    client, _, _ = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES,
        {"name": "Sms", "channel": "sms", "sms_body": "Hi {{ contact.first_name }}! " + "x" * 150, "sms_segments": 1},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    # Measured on the sample contact "Jane": 4 + 150 + 1 characters.
    assert (body["sms_encoding"], body["sms_length"], body["sms_segments"]) == ("gsm7", 159, 1)
    response = client.patch(f"{TEMPLATES}{body['id']}/", {"sms_body": "Привет {{ contact.first_name }}"}, format="json")
    assert (response.json()["sms_encoding"], response.json()["sms_segments"]) == ("ucs2", 1)


def test_whatsapp_template(member_client):
    client, _, _ = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES,
        {
            "name": "Wa",
            "channel": "whatsapp",
            "whatsapp_template_name": "order_update",
            "whatsapp_language": "en_US",
            "whatsapp_parameters": {"body": ["{{ contact.first_name }}", "{{ order }}"]},
            "variables": {"order": "A-1"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    preview = client.post(f"{TEMPLATES}{response.json()['id']}/preview", {}, format="json")
    assert preview.json()["whatsapp_parameters"] == {"body": ["Jane", "A-1"]}


def test_marketing_email_without_unsubscribe_link_gets_the_footer(member_client):
    client, _, organization = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES,
        {
            "name": "No link",
            "subject": "s",
            "html_body": "<html><body><p>Sale!</p></body></html>",
            "text_body": "Sale!",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["html_body"].startswith("<html><body><p>Sale!</p>" + EmailFooter.DEFAULT_HTML)
    assert body["html_body"].endswith("</body></html>")
    assert body["text_body"] == "Sale!\n\n" + EmailFooter.DEFAULT_TEXT + "\n"

    services.email_footer_set(
        organization=organization,
        html='<p class="ours"><a href="{{ unsubscribe_url }}">Stop</a></p>',
        text="Stop: {{ unsubscribe_url }}",
    )
    response = client.post(TEMPLATES, {"name": "Fragment", "subject": "s", "html_body": "<p>Hi</p>"}, format="json")
    assert response.json()["html_body"] == '<p>Hi</p>\n<p class="ours"><a href="{{ unsubscribe_url }}">Stop</a></p>\n'


def test_transactional_email_and_layout_with_a_link_get_no_footer(member_client):
    client, _, organization = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES,
        {"name": "Receipt", "purpose": "transactional", "subject": "s", "html_body": "<p>Receipt</p>"},
        format="json",
    )
    assert response.json()["html_body"] == "<p>Receipt</p>"
    layout = LayoutFactory(organization=organization)
    response = client.post(
        TEMPLATES,
        {"name": "In layout", "subject": "s", "html_body": "<p>x</p>", "layout": str(layout.pk)},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["html_body"] == "<p>x</p>"


def test_extending_a_layout_without_unsubscribe_link_is_refused(member_client):
    client, _, organization = member_client(Role.MANAGER)
    LayoutFactory(organization=organization, name="bare", html="<div>{% block content %}{% endblock %}</div>")
    response = client.post(
        TEMPLATES,
        {
            "name": "x",
            "subject": "s",
            "html_body": '{% extends "layout:bare" %}{% block content %}<p>x</p>{% endblock %}',
        },
        format="json",
    )
    assert response.status_code == 400
    assert "no {{ unsubscribe_url }} link" in response.json()["html_body"][0]


def test_list_is_scoped_and_filterable(member_client, django_assert_max_num_queries):
    client, _, organization = member_client(Role.VIEWER)
    layout = LayoutFactory(organization=organization)
    for index in range(5):
        MessageTemplateFactory(organization=organization, name=f"Mine {index}", layout=layout)
    MessageTemplateFactory(organization=organization, channel="sms", sms_body="x", html_body="", subject="")
    MessageTemplateFactory(name="Theirs")
    with django_assert_max_num_queries(6):
        response = client.get(TEMPLATES)
    assert response.status_code == 200
    assert response.json()["count"] == 6
    assert "Theirs" not in {row["name"] for row in response.json()["results"]}
    assert client.get(f"{TEMPLATES}?channel=sms").json()["count"] == 1


def test_another_organizations_template_is_404(member_client):
    client, _, _ = member_client(Role.MANAGER)
    foreign = MessageTemplateFactory(subject="Theirs")
    url = f"{TEMPLATES}{foreign.pk}/"
    assert client.get(url).status_code == 404
    assert client.patch(url, {"subject": "Mine now"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    assert client.post(preview_url(foreign), {}, format="json").status_code == 404
    assert client.get(f"{TEMPLATES}{uuid.uuid4()}/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.subject == "Theirs"


def test_viewer_reads_and_previews_but_gets_403_on_writes(member_client):
    client, _, organization = member_client(Role.VIEWER)
    template = MessageTemplateFactory(organization=organization)
    assert client.get(f"{TEMPLATES}{template.pk}/").status_code == 200
    assert client.post(preview_url(template), {}, format="json").status_code == 200
    assert client.post(TEMPLATES, {"name": "x", "subject": "s", "html_body": "x"}, format="json").status_code == 403
    assert client.patch(f"{TEMPLATES}{template.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{TEMPLATES}{template.pk}/").status_code == 403
    assert client.post(LAYOUTS, {"name": "x", "html": LAYOUT_HTML}, format="json").status_code == 403
    assert MessageTemplate.objects.get().name == template.name


def test_agents_cannot_reach_templates(member_client):
    client, _, organization = member_client(Role.AGENT)
    template = MessageTemplateFactory(organization=organization)
    assert client.get(TEMPLATES).status_code == 403
    assert client.post(preview_url(template), {}, format="json").status_code == 403
    assert client.get(LAYOUTS).status_code == 403


def test_patch_creates_a_version_and_delete_removes_the_template(member_client):
    client, _, organization = member_client(Role.MANAGER)
    template = MessageTemplateFactory(organization=organization)
    response = client.patch(f"{TEMPLATES}{template.pk}/", {"subject": "New {{ contact.last_name }}"}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert list(template.versions.values_list("number", flat=True).order_by("number")) == [1, 2]
    assert client.delete(f"{TEMPLATES}{template.pk}/").status_code == 204
    assert not TemplateVersion.objects.exists()


def test_the_organization_in_the_body_is_ignored(member_client):
    client, _, organization = member_client(Role.MANAGER)
    other = OrganizationFactory()
    response = client.post(
        TEMPLATES,
        {"name": "x", "subject": "s", "html_body": "x" + UNSUBSCRIBE, "organization": str(other.pk)},
        format="json",
    )
    assert response.status_code == 201
    assert MessageTemplate.objects.get().organization == organization


# --- Preview ---------------------------------------------------------------------------------------------


def test_preview_with_a_contact_escapes_html_but_not_subject_or_text(member_client):
    client, _, organization = member_client(Role.MANAGER)
    template = MessageTemplateFactory(
        organization=organization,
        subject="For {{ contact.full_name }}",
        preheader="Hi {{ contact.first_name }}",
        html_body=f"<p>Dear {{{{ contact.first_name }}}} from {{{{ contact.attributes.city }}}}</p>{UNSUBSCRIBE}",
    )
    contact = Contact.objects.create(
        organization=organization,
        email="a@example.com",
        first_name="<script>alert(1)</script>",
        last_name="Smith",
        attributes={"city": "Utrecht"},
    )
    response = client.post(preview_url(template), {"contact_id": str(contact.public_id)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subject"] == "For <script>alert(1)</script> Smith"
    assert body["preheader"] == "Hi <script>alert(1)</script>"
    assert "<p>Dear &lt;script&gt;alert(1)&lt;/script&gt; from Utrecht</p>" in body["html"]
    assert "<script>" not in body["html"]
    assert body["text"].startswith("Dear <script>alert(1)</script> from Utrecht")
    assert "Unsubscribe (http" in body["text"]
    assert body["sms"] is None


def test_preview_with_a_context(member_client):
    client, _, organization = member_client(Role.MANAGER)
    template = MessageTemplateFactory(
        organization=organization, html_body=f"<p>{{{{ promo }}}}</p>{UNSUBSCRIBE}", variables={"promo": "FIVE"}
    )
    response = client.post(
        preview_url(template), {"context": {"promo": "TEN", "contact": {"first_name": "Bo"}}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["subject"] == "Hello Bo"
    assert "<p>TEN</p>" in response.json()["html"]


def test_preview_of_an_undefined_value_is_400_with_field_and_line(member_client):
    client, _, organization = member_client(Role.MANAGER)
    template = MessageTemplateFactory(
        organization=organization, html_body=f"<p>x</p>\n<p>{{{{ contact.attributes.tier }}}}</p>{UNSUBSCRIBE}"
    )
    response = client.post(preview_url(template), {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"html_body": ["line 2: 'dict object' has no attribute 'tier'"]}
    context = {"contact": {"attributes": {"tier": "gold"}}}
    assert client.post(preview_url(template), {"context": context}, format="json").status_code == 200


def test_preview_with_another_organizations_contact_is_400_naming_the_field(member_client):
    client, _, organization = member_client(Role.MANAGER)
    template = MessageTemplateFactory(organization=organization)
    stranger = Contact.objects.create(organization=OrganizationFactory(), email="b@example.com", first_name="Eve")
    for contact_id in (str(stranger.public_id), str(uuid.uuid4())):
        response = client.post(preview_url(template), {"contact_id": contact_id}, format="json")
        assert response.status_code == 400
        assert response.json() == {"contact_id": ["No contact with this id in this organization."]}
    assert client.post(preview_url(template), {"contact_id": "nope"}, format="json").status_code == 400


# --- Layouts --------------------------------------------------------------------------------------------------


def test_layout_crud_and_validation(member_client):
    client, _, organization = member_client(Role.MANAGER)
    response = client.post(LAYOUTS, {"name": "brand", "html": LAYOUT_HTML}, format="json")
    assert response.status_code == 201, response.content
    layout = Layout.objects.get(pk=response.json()["id"])
    assert layout.organization == organization

    assert client.post(LAYOUTS, {"name": "brand", "html": LAYOUT_HTML}, format="json").json() == {
        "name": ["A layout named 'brand' already exists."]
    }
    assert client.post(LAYOUTS, {"name": "no-block", "html": "<p>x</p>"}, format="json").json() == {
        "html": ["A layout needs a {% block content %}{% endblock %} for the template's body."]
    }
    assert client.post(LAYOUTS, {"name": "bad", "html": "<p>\n{{ x }</p>"}, format="json").json() == {
        "html": ["line 2: unexpected '}'"]
    }
    assert client.post(LAYOUTS, {"name": "has space", "html": LAYOUT_HTML}, format="json").status_code == 400
    loop = '{% extends "layout:loop" %}{% block content %}{% endblock %}'
    assert client.post(LAYOUTS, {"name": "loop", "html": loop}, format="json").json() == {
        "html": ["A layout cannot use itself, directly or through other layouts."]
    }

    response = client.patch(f"{LAYOUTS}{layout.pk}/", {"html": LAYOUT_HTML.replace("layout", "v2")}, format="json")
    assert response.status_code == 200
    assert client.get(LAYOUTS).json()["count"] == 1


def test_a_layout_in_use_cannot_be_deleted_or_renamed(member_client):
    client, _, organization = member_client(Role.MANAGER)
    by_field = LayoutFactory(organization=organization, name="by-field")
    by_name = LayoutFactory(organization=organization, name="by-name")
    MessageTemplateFactory(organization=organization, layout=by_field, name="Uses field")
    MessageTemplateFactory(
        organization=organization,
        name="Uses name",
        html_body='{% extends "layout:by-name" %}{% block content %}x{% endblock %}',
    )
    response = client.delete(f"{LAYOUTS}{by_field.pk}/")
    assert response.status_code == 409
    assert "Uses field" in response.json()["detail"]
    assert client.delete(f"{LAYOUTS}{by_name.pk}/").status_code == 409
    assert client.patch(f"{LAYOUTS}{by_name.pk}/", {"name": "renamed"}, format="json").status_code == 409
    assert Layout.objects.filter(organization=organization).count() == 2


def test_another_organizations_layout_cannot_be_used(member_client):
    client, _, _ = member_client(Role.MANAGER)
    theirs = LayoutFactory(name="theirs")
    response = client.post(
        TEMPLATES, {"name": "x", "subject": "s", "html_body": "<p>x</p>", "layout": str(theirs.pk)}, format="json"
    )
    assert response.status_code == 400
    assert "layout" in response.json()
    for tag in ('{% extends "layout:theirs" %}', '{% include "layout:theirs" %}', '{% import "layout:theirs" as t %}'):
        response = client.post(
            TEMPLATES, {"name": "x", "subject": "s", "html_body": f"<p>x</p>{UNSUBSCRIBE}\n{tag}"}, format="json"
        )
        assert response.status_code == 400
        assert response.json() == {"html_body": ["line 2: layout 'theirs' not found"]}
    assert client.get(f"{LAYOUTS}{theirs.pk}/").status_code == 404


# --- Refused on save with a 400, never a 500 -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
        "{{ x" + "|e" * 2000 + " }}",
        "{{ x" + " + x" * 250 + " }}",  # Python refuses the generated code: "too many nested parentheses"
        "{% for a in x %}" * 25 + "y" + "{% endfor %}" * 25,  # "too many statically nested blocks"
        "{% if x %}" * 150 + "y" + "{% endif %}" * 150,
    ],
    ids=["parentheses", "filters", "operators", "loops", "conditions"],
)
def test_a_template_nested_too_deeply_is_400_naming_the_field(member_client, body):
    client, _, _ = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES, {"name": "Deep", "subject": "s", "html_body": body, "variables": {"x": ""}}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"html_body": ["the template is nested too deeply"]}


def test_html_that_pythons_parser_refuses_is_saved_with_the_footer_appended(member_client):
    client, _, _ = member_client(Role.MANAGER)
    body = "<html><body><![foo[ x ]]><p>Sale</p></body></html>"
    response = client.post(TEMPLATES, {"name": "Odd", "subject": "s", "html_body": body}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["html_body"].startswith("<html><body><![foo[ x ]]><p>Sale</p>" + EmailFooter.DEFAULT_HTML)
    preview = client.post(preview_url(MessageTemplate.objects.get()), {}, format="json")
    assert preview.status_code == 200


def test_a_template_and_its_layouts_are_limited_in_size_together(member_client):
    client, _, organization = member_client(Role.MANAGER)
    filler = "<p>" + "x" * 400_000 + "</p>"
    for name in ("one", "two"):
        LayoutFactory(organization=organization, name=name, html=LAYOUT_HTML + filler)
    body = '<p>Hi</p>{% include "layout:two" %}' + filler
    response = client.post(
        TEMPLATES,
        {"name": "Big", "subject": "s", "html_body": body, "layout": str(Layout.objects.get(name="one").pk)},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "html_body": ["the template, its layouts and its other parts are larger than 1,000,000 characters together"]
    }


def test_a_template_too_complex_to_compile_is_400(member_client):
    client, _, _ = member_client(Role.MANAGER)
    body = "{{ x.y }}" * 6000 + UNSUBSCRIBE
    response = client.post(
        TEMPLATES, {"name": "Busy", "subject": "s", "html_body": body, "variables": {"x": {"y": 1}}}, format="json"
    )
    assert response.status_code == 400
    [message] = response.json()["html_body"]
    assert message.startswith("the template is too complex to compile: 12,0")
    assert message.endswith("Jinja elements, at most 5,000 with its layouts")


# --- Variables -----------------------------------------------------------------------------------------------


def test_an_unknown_variable_is_400_naming_field_line_and_name(member_client):
    client, _, _ = member_client(Role.MANAGER)
    payload = {
        "name": "Typo",
        "subject": "{{ promo_code }} for {{ contact.first_name }}",
        "html_body": f"<p>Hi</p>\n<p>Use {{{{ promo_cod }}}}</p>{UNSUBSCRIBE}",
        "variables": {"promo_code": "TEN"},
    }
    response = client.post(TEMPLATES, payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"html_body": ["line 2: unknown variable 'promo_cod' (declare it in variables)"]}

    payload["html_body"] = f"<p>Use {{{{ promo_code }}}}</p>{UNSUBSCRIBE}"
    assert client.post(TEMPLATES, payload, format="json").status_code == 201


def test_variables_a_template_sets_itself_and_jinjas_globals_are_known(member_client):
    client, _, _ = member_client(Role.MANAGER)
    body = (
        "{% set greeting = 'Hi' %}{% if contact.attributes.vip %}{% set tier = 'VIP' %}{% endif %}"
        "{% set ns = namespace(count=0) %}{% for i in range(3) %}{% set ns.count = ns.count + loop.index %}{% endfor %}"
        "{% macro item(name) %}<li>{{ name }}{{ caller() if caller }}</li>{% endmacro %}"
        "<p>{{ greeting }} {{ tier|default('') }} {{ ns.count }} {{ item('a') }} {{ cycler('a', 'b').next() }}</p>"
        "{% with n = 2 %}{{ n }}{% endwith %}" + UNSUBSCRIBE
    )
    response = client.post(TEMPLATES, {"name": "Own", "subject": "s", "html_body": body}, format="json")
    assert response.status_code == 201, response.content


def test_unknown_variables_are_found_in_every_part_and_in_layouts(member_client):
    client, _, organization = member_client(Role.MANAGER)
    LayoutFactory(organization=organization, name="brand", html=LAYOUT_HTML.replace("<html>", "<html>{{ banner }}"))
    response = client.post(
        TEMPLATES,
        {
            "name": "Parts",
            "subject": "{{ subjekt }}",
            "preheader": "{{ teaser }}",
            "html_body": "<p>x</p>",
            "text_body": "{{ body_text }}",
            "layout": str(Layout.objects.get(name="brand").pk),
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "subject": ["line 1: unknown variable 'subjekt' (declare it in variables)"],
        "preheader": ["line 1: unknown variable 'teaser' (declare it in variables)"],
        "html_body": ["layout:brand, line 1: unknown variable 'banner' (declare it in variables)"],
        "text_body": ["line 1: unknown variable 'body_text' (declare it in variables)"],
    }
    response = client.post(
        TEMPLATES,
        {
            "name": "Wa",
            "channel": "whatsapp",
            "whatsapp_template_name": "order",
            "whatsapp_language": "en",
            "whatsapp_parameters": {"body": ["{{ order }}", "{{ ordr }}"]},
            "variables": {"order": "A-1"},
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "whatsapp_parameters": ["body[1]: line 1: unknown variable 'ordr' (declare it in variables)"]
    }
