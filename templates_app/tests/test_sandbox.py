"""Sandbox escapes and resource exhaustion: refused with a 400 or a render error, never a 500, a hang or a leak."""

import time

import pytest

from accounts.models import Role
from templates_app.rendering import RenderError, TemplateSource, check_source, render_message
from templates_app.sandbox import RenderLimits
from templates_app.tests.factories import MessageTemplateFactory

TEMPLATES = "/api/v1/templates/"
UNSUBSCRIBE = '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'


def render_html(body: str, context: dict | None = None, limits: RenderLimits | None = None):
    source = TemplateSource(channel="email", subject="Hi", html_body=body)
    return render_message(source, context or {}, organization_id="sandbox-tests", limits=limits or RenderLimits())


ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
    "{{ x|attr(name) }}",
    "{{ x[name] }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{a.__class__.__mro__}'.format_map({'a': x}) }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self.__dict__ }}",
    "{{ (1).to_bytes(8, 'big') }}",
    "{{ dict.fromkeys(range(3)) }}",
    "{{ lipsum() }}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_escape_attempts_are_render_errors_without_leaking(body):
    with pytest.raises(RenderError) as caught:
        render_html(body, {"x": "abc", "name": "__class__"})
    assert caught.value.field == "html_body"
    assert caught.value.message.startswith("line 1: ")
    assert any(reason in caught.value.message for reason in ("is unsafe", "is not allowed", "is undefined"))
    assert "<class" not in caught.value.message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ range(10**9)|list }}", "Range too big"),
        ("{{ 'a' * 10**9 }}", "larger than 1,000,000"),
        ("{{ 'a' * 1000000000 }}", "larger than 1,000,000"),
        ("{{ ['a' * 100000] * 100000 }}", "larger than 1,000,000"),
        ("{{ 2 ** 100000 }}", "bits"),
        ("{{ '{:>999999999}'.format(1) }}", "format widths"),
        ("{{ '{0:{1}}'.format(1, 999999999) }}", "nested format"),
        ("{{ '%0999999999d' % 1 }}", "format widths"),
        ("{{ '%0999999999d'|format(1) }}", "format widths"),
        ("{{ 'a'|center(1000000000) }}", "larger than 1,000,000"),
        ("{{ 'a'.ljust(1000000000) }}", "larger than 1,000,000"),
        ("{{ 'abc'.replace('', 'x' * 900000) }}", "larger than 1,000,000"),
        ("{{ range(1000)|join('y' * 100000) }}", "larger than 1,000,000"),
        ("{{ 5|round(-1000000000) }}", "precision"),
        ("{{ big|wordwrap(1) }}", "wordwrap works on at most"),
        ("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", "nest"),
        ("{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}{% endmacro %}{{ d(60) }}", "nest"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "nest"),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "larger than 1,000,000",
        ),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "larger than 1,000,000",
        ),
        ("{{ big|forceescape|forceescape|forceescape|forceescape|forceescape }}", "larger than 1,000,000"),
        ("{% filter upper %}{% for i in range(100000) %}{{ big }}{% endfor %}{% endfilter %}", "produces more"),
        (
            "{% macro m() %}{% for i in range(100000) %}" + "0123456789" * 20 + "{% endfor %}{% endmacro %}{{ m() }}",
            "produces more",
        ),
    ],
)
def test_resource_exhaustion_is_refused_quickly(body, reason):
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_html(body, {"big": "&" * 100_000})
    assert reason in caught.value.message
    assert caught.value.message.startswith("line 1: ")
    assert time.monotonic() - started < 2


def test_a_render_that_takes_too_long_is_stopped_at_the_deadline():
    body = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_html(body, limits=RenderLimits(timeout=0.3))
    assert "longer than 0.3 s" in caught.value.message
    assert time.monotonic() - started < 2


def test_output_larger_than_the_cap_is_refused():
    with pytest.raises(RenderError) as caught:
        render_html("{% for i in range(20) %}{{ chunk }}{% endfor %}", {"chunk": "x" * 60_000})
    assert "larger than 1,000,000 characters" in caught.value.message


def test_private_attributes_are_refused_before_rendering():
    problems = check_source(TemplateSource(channel="email", subject="s", html_body="<p>\n{{ x.__class__ }}</p>"))
    assert problems == {"html_body": ["line 2: access to '__class__' is not allowed"]}


def test_internal_filters_cannot_be_called_by_templates():
    problems = check_source(TemplateSource(channel="email", subject="s", html_body="{{ x|_cc_track_link }}"))
    assert problems == {"html_body": ["line 1: no filter named '_cc_track_link'"]}


def test_html_escapes_a_contacts_script_but_subject_and_text_keep_it():
    source = TemplateSource(
        channel="email",
        subject="Hi {{ contact.first_name }}",
        html_body="<p>Hi {{ contact.first_name }}</p>",
        text_body="Hi {{ contact.first_name }}",
    )
    rendered = render_message(
        source, {"contact": {"first_name": "<script>alert(1)</script>"}}, organization_id="sandbox-tests"
    )
    assert rendered.html == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert rendered.subject == "Hi <script>alert(1)</script>"
    assert rendered.text == "Hi <script>alert(1)</script>"


# --- Through the API: 400, never 500 ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<p>\n{{ ''.__class__ }}</p>", "line 2: access to '__class__' is not allowed"),
        ("<p>{{ ''.__class__.__mro__ }}</p>", "line 1: access to '__mro__' is not allowed"),
        ("<p>{{ ''|attr('__class__') }}</p>", "line 1: access to '__class__' is not allowed"),
    ],
)
def test_saving_a_template_with_private_attributes_is_400(member_client, body, message):
    client, _, _ = member_client(Role.MANAGER)
    response = client.post(
        TEMPLATES, {"name": "Escape", "subject": "s", "html_body": body + UNSUBSCRIBE}, format="json"
    )
    assert response.status_code == 400
    assert message in response.json()["html_body"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "context", "reason"),
    [
        ("{{ x|attr(name) }}", {"x": "a", "name": "__class__"}, "unsafe"),
        ("{{ '{0.__class__}'.format(x) }}", {"x": "a"}, "unsafe"),
        ("{{ range(10**9)|list }}", {}, "Range too big"),
        ("{{ 'a' * 10**9 }}", {}, "larger than 1,000,000"),
        ("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", {}, "nest"),
    ],
)
def test_previewing_an_escape_attempt_is_400_with_the_reason(member_client, body, context, reason):
    client, _, organization = member_client(Role.MANAGER)
    template = MessageTemplateFactory(organization=organization, html_body=f"<p>{body}</p>{UNSUBSCRIBE}")
    response = client.post(f"{TEMPLATES}{template.pk}/preview", {"context": context}, format="json")
    assert response.status_code == 400
    [message] = response.json()["html_body"]
    assert message.startswith("line 1: ")
    assert reason in message
    assert "<class" not in response.content.decode()


@pytest.mark.django_db
def test_an_oversized_template_is_400(member_client):
    client, _, _ = member_client(Role.MANAGER)
    body = "<p>" + "x" * (512 * 1024) + "</p>"
    response = client.post(TEMPLATES, {"name": "Huge", "subject": "s", "html_body": body}, format="json")
    assert response.status_code == 400
    assert response.json()["html_body"] == ["The template is larger than 512 KB."]
