"""The parts of Jinja2 the sandbox and the renderer use that Jinja does not document.

Jinja2 is pinned in requirements.txt. Each test here names one such part and checks
the shape the code relies on, so an upgrade that changes it fails here, by name,
rather than as a sandbox that quietly stops guarding or a render that fails per message.
"""

import sys

import pytest
from jinja2 import DictLoader, Environment, nodes, pass_context, pass_environment, pass_eval_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg
from markupsafe import Markup

from templates_app.rendering import _PLAIN, RenderError, TemplateSource, render_message
from templates_app.sandbox import RenderLimits, TemplateSandbox, budget, value_size


def test_pass_arg_kinds_are_the_three_the_filter_wrapper_calls():
    # sandbox._checked_filter calls a wrapped filter with the context, the eval context or the
    # environment, as _PassArg.from_obj says; a new kind would be called the wrong way.
    assert {kind.name for kind in _PassArg} == {"context", "eval_context", "environment"}

    def plain(value):
        return value

    assert _PassArg.from_obj(plain) is None
    assert _PassArg.from_obj(pass_context(lambda context, value: value)) is _PassArg.context
    assert _PassArg.from_obj(pass_eval_context(lambda eval_ctx, value: value)) is _PassArg.eval_context
    assert _PassArg.from_obj(pass_environment(lambda environment, value: value)) is _PassArg.environment
    assert {_PassArg.from_obj(func) for func in DEFAULT_FILTERS.values()} <= {None, *_PassArg}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ [3, 1, 2]|sort|join(',') }}", "1,2,3"),  # environment
        ("{{ 'a-b'|replace('-', '+') }}", "a+b"),  # eval context
        ("{{ [{'n': 'x'}]|map(attribute='n')|first }}", "x"),  # context
        ("{{ 'ab'|upper }}", "AB"),  # none
    ],
)
def test_filters_of_every_pass_arg_kind_run_through_the_wrapper(body, expected):
    source = TemplateSource(channel="email", subject="s", text_body=body)
    assert render_message(source, {}, organization_id="jinja-internals").text == expected


def test_namespace_keeps_its_attributes_in_the_mangled_dict_value_size_reads():
    namespace = Namespace(a="x" * 10)
    namespace["b"] = [1, 2]  # what {% set ns.b = ... %} does
    attributes = object.__getattribute__(namespace, "_Namespace__attrs")
    assert attributes == {"a": "x" * 10, "b": [1, 2]}
    assert value_size(namespace, 1000) == value_size({"a": "x" * 10, "b": [1, 2]}, 1000)


def test_compile_is_the_one_way_into_compiled_code():
    # TemplateSandbox.compile inserts the guards; Jinja must still reach it from strings and loaders.
    calls = []

    class Watching(TemplateSandbox):
        def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
            calls.append(name)
            return super().compile(source, name, filename, raw, defer_init)

    env = Watching(autoescape=False, loader=DictLoader({"layout:l": "x"}))
    env.from_string("y")
    env.get_template("layout:l")
    assert calls == [None, "layout:l"]


def test_the_sandbox_hooks_it_overrides_still_exist():
    for hook in ("call_binop", "intercepted_binops", "wrap_str_format", "call", "getattr", "getitem"):
        assert hasattr(ImmutableSandboxedEnvironment, hook), hook


def test_the_nodes_the_hardener_builds_have_the_fields_it_passes():
    assert nodes.Filter.fields == ("node", "name", "args", "kwargs", "dyn_args", "dyn_kwargs")
    assert nodes.Output.fields == ("nodes",)
    assert nodes.ExprStmt.fields == ("node",)
    assert nodes.TemplateData.fields == ("data",)
    assert {"iter", "recursive"} <= set(nodes.For.fields)
    assert nodes.Tuple.fields == ("items", "ctx")  # a tuple may be an assignment target


def test_join_helpers_the_concatenation_guard_uses():
    assert markup_join(["<", Markup("<b>")]) == Markup("&lt;<b>")
    assert str_join(["<", 1]) == "<1"


def test_render_functions_and_contexts_the_renderer_drives_directly():
    # rendering._run streams root_render_func(new_context(..., shared=True)) to count output as it arrives.
    template = TemplateSandbox(autoescape=False).from_string("{{ a }}-{{ range(2)|list }}")
    context = template.new_context({**_PLAIN.globals, "a": 1}, shared=True)
    with budget(RenderLimits()):
        assert "".join(template.root_render_func(context)) == "1-[0, 1]"


def test_template_frames_carry_their_template_for_error_lines():
    # rendering._describe finds the line of an error from the template in the frame's globals.
    template = TemplateSandbox(autoescape=False).from_string("a\n\n{{ 1 // 0 }}")
    try:
        "".join(template.root_render_func(template.new_context({})))
    except ZeroDivisionError:
        traceback = sys.exc_info()[2]
    frames = []
    while traceback is not None:
        frames.append(traceback)
        traceback = traceback.tb_next
    found = [(tb.tb_frame.f_globals.get("__jinja_template__"), tb.tb_lineno) for tb in frames]
    (owner, lineno), *_ = [(owner, lineno) for owner, lineno in found if owner is not None]
    assert owner is template
    assert owner.get_corresponding_lineno(lineno) == 3
    with pytest.raises(RenderError) as caught:
        render_message(TemplateSource(channel="email", subject="a\n\n{{ 1 // 0 }}"), {}, organization_id="j")
    assert caught.value.errors == {"subject": ["line 3: integer division or modulo by zero"]}


def test_the_lexer_yields_token_values_as_written():
    # tracking_html.jinja_spans finds each token value in the source in order; only whitespace that
    # whitespace control strips may lie between them.
    source = "a  {%- if x -%}  b{{ {'k': '}}'} }}{# c #}{{ 1.5 }}"
    tokens = list(Environment(autoescape=True).lex(source))
    assert "".join(value for _, _, value in tokens) == source.replace("a  {%-", "a{%-")
    assert [kind for _, kind, _ in tokens if kind.endswith(("_begin", "_end"))] == [
        "block_begin", "block_end", "variable_begin", "variable_end", "comment_begin", "comment_end",
        "variable_begin", "variable_end",
    ]  # fmt: skip
