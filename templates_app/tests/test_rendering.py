from datetime import UTC, datetime

import pytest

from accounts.tests.factories import OrganizationFactory
from contacts.models import Contact
from templates_app import rendering, selectors
from templates_app.context import contact_context, message_context, preview_context
from templates_app.rendering import CompileError, RenderError, TemplateSource, render_message
from templates_app.tests.factories import LAYOUT_HTML, LayoutFactory, MessageTemplateFactory
from templates_app.tracking_html import LinkTracking


def email(**fields) -> TemplateSource:
    return TemplateSource(channel="email", subject=fields.pop("subject", "s"), **fields)


@pytest.mark.django_db
def test_contact_context_reads_the_contact_row():
    organization = OrganizationFactory()
    contact = Contact.objects.create(
        organization=organization,
        email="ann@example.com",
        first_name="Ann",
        last_name="Smith",
        phone="+31612345678",
        timezone="America/New_York",
        locale="nl",
        attributes={"city": "Utrecht"},
    )
    assert contact_context(contact) == {
        "id": str(contact.public_id),
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Smith",
        "full_name": "Ann Smith",
        "phone": "+31612345678",
        "timezone": "America/New_York",
        "locale": "nl",
        "attributes": {"city": "Utrecht"},
    }


def test_campaign_variables_never_replace_reserved_names():
    context = message_context(
        contact={"first_name": "Ann"},
        organization={"name": "Org"},
        unsubscribe_url="https://u",
        variables={"promo": "SPRING", "unsubscribe_url": "https://evil", "contact": "x"},
    )
    assert context["promo"] == "SPRING"
    assert context["unsubscribe_url"] == "https://u"
    assert context["contact"] == {"first_name": "Ann"}


def test_localdate_formats_in_the_contacts_time_zone_then_the_organizations():
    source = email(text_body="{{ when|localdate('%d %b %Y %H:%M') }} / {{ day|localdate }}")
    moment = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    rendered = render_message(
        source,
        {"when": moment, "day": "2024-05-04", "contact": {"timezone": "Europe/Amsterdam"}},
        organization_id="r",
    )
    assert rendered.text == "02 Mar 2024 00:30 / 04 May 2024"
    rendered = render_message(
        source,
        {"when": "2024-03-01T23:30:00Z", "day": "2024-05-04", "contact": {"timezone": ""},
         "organization": {"timezone": "America/New_York"}},
        organization_id="r",
    )  # fmt: skip
    assert rendered.text == "01 Mar 2024 18:30 / 04 May 2024"


def test_localdate_refuses_what_is_not_a_date():
    with pytest.raises(RenderError) as caught:
        render_message(email(text_body="{{ 'soon'|localdate }}"), {}, organization_id="r")
    assert caught.value.errors == {
        "text_body": ["line 1: localdate: 'soon' is not a date, a date-time or an ISO 8601 string"]
    }


def test_title_and_default_filters():
    rendered = render_message(
        email(text_body="{{ name|title }} {{ missing|default('friend') }}"),
        {"name": "ann-marie smith"},
        organization_id="r",
    )
    assert rendered.text == "Ann-Marie Smith friend"


def test_an_undefined_variable_is_an_error_naming_field_and_line_never_a_blank():
    source = email(html_body="<p>Hello</p>\n<p>{{ promo_code }}</p>")
    with pytest.raises(RenderError) as caught:
        render_message(source, {}, organization_id="r")
    assert caught.value.errors == {"html_body": ["line 2: 'promo_code' is undefined"]}
    with pytest.raises(RenderError) as caught:
        render_message(
            email(subject="{{ contact.attributes.city }}"), {"contact": {"attributes": {}}}, organization_id="r"
        )
    assert caught.value.errors == {"subject": ["line 1: 'dict object' has no attribute 'city'"]}


def test_an_undefined_value_is_false_in_a_condition():
    source = email(text_body="{% if contact.attributes.vip %}VIP{% else %}Hello{% endif %}")
    assert render_message(source, {"contact": {"attributes": {}}}, organization_id="r").text == "Hello"


def test_a_syntax_error_names_the_field_and_the_line():
    with pytest.raises(CompileError) as caught:
        rendering.prepare(email(html_body="<p>\n{% if x %}\n{{ x }</p>"), organization_id="r")
    assert caught.value.errors == {"html_body": ["line 3: unexpected '}'"]}


def test_the_preheader_is_hidden_after_the_body_tag_and_left_out_of_the_text():
    source = email(preheader="Sale for {{ name }}", html_body="<html><body class='x'><p>Hi</p></body></html>")
    rendered = render_message(source, {"name": "<Ann>"}, organization_id="r")
    assert rendered.preheader == "Sale for <Ann>"
    assert rendered.html.startswith("<html><body class='x'><div style=\"display:none;")
    assert ">Sale for &lt;Ann&gt;</div><p>Hi</p></body></html>" in rendered.html
    assert rendered.text == "Hi"


def test_subject_is_one_line():
    rendered = render_message(email(subject="Hi\r\n{{ name }}\nBcc: x@example.com", html_body="x"), {"name": "A"},
                              organization_id="r")  # fmt: skip
    assert rendered.subject == "Hi A Bcc: x@example.com"


