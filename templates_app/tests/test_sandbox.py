"""Sandbox escapes and resource exhaustion: refused with a 400 or a render error, never a 500, a hang or a leak."""

import time

import pytest
from jinja2 import DictLoader

from accounts.models import Role
from templates_app.rendering import RenderError, TemplateSource, check_source, prepare, render_message
from templates_app.sandbox import LimitExceeded, RenderLimits, TemplateSandbox, budget, value_size
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
    template = MessageTemplateFactory(
        organization=organization, html_body=f"<p>{body}</p>{UNSUBSCRIBE}", variables=dict.fromkeys(context, "")
    )
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


# --- Output counted wherever it comes from ---------------------------------------------------------

LOOPING_LAYOUT = "{% for i in range(100000) %}{% block content %}{% endblock %}{% endfor %}"
SMALL_OUTPUT = RenderLimits(max_output=50_000, max_produced=200_000)


def render_with_layouts(body: str, layouts: dict[str, str], layout: str = "", limits: RenderLimits = SMALL_OUTPUT):
    source = TemplateSource(channel="email", subject="Hi", html_body=body, layout=layout, layouts=layouts)
    return render_message(source, {}, organization_id="sandbox-tests", limits=limits)


@pytest.mark.parametrize(
    ("body", "layout_html"),
    [
        ("{{ 'y' * 100000 }}", LOOPING_LAYOUT),
        ("static text " * 100, LOOPING_LAYOUT),
        ("{{ 'y' * 100000 }}", "{% set x %}" + LOOPING_LAYOUT + "{% endset %}{{ x|length }}"),
        ("static text " * 100, "{% filter upper %}" + LOOPING_LAYOUT + "{% endfilter %}"),
    ],
    ids=["dynamic", "static", "dynamic-collected", "static-collected"],
)
def test_a_block_repeated_by_its_layout_is_counted_and_refused_quickly(body, layout_html):
    # The block's output is "top level" in the body, but the layout's loop repeats it.
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_with_layouts(body, {"loop": layout_html}, layout="loop")
    assert "larger than 50,000 characters" in caught.value.message or "more than 200,000" in caught.value.message
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "body",
    [
        '{% for i in range(100000) %}{% include "layout:part" %}{% endfor %}',
        '{% set x %}{% for i in range(100000) %}{% include "layout:part" %}{% endfor %}{% endset %}{{ x|length }}',
    ],
    ids=["streamed", "collected"],
)
def test_an_include_in_a_loop_is_counted_and_refused_quickly(body):
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_with_layouts(body, {"part": "{{ 'y' * 1000 }} and some text"})
    assert "larger than 50,000 characters" in caught.value.message or "more than 200,000" in caught.value.message
    assert time.monotonic() - started < 1


def test_top_level_output_is_counted_as_it_is_produced_not_after_collecting_it():
    # Every {{ big }} is escaped into a new 1 MB string: refused at the first one over the cap.
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_html("{{ big }}" * 500, {"big": "&" * 200_000}, limits=RenderLimits(max_output=300_000))
    assert "the output is larger than 300,000 characters" in caught.value.message
    assert time.monotonic() - started < 1


# --- Values that repeat references ----------------------------------------------------------------------

DOUBLING = "{% set a0 = 'x' * 1000 %}" + "".join(f"{{% set a{n + 1} = [a{n}, a{n}] %}}" for n in range(20))


@pytest.mark.parametrize(
    "body",
    [
        DOUBLING + "{{ a20|string }}",
        DOUBLING + "{{ a20 }}",
        "{% set a = 'x' * 900000 %}{% set ns = namespace(a=a, b=a) %}{{ ns|string }}",
        "{% set a = 'x' * 900000 %}{% set d = {'a': a, 'b': a} %}{{ d|tojson }}",
        "{% set a = 'x' * 900000 %}{% set ns = namespace() %}{% set ns.a = a %}{% set ns.b = a %}{{ ns }}",
        "{% set a = 'x' * 600000 %}{% set t = (a, a) %}{{ t ~ '' }}",
        "{% set a = 'x' * 600000 %}{{ '%s%s' % (a, a) }}",
        "{% set a = 'x' * 900000 %}{{ ('%(a)s' * 1000) % {'a': a} }}",
        "{% set a = 'x' * 900000 %}{{ ('{0}' * 1000).format(a) }}",
        "{% set a = 'x' * 900000 %}{{ ('{a}' * 1000).format_map({'a': a}) }}",
        "{% set a = 'x' * 900000 %}{{ ('%(a)s' * 1000)|format(a=a) }}",
        "{% set a = 'x' * 600000 %}{{ [a, a]|join }}",
        "{% set n = 2 ** 4000 %}{{ ([n] * 1000)|string }}",
    ],
    ids=[
        "list-doubling|string",
        "list-doubling output",
        "namespace()|string",
        "dict|tojson",
        "namespace attributes output",
        "tuple ~",
        "tuple %",
        "named % repeated",
        "format repeated",
        "format_map repeated",
        "|format repeated",
        "|join",
        "numbers|string",
    ],
)
def test_repeated_references_are_measured_before_anything_is_built(body):
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_html(body)
    assert "larger than 1,000,000" in caught.value.message
    assert time.monotonic() - started < 1


def test_sizes_count_shared_values_each_time_and_stop_at_cycles():
    text = "x" * 10
    pair = [text, text]
    assert value_size(pair, 1000) == 3 + 20
    assert value_size([pair, pair], 1000) == 3 + 2 * 23
    nested = text
    for _ in range(64):
        nested = [nested, nested]  # 2**64 references: measured in 64 steps
    assert value_size(nested, 1_000_000) == 1_000_001
    loop: list = []
    loop.append(loop)
    assert value_size(loop, 1000) < 10
    assert value_size({"n": 10**30}, 1000) == 2 + 1 + 34  # a number counts its digits


@pytest.mark.parametrize(
    "use",
    ["{{ ns }}", "{{ holder }}", "{{ holder|string }}", "{{ holder ~ '' }}", "{{ '%s' % (holder,) }}", "{{ m() }}"],
)
def test_a_namespace_that_grew_after_being_referenced_is_measured_when_used(use):
    # A namespace is the one value a template can change: a list that holds one was small when built.
    body = (
        "{% set a = 'x' * 400000 %}{% set ns = namespace() %}{% set holder = [ns, ns, ns] %}"
        "{% set ns.a = a %}{% set ns.b = a %}{% set ns.c = a %}{% macro m() %}{{ holder }}{% endmacro %}" + use
    )
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_html(body)
    assert "larger than 1,000,000 characters" in caught.value.message
    assert time.monotonic() - started < 1
    cyclic = "{% set ns = namespace(n=1) %}{% set ns.me = ns %}{{ [ns, ns]|length }}"
    assert render_html(cyclic).html == "2"


def test_filters_are_not_run_at_compile_time():
    # Jinja folds constant expressions when compiling; a filter folded there would escape the render limits
    # (and {{ 'x'|center(900000) }} a thousand times would build gigabytes in the compiler).
    with pytest.raises(RenderError) as caught:
        render_html("{{ 'x'|center(50) }}", limits=RenderLimits(max_value=10))
    assert "larger than 10 characters" in caught.value.message


# --- The deadline without loops or calls ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["{{ big|upper|length }}" * 400, "{{ (big ~ 'x')|length }}" * 400, "{{ (big + 'x')|length }}" * 400],
    ids=["filter", "concatenation", "operator"],
)
def test_the_deadline_holds_for_code_without_loops_or_calls(body):
    compiled = prepare(TemplateSource(channel="email", subject="Hi", html_body=body), organization_id="deadline")
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        compiled.render({"big": "a" * 999_000}, limits=RenderLimits(timeout=0.01))
    assert "longer than 0.01 s" in caught.value.message
    assert time.monotonic() - started < 0.2


@pytest.mark.parametrize("name", ["urlize", "title", "striptags", "wordwrap"])
def test_slow_text_filters_refuse_long_texts(name):
    with pytest.raises(RenderError) as caught:
        render_html(f"{{{{ big|{name} }}}}", {"big": "ab " * 40_000})
    assert f"{name} works on at most" in caught.value.message


# --- Calls ------------------------------------------------------------------------------------------------


def test_a_namespace_cannot_pass_for_a_callable_of_the_sandbox():
    with pytest.raises(RenderError) as caught:
        render_html("{% set fake = namespace(_cc_sandboxed_call=true) %}{{ fake() }}")
    assert "is not allowed" in caught.value.message
    assert render_html("{{ '{} and {}'.format(1, 2) }}").html == "1 and 2"


# --- Every way into compiled code is guarded ---------------------------------------------------------


def test_a_template_compiled_from_a_parsed_tree_is_guarded_too():
    env = TemplateSandbox(autoescape=False)
    body = "{% set a = 'x' * 600000 %}{{ [a, a][0]|length }}"
    tree = env.parse(body)
    assert "_cc_" not in repr(tree)  # parse gives the template as written, for the static checks
    for template in (env.from_string(body), env.from_string(tree), env.from_string(env.parse(body))):
        with budget(RenderLimits()), pytest.raises(LimitExceeded):
            template.render()


def test_layouts_from_the_loader_are_guarded_and_count_all_their_output():
    env = TemplateSandbox(
        autoescape=False, loader=DictLoader({"layout:l": "{{ [a, a][0]|length }}", "layout:t": "a" * 9})
    )
    with budget(RenderLimits()), pytest.raises(LimitExceeded):
        env.get_template("layout:l").render(a="x" * 600_000)
    # A layout may be included in a loop: its text is counted. A message's own top level is
    # counted by the renderer as it streams, so the environment leaves it alone.
    with budget(RenderLimits(max_produced=5)), pytest.raises(LimitExceeded):
        env.get_template("layout:t").render()
    with budget(RenderLimits(max_produced=5)):
        assert env.from_string("a" * 9).render() == "a" * 9