def test_the_send_path_compiles_once_for_many_messages():
    source = email(html_body='<p>{{ n }} <a href="https://example.com/{{ n }}">x</a></p>', subject="#{{ n }}")
    before = rendering.cache_info()
    tracking = LinkTracking(click_url=lambda url, index: f"https://t.example/{index}", open_pixel_url=lambda: "p")
    for n in range(50):
        compiled = rendering.prepare(source, organization_id="compile-once", tracked=True)
        assert compiled.render({"n": n}, tracking=tracking).subject == f"#{n}"
    after = rendering.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 49


def test_the_cache_is_keyed_by_organization_and_source():
    source = email(html_body="<p>x</p>")
    first = rendering.prepare(source, organization_id="org-a")
    assert rendering.prepare(source, organization_id="org-a") is first
    assert rendering.prepare(source, organization_id="org-b") is not first
    assert rendering.prepare(email(html_body="<p>y</p>"), organization_id="org-a") is not first


def test_sms_and_whatsapp_render_their_own_fields():
    sms = TemplateSource(channel="sms", sms_body="Hoi {{ contact.first_name }}, code {{ code }} €")
    rendered = render_message(sms, {"contact": {"first_name": "Ann"}, "code": "X1"}, organization_id="r")
    assert rendered.text == "Hoi Ann, code X1 €"
    assert (rendered.sms.encoding, rendered.sms.length, rendered.sms.segments) == ("gsm7", 19, 1)

    whatsapp = TemplateSource(
        channel="whatsapp", whatsapp_parameters={"body": ["{{ contact.first_name }}", "{{ code }}"], "header": "Hi"}
    )
    rendered = render_message(whatsapp, {"contact": {"first_name": "Ann"}, "code": "X1"}, organization_id="r")
    assert rendered.whatsapp_parameters == {"body": ["Ann", "X1"], "header": "Hi"}
    with pytest.raises(RenderError) as caught:
        render_message(TemplateSource(channel="whatsapp", whatsapp_parameters=["{{ nope }}"]), {}, organization_id="r")
    assert caught.value.errors == {"whatsapp_parameters": ["line 1: 'nope' is undefined"]}


def test_layouts_wrap_the_body_and_only_the_given_ones_are_visible():
    layouts = {"brand": LAYOUT_HTML}
    source = email(html_body="<p>Body {{ n }}</p>", layout="brand", layouts=layouts)
    rendered = render_message(source, {"n": 1, "unsubscribe_url": "https://u"}, organization_id="r")
    assert '<div class="layout"><p>Body 1</p></div>' in rendered.html
    assert '<a href="https://u">Unsubscribe</a>' in rendered.html
    assert rendered.text == "Body 1\n\nUnsubscribe (https://u)"

    explicit = email(html_body='{% extends "layout:brand" %}{% block content %}<b>X</b>{% endblock %}', layouts=layouts)
    assert (
        '<div class="layout"><b>X</b></div>'
        in render_message(explicit, {"unsubscribe_url": "u"}, organization_id="r").html
    )

    missing = email(html_body='<p>\n{% include "layout:brand" %}</p>', layouts={})
    assert rendering.check_source(missing) == {"html_body": ["line 2: layout 'brand' not found"]}
    with pytest.raises(RenderError) as caught:
        render_message(missing, {}, organization_id="r")
    assert caught.value.errors == {"html_body": ["line 2: layout 'brand' not found"]}


@pytest.mark.django_db
def test_another_organizations_layout_is_not_found():
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    LayoutFactory(organization=theirs, name="secret")
    LayoutFactory(organization=mine, name="mine")
    found = selectors.layouts_used(
        organization_id=mine.pk, texts=['{% extends "layout:secret" %}', '{% include "layout:mine" %}']
    )
    assert found == {"mine": LAYOUT_HTML}


@pytest.mark.django_db
def test_preview_context_merges_overrides_into_the_sample():
    organization = OrganizationFactory(name="Acme")
    context = preview_context(
        organization=organization, variables={"promo": "A"}, overrides={"contact": {"first_name": "Bo"}, "promo": "B"}
    )
    assert context["contact"]["first_name"] == "Bo"
    assert context["contact"]["email"] == "jane.doe@example.com"
    assert context["organization"]["name"] == "Acme"
    assert context["promo"] == "B"


@pytest.mark.django_db
def test_template_preview_renders_a_saved_template_for_a_contact():
    organization = OrganizationFactory(name="Acme")
    template = MessageTemplateFactory(
        organization=organization, subject="Hi {{ contact.first_name }} from {{ organization.name }}"
    )
    contact = Contact.objects.create(organization=organization, email="a@example.com", first_name="Ann")
    rendered = selectors.template_preview(template=template, contact=contact)
    assert rendered.subject == "Hi Ann from Acme"
    assert "<p>Hi Ann!</p>" in rendered.html


def test_the_compiled_cache_is_bounded_by_source_size_as_well_as_entries():
    cache = rendering._BoundedCache(entries=3, weight=100)
    for key in "abc":
        cache.put(key, key, weight=30)
    assert cache.get("a") == "a"  # now the most recently used
    cache.put("d", "d", weight=30)  # 120 > 100: the least recently used goes
    assert (cache.get("b"), cache.get("a"), cache.weight) == (None, "a", 90)
    cache.put("huge", "huge", weight=101)
    assert cache.get("huge") is None
    cache.put("e", "e", weight=5)
    assert len(cache.entries) == 3
    source = email(html_body="<p>" + "x" * 1000 + "</p>")
    rendering.cache_clear()
    rendering.prepare(source, organization_id="weighed")
    assert rendering.cache_info().chars == source.chars() == 1 + 1007
