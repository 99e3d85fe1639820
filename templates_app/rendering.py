"""The one rendering service: previews, test sends and the sending pipeline all use it.

    compiled = prepare(source, organization_id=org.id, tracked=True)   # once per campaign/batch
    message = compiled.render(context, tracking=LinkTracking(click_url=..., open_pixel_url=...))

* Templates run in ``sandbox.TemplateSandbox`` (Jinja2's
  ``ImmutableSandboxedEnvironment`` plus limits on time, size and depth).
  The HTML body is autoescaped; subject, preheader, text, SMS and WhatsApp
  parameters are not (they are not HTML).
* The context is a plain dict (see ``context.py``): ``contact``, ``organization``,
  ``campaign``, ``unsubscribe_url``, ``view_in_browser_url``, ``callback_url``
  and the campaign variables. Undefined values are errors whenever they would
  be output (``MessageUndefined``): a message is never sent with a blank where
  a value was expected; the error names the field and the line.
* Layouts: the HTML body fills the ``content`` block of the template's layout,
  and ``{% extends/include/import "layout:<name>" %}`` work too. The loader only
  knows the layouts in ``TemplateSource.layouts``, which callers fill with the
  organization's own layouts, so another organization's layout is "not found".
* Compiled templates are cached per process, keyed by a hash of the organization,
  every source (layouts included) and the tracking mode, so the send path
  compiles once per campaign rather than once per message. The cache holds at
  most ``CACHE_SIZE`` templates and ``CACHE_SOURCE_CHARS`` characters of source.
* With ``tracked=True`` the HTML is prepared for click tracking and the open
  pixel once, at compile time (``tracking_html``), and the text alternative,
  when ``text_body`` is empty, is generated from the HTML as a template of its own.
  What cannot be prepared that way is processed after rendering, per message:
  the same result, but about 30 times slower (``bench/templates_render.py``
  measures both), which is why both ways exist.
* Checking (`check_source`, on every save) parses each text once (`analyze`)
  and compiles once. Compiling is refused, with a problem on the field rather
  than an exception, for a template that is too large (``MAX_TOTAL_SOURCE``
  characters with its layouts), too complex (``MAX_ELEMENTS`` syntax nodes: compile
  time grows with them) or nested too deeply for Jinja's or Python's compiler.
  With ``context_names``, a variable the context will not have is a problem too.
"""

from __future__ import annotations

import contextvars
import hashlib
import html
import json
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from jinja2 import DictLoader, Template, meta, nodes, pass_context, pass_eval_context
from jinja2.exceptions import TemplateNotFound, TemplateSyntaxError, UndefinedError
from markupsafe import Markup

from config.errors import DomainError
from templates_app import tracking_html
from templates_app.sandbox import (
    DEFAULT_LIMITS,
    LAYOUT_PREFIX,
    MAX_SOURCE_SIZE,
    LimitExceeded,
    Problem,
    RenderLimits,
    TemplateSandbox,
    budget,
    check_template,
    syntax_problem,
)
from templates_app.sms import SmsInfo, sms_info
from templates_app.tracking_html import LinkTracking

CONTENT_BLOCK = "content"

MAX_TOTAL_SOURCE = 1_000_000
"""Characters in a template's parts and the layouts it uses, all together."""
MAX_ELEMENTS = 5_000
"""Jinja syntax nodes in a template's parts and layouts together; compiling costs 0.1-0.3 ms per node."""
MAX_NESTING = 100
"""Depth of a template's syntax tree (Jinja's compiler and Python's recurse on it)."""
TOO_DEEP = "the template is nested too deeply"

CACHE_SIZE = 256
"""Compiled templates kept per process..."""
CACHE_SOURCE_CHARS = 16_000_000
"""...as long as their sources (layouts included) add up to at most this many characters."""

Channel = str  # "email", "sms" or "whatsapp"
WhatsAppParameters = list[str] | dict[str, str | list[str]]


# --- Errors ------------------------------------------------------------------------------


class TemplateProblem(DomainError):
    """Problems with a template, per field: {"html_body": ["line 3: unexpected '}'"]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, messages in errors.items() for message in messages))


class CompileError(TemplateProblem):
    """A template does not compile (syntax, forbidden constructs, unknown layouts)."""


class RenderError(TemplateProblem):
    """One message could not be rendered; the reason names the field and, when known, the line."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.message = message
        super().__init__({field_name: [message]})


class _CallbackFailed(Exception):
    """A tracking URL maker raised: the caller's error, not the template's."""


# --- Inputs and outputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSource:
    """Everything rendering needs, as plain values (from a template or one of its versions)."""

    channel: Channel
    subject: str = ""
    preheader: str = ""
    html_body: str = ""
    text_body: str = ""
    sms_body: str = ""
    whatsapp_parameters: WhatsAppParameters | None = None
    layout: str = ""
    """Name of the layout whose `content` block the HTML body fills; empty for none."""
    layouts: Mapping[str, str] = field(default_factory=dict)
    """The organization's layouts this template uses (directly or through other layouts), by name."""

    def cache_key(self, organization_id: object, *, tracked: bool) -> str:
        payload = json.dumps(
            [
                str(organization_id),
                tracked,
                self.channel,
                self.subject,
                self.preheader,
                self.html_body,
                self.text_body,
                self.sms_body,
                self.whatsapp_parameters,
                self.layout,
                sorted(self.layouts.items()),
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def chars(self) -> int:
        """Characters of source, layouts included: what compiling and keeping it compiled costs."""
        texts = [getattr(self, name) for name in _TEXT_FIELDS]
        texts += list(self.layouts.values())
        texts += [text for _, text in _whatsapp_strings(self.whatsapp_parameters)]
        return sum(map(len, texts))


@dataclass(frozen=True)
class RenderedMessage:
    channel: Channel
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    links: tuple[str, ...] = ()
    """Rendered original URLs of the tracked links; a link's index is its position here."""
    sms: SmsInfo | None = None
    whatsapp_parameters: WhatsAppParameters | None = None


# --- Per-message state (tracking) -------------------------------------------------------------


class _MessageState:
    __slots__ = ("links", "pixel_done", "preheader", "preheader_done", "tracked", "tracking", "unsubscribe_url")

    def __init__(self, tracking: LinkTracking | None, unsubscribe_url: str) -> None:
        self.tracking = tracking
        self.unsubscribe_url = unsubscribe_url
        self.links: list[str] = []
        self.tracked: dict[str, str] = {}
        self.preheader = ""
        self.preheader_done = False
        self.pixel_done = False

    def track(self, url: str) -> str | None:
        tracked = self.tracked.get(url)  # the text part and repeated links ask again
        if tracked is not None:
            return tracked
        if self.tracking is None or not url[:8].lower().startswith(("http://", "https://")):
            return None
        if url == self.unsubscribe_url:
            return None
        try:
            tracked = self.tracking.click_url(url, len(self.links))
        except Exception as exc:
            raise _CallbackFailed from exc
        self.tracked[url] = tracked
        self.links.append(url)
        return tracked

    def pixel(self) -> str:
        if self.tracking is None or self.pixel_done:
            return ""
        self.pixel_done = True
        try:
            url = self.tracking.open_pixel_url()
        except Exception as exc:
            raise _CallbackFailed from exc
        return tracking_html.pixel_html(url)


_state: contextvars.ContextVar[_MessageState | None] = contextvars.ContextVar("templates_app_message", default=None)


def _unescape_url(value: str) -> str:
    # Most URLs hold no character reference or only "&amp;": skip the general unescape for those.
    if "&" not in value or value.count("&") == value.count("&amp;"):
        return value.replace("&amp;", "&").strip()
    return html.unescape(value).strip()


@pass_eval_context
def _track_link(eval_ctx, value):
    state = _state.get()
    if state is None:
        return value
    url = _unescape_url(str(value)) if eval_ctx.autoescape else str(value).strip()
    tracked = state.track(url)
    if tracked is None:
        return value
    if not eval_ctx.autoescape:
        return tracked
    return _escaped_url(tracked)


def _escaped_url(url: str) -> Markup:
    """Markup.escape(url), skipping the work for the usual URL that holds nothing to escape."""
    if "&" in url or "<" in url or ">" in url or '"' in url or "'" in url:
        return Markup.escape(url)
    return Markup(url)  # noqa: S704 - checked above: no character HTML escaping would change


@pass_context
def _open_pixel(context, _value):
    state = _state.get()
    return Markup(state.pixel()) if state is not None else ""  # noqa: S704 - our own markup, URL escaped


@pass_context
def _preheader(context, _value):
    state = _state.get()
    if state is None or state.preheader_done or not state.preheader:
        return ""
    state.preheader_done = True
    return Markup(tracking_html.preheader_html(state.preheader))  # noqa: S704 - text escaped inside


_RUNTIME_FILTERS = {
    tracking_html.TRACK_FILTER: _track_link,
    tracking_html.PIXEL_FILTER: _open_pixel,
    tracking_html.PREHEADER_FILTER: _preheader,
}


def _sandbox(*, autoescape: bool, layouts: Mapping[str, str]) -> TemplateSandbox:
    env = TemplateSandbox(
        autoescape=autoescape,
        loader=DictLoader({LAYOUT_PREFIX + name: text for name, text in layouts.items()}),
    )
    env.filters.update(_RUNTIME_FILTERS)
    return env


# --- Checking sources -----------------------------------------------------------------------------

_PLAIN = TemplateSandbox(autoescape=True)
# Names a template may read besides the context's: the sandbox's globals and Jinja's own.
_BUILTIN_NAMES = frozenset({*_PLAIN.globals, "loop", "self", "super", "caller", "varargs", "kwargs"})


@dataclass(frozen=True)
class TextAnalysis:
    """What the static checks need to know about one template text; see `analyze`."""

    problems: tuple[Problem, ...] = ()
    layouts: Mapping[str, int] = field(default_factory=dict)
    """Layouts the text names, with the line of their first use."""
    extends: bool = False
    blocks: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()
    """Variables read anywhere."""
    sets: frozenset[str] = frozenset()
    """Variables set anywhere (assignments, loop targets, macros, imports)."""
    undeclared: Mapping[str, int] = field(default_factory=dict)
    """Variables read from the context (Jinja's own analysis), with the line of their first use."""
    elements: int = 0
    """Syntax nodes: what compiling costs."""
    refused: bool = False
    """Too large or too deep to be analysed or compiled at all."""


def _shape(ast: nodes.Node) -> tuple[int, int]:
    """Number of nodes and depth of a syntax tree, without recursion."""
    count, deepest = 0, 0
    stack = [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if depth <= MAX_NESTING:
            stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return count, deepest


def _analyze(text: str) -> TextAnalysis:
    if len(text) > MAX_SOURCE_SIZE:
        too_large = Problem(None, f"the template is larger than {MAX_SOURCE_SIZE // 1024} KB")
        return TextAnalysis(problems=(too_large,), refused=True)
    try:
        ast = _PLAIN.parse_plain(text)
    except TemplateSyntaxError as exc:
        return TextAnalysis(problems=(syntax_problem(exc),))
    except RecursionError:
        return TextAnalysis(problems=(Problem(None, TOO_DEEP),), refused=True)
    elements, depth = _shape(ast)
    if depth > MAX_NESTING:
        return TextAnalysis(problems=(Problem(None, TOO_DEEP),), elements=elements, refused=True)
    if elements > MAX_ELEMENTS:
        return TextAnalysis(problems=(_too_complex(elements),), elements=elements, refused=True)
    try:
        problems, names = check_template(ast)
        # Jinja's analysis runs its code generator, which also finds unknown filters and tests.
        undeclared = set() if problems else meta.find_undeclared_variables(ast)
    except TemplateSyntaxError as exc:
        problems, names, undeclared = [syntax_problem(exc)], set(), set()
    except RecursionError:
        return TextAnalysis(problems=(Problem(None, TOO_DEEP),), elements=elements, refused=True)
    layouts: dict[str, int] = {}
    for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        targets = node.template.items if isinstance(node.template, nodes.List | nodes.Tuple) else [node.template]
        for target in targets:
            if isinstance(target, nodes.Const) and isinstance(target.value, str):
                name = target.value.removeprefix(LAYOUT_PREFIX)
                if name in names:
                    layouts.setdefault(name, node.lineno)
    reads: dict[str, int] = {}
    sets: set[str] = set()
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load":
            reads.setdefault(node.name, node.lineno)
        else:
            sets.add(node.name)
    sets.update(node.name for node in ast.find_all(nodes.Macro))
    sets.update(node.target for node in ast.find_all(nodes.Import))
    for node in ast.find_all(nodes.FromImport):
        sets.update(name if isinstance(name, str) else name[1] for name in node.names)
    return TextAnalysis(
        problems=tuple(problems),
        layouts=layouts,
        extends=ast.find(nodes.Extends) is not None,
        blocks=frozenset(block.name for block in ast.find_all(nodes.Block)),
        reads=frozenset(reads),
        sets=frozenset(sets),
        undeclared={name: reads.get(name, 1) for name in sorted(undeclared, key=lambda name: reads.get(name, 1))},
        elements=elements,
    )


def _too_complex(elements: int) -> Problem:
    message = f"the template is too complex to compile: {elements:,} Jinja elements, at most {MAX_ELEMENTS:,}"
    return Problem(None, message + " with its layouts")


def analyze(text: str) -> TextAnalysis:
    """Parse one template text (cached: a save looks at the same texts several times)."""
    analysis = _analyses.get(text)
    if analysis is None:
        analysis = _analyze(text)
        _analyses.put(text, analysis, weight=len(text))
    return analysis


def parse_problems(text: str) -> tuple[list[Problem], dict[str, int]]:
    """Syntax and static problems of one template text, and the layouts it names (with a line)."""
    analysis = analyze(text)
    return list(analysis.problems), dict(analysis.layouts)


def extends_a_layout(text: str) -> bool:
    return analyze(text).extends


def uses_name(text: str, name: str) -> bool:
    """Whether a template text reads the variable `name` (false when it does not parse)."""
    return name in analyze(text).reads


def defines_block(text: str, name: str) -> bool:
    return name in analyze(text).blocks


def _whatsapp_strings(parameters: WhatsAppParameters | None) -> list[tuple[str, str]]:
    """(path, template text) for every WhatsApp parameter."""
    if not parameters:
        return []
    if isinstance(parameters, list):
        return [(f"[{index}]", str(value)) for index, value in enumerate(parameters)]
    found: list[tuple[str, str]] = []
    for key, value in parameters.items():
        if isinstance(value, list):
            found.extend((f"{key}[{index}]", str(item)) for index, item in enumerate(value))
        else:
            found.append((key, str(value)))
    return found


_TEXT_FIELDS = ("subject", "preheader", "html_body", "text_body", "sms_body")


def _size_problem(source: TemplateSource) -> dict[str, list[str]]:
    """The source is too large to parse, all parts and layouts together (named on the largest part)."""
    sizes: dict[str, int] = {name: len(getattr(source, name)) for name in _TEXT_FIELDS}
    sizes["html_body"] += sum(len(text) for text in source.layouts.values())
    sizes["whatsapp_parameters"] = sum(len(text) for _, text in _whatsapp_strings(source.whatsapp_parameters))
    if sum(sizes.values()) <= MAX_TOTAL_SOURCE:
        return {}
    together = "its layouts and its other parts" if source.layouts else "its other parts"
    message = f"the template, {together} are larger than {MAX_TOTAL_SOURCE:,} characters together"
    return {max(sizes, key=sizes.__getitem__): [message]}


def _elements_problem(source: TemplateSource) -> dict[str, list[str]]:
    """The source is too complex to compile, all parts and layouts together (named on the busiest part)."""
    elements = {name: analyze(getattr(source, name)).elements for name in _TEXT_FIELDS if getattr(source, name)}
    elements["html_body"] = elements.get("html_body", 0) + sum(
        analyze(text).elements for text in source.layouts.values()
    )
    elements["whatsapp_parameters"] = sum(
        analyze(text).elements for _, text in _whatsapp_strings(source.whatsapp_parameters)
    )
    total = sum(elements.values())
    if total <= MAX_ELEMENTS:
        return {}
    return {max(elements, key=elements.__getitem__): [str(_too_complex(total))]}


def unknown_variables(text: str, *, context_names: Collection[str]) -> dict[str, int]:
    """Variables `text` reads that the context will not have (not in `context_names`, not set by the text).

    With the line of their first use. Jinja's globals (``range``, ``loop``...) are known.
    """
    analysis = analyze(text)
    known = _BUILTIN_NAMES.union(context_names, analysis.sets)
    return {name: lineno for name, lineno in analysis.undeclared.items() if name not in known}


def _unknown_variables(analyses: list[tuple[str, TextAnalysis]], known: frozenset[str]) -> list[str]:
    """One message per variable read from the context that it will not have."""
    messages = []
    for where, analysis in analyses:
        for name, lineno in analysis.undeclared.items():
            if name not in known and name not in analysis.sets:
                messages.append(f"{where}line {lineno}: unknown variable {name!r} (declare it in variables)")
    return messages


def static_problems(source: TemplateSource, *, context_names: Collection[str] | None = None) -> dict[str, list[str]]:
    """Problems found without compiling, per field: syntax, forbidden constructs, layouts, limits, variables.

    `context_names` are the names the context will have (the reserved ones and the
    declared variables); a variable read from the context that is not among them is
    a problem. None skips that check (layouts on their own do not know their templates).
    """
    return _static_problems(source, context_names)[0]


def _static_problems(
    source: TemplateSource, context_names: Collection[str] | None
) -> tuple[dict[str, list[str]], bool]:
    """The problems, and whether the source may be compiled (not when it is too large, deep or complex)."""
    refusals = _compile_limits(source)
    if refusals:
        return refusals, False
    errors: dict[str, list[str]] = {}

    def add(field_name: str, problems: Collection[Problem | str], prefix: str = "") -> None:
        for problem in problems:
            errors.setdefault(field_name, []).append(f"{prefix}{problem}")

    known = frozenset(context_names or ()) | _BUILTIN_NAMES
    for field_name in _TEXT_FIELDS:
        text = getattr(source, field_name)
        if not text:
            continue
        analysis = analyze(text)
        add(field_name, analysis.problems)
        for name, lineno in analysis.layouts.items():
            if field_name != "html_body":
                add(field_name, [Problem(lineno, "layouts can only be used in the HTML body")])
            elif name not in source.layouts:
                add(field_name, [Problem(lineno, f"layout {name!r} not found")])
        if field_name != "html_body" and context_names is not None and not analysis.problems:
            add(field_name, _unknown_variables([("", analysis)], known))
    for path, text in _whatsapp_strings(source.whatsapp_parameters):
        analysis = analyze(text)
        add("whatsapp_parameters", analysis.problems, prefix=f"{path}: ")
        if analysis.layouts:
            add("whatsapp_parameters", [Problem(1, "layouts cannot be used here")], prefix=f"{path}: ")
        elif context_names is not None and not analysis.problems:
            add("whatsapp_parameters", _unknown_variables([("", analysis)], known), prefix=f"{path}: ")
    if source.layout and source.layout not in source.layouts:
        errors.setdefault("layout", []).append(f"layout {source.layout!r} not found")
    if context_names is not None and source.html_body and "html_body" not in errors:
        # The body and its layouts share one context: what one sets, the others may read.
        html_texts = [("", analyze(source.html_body))]
        html_texts += [(f"{LAYOUT_PREFIX}{name}, ", analyze(text)) for name, text in source.layouts.items()]
        shared = known.union(*(analysis.sets for _, analysis in html_texts))
        add("html_body", _unknown_variables(html_texts, shared))
    return errors, True


def check_source(
    source: TemplateSource, *, context_names: Collection[str] | None = None, organization_id: object | None = None
) -> dict[str, list[str]]:
    """Every problem of a template source, per field; empty when it compiles and renders safely.

    See `static_problems` for `context_names`. Compiles the source when nothing
    makes that pointless or too costly; with `organization_id`, through the cache
    `prepare` uses, so a preview right after a save does not compile it again.
    """
    errors, compilable = _static_problems(source, context_names)
    if not compilable:
        return errors
    try:
        if organization_id is None:
            CompiledTemplate(source, tracked=False)
        else:
            prepare(source, organization_id=organization_id)
    except CompileError as exc:
        for field_name, messages in exc.errors.items():
            errors.setdefault(field_name, messages)  # a field's static problems say it better
    return errors


def _compile_limits(source: TemplateSource) -> dict[str, list[str]]:
    """Why a source must not be compiled at all (too large, too deep, too complex); empty when it may."""
    errors = _size_problem(source)
    if errors:
        return errors
    texts = [(name, "", getattr(source, name)) for name in _TEXT_FIELDS]
    texts += [("html_body", f"{LAYOUT_PREFIX}{name}, ", text) for name, text in source.layouts.items()]
    parameters = _whatsapp_strings(source.whatsapp_parameters)
    texts += [("whatsapp_parameters", f"{path}: ", text) for path, text in parameters]
    for field_name, prefix, text in texts:
        analysis = analyze(text) if text else None
        if analysis is not None and analysis.refused:
            errors.setdefault(field_name, []).extend(f"{prefix}{problem}" for problem in analysis.problems)
    return errors or _elements_problem(source)


# --- Compiling ------------------------------------------------------------------------------------


# Python's compiler refuses generated code nested too deeply with a SyntaxError
# ("too many statically nested blocks", "too many nested parentheses").
_TOO_DEEP_TO_COMPILE = (RecursionError, SyntaxError)


class CompiledTemplate:
    """A template source compiled for one tracking mode; render it once per message.

    The HTML is prepared for tracking ahead of time (its source rewritten, see
    `tracking_html`) when it can be; otherwise, or with ``prepare_html=False``, the
    rendered HTML of every message is processed instead: the same result, slower.
    Raises CompileError.
    """

    def __init__(self, source: TemplateSource, *, tracked: bool, prepare_html: bool = True) -> None:
        self.source = source
        self.tracked = tracked
        self.channel = source.channel
        self._parts: dict[str, Template] = {}
        self._whatsapp: list[tuple[str, Template]] = []
        self.html_prepared = False
        """True when the HTML was prepared at compile time; False: processed after rendering."""
        self.text_generated = False
        self.text_from_rendered_html = False
        errors = _compile_limits(source)
        if errors:
            raise CompileError(errors)

        text_env = _sandbox(autoescape=False, layouts={})
        for field_name in ("subject", "preheader", "text_body", "sms_body"):
            text = getattr(source, field_name)
            if text:
                self._compile(text_env, field_name, text, errors)
        for path, text in _whatsapp_strings(source.whatsapp_parameters):
            template = self._compile(text_env, "whatsapp_parameters", text, errors, prefix=f"{path}: ")
            if template is not None:
                self._whatsapp.append((path, template))
        if source.channel == "email" and source.html_body:
            self._compile_html(errors, prepare=prepare_html)
            if not source.text_body and not errors:
                self._compile_text(prepare=prepare_html)
        if errors:
            raise CompileError(errors)

    @staticmethod
    def _wrap(body: str, layout: str) -> str:
        if not layout:
            return body
        # On the first line, so line numbers in errors stay those of the body.
        head = '{% extends "' + LAYOUT_PREFIX + layout + '" %}{% block ' + CONTENT_BLOCK + " %}"
        return head + body + "{% endblock %}"

    def _compile(
        self, env: TemplateSandbox, field_name: str, text: str, errors: dict[str, list[str]], prefix: str = ""
    ) -> Template | None:
        try:
            template = env.from_string(text)
        except TemplateSyntaxError as exc:
            errors.setdefault(field_name, []).append(f"{prefix}{_where(exc.name)}{syntax_problem(exc)}")
            return None
        except _TOO_DEEP_TO_COMPILE:
            errors.setdefault(field_name, []).append(f"{prefix}{TOO_DEEP}")
            return None
        if not prefix:
            self._parts[field_name] = template
        return template

    def _compile_html(self, errors: dict[str, list[str]], *, prepare: bool) -> None:
        source = self.source
        options = {"track_links": self.tracked, "open_pixel": self.tracked, "preheader": bool(source.preheader)}
        if prepare:
            try:
                layouts = {
                    name: tracking_html.prepare_html_source(text, **options) for name, text in source.layouts.items()
                }
                body = tracking_html.prepare_html_source(source.html_body, **options)
                env = _sandbox(autoescape=True, layouts=layouts)
                self._parts["html"] = self._load_html(env, body)
                self.html_prepared = True
                return
            except (tracking_html.HtmlPrepareError, TemplateSyntaxError, TemplateNotFound, *_TOO_DEEP_TO_COMPILE):
                pass
        # Prepared sources that do not compile are our limitation, not the author's mistake:
        # compile the sources as written and process the rendered HTML instead.
        env = _sandbox(autoescape=True, layouts=source.layouts)
        try:
            self._parts["html"] = self._load_html(env, source.html_body)
        except TemplateSyntaxError as exc:
            errors.setdefault("html_body", []).append(f"{_where(exc.name)}{syntax_problem(exc)}")
        except TemplateNotFound as exc:
            errors.setdefault("html_body", []).append(f"layout {exc.name.removeprefix(LAYOUT_PREFIX)!r} not found")
        except _TOO_DEEP_TO_COMPILE:
            errors.setdefault("html_body", []).append(TOO_DEEP)

    def _load_html(self, env: TemplateSandbox, body: str) -> Template:
        template = env.from_string(self._wrap(body, self.source.layout))
        for name in self.source.layouts:
            env.get_template(LAYOUT_PREFIX + name)  # compile now: errors surface here, not mid-campaign
        return template

    def _compile_text(self, *, prepare: bool) -> None:
        source = self.source
        self.text_generated = True
        self.text_from_rendered_html = True
        if not prepare:
            return
        try:
            layouts = {
                name: tracking_html.text_template_source(text, track_links=self.tracked)
                for name, text in source.layouts.items()
            }
            body = tracking_html.text_template_source(source.html_body, track_links=self.tracked)
            env = _sandbox(autoescape=False, layouts=layouts)
            self._parts["text"] = env.from_string(self._wrap(body, source.layout))
            for name in source.layouts:
                env.get_template(LAYOUT_PREFIX + name)
        except (tracking_html.HtmlPrepareError, TemplateSyntaxError, TemplateNotFound, *_TOO_DEEP_TO_COMPILE):
            return
        self.text_from_rendered_html = False

    # Rendering ---------------------------------------------------------------------------------

    def render(
        self,
        context: Mapping[str, Any],
        *,
        tracking: LinkTracking | None = None,
        limits: RenderLimits = DEFAULT_LIMITS,
    ) -> RenderedMessage:
        """Render one message. Raises RenderError (a DomainError) when this message cannot be rendered."""
        if tracking is not None and not self.tracked:
            raise ValueError("this template was compiled without tracking; prepare(..., tracked=True)")
        # The sandbox's globals merged in once for all parts (Jinja would copy them into each).
        context = {**_PLAIN.globals, **context}
        state = _MessageState(tracking, str(context.get("unsubscribe_url") or ""))
        token = _state.set(state)
        try:
            with budget(limits):
                return self._render_all(context, state, limits)
        finally:
            _state.reset(token)

    def _render_all(self, context: dict, state: _MessageState, limits: RenderLimits) -> RenderedMessage:
        if self.channel == "sms":
            body = self._render_part("sms_body", context, limits)
            return RenderedMessage(channel="sms", text=body, sms=sms_info(body))
        if self.channel == "whatsapp":
            return RenderedMessage(channel="whatsapp", whatsapp_parameters=self._render_whatsapp(context, limits))
        subject = self._render_part("subject", context, limits)
        state.preheader = " ".join(self._render_part("preheader", context, limits).split())
        rendered_html = self._render_part("html", context, limits) if "html" in self._parts else ""
        # Generated from the HTML as rendered, before its links are tracked (track() gives the same URLs).
        text = self._render_text(context, state, limits, rendered_html)
        html_text = self._finish_html(rendered_html, state) if rendered_html else ""
        return RenderedMessage(
            channel=self.channel,
            subject=" ".join(subject.split()),
            preheader=state.preheader,
            html=html_text,
            text=text,
            links=tuple(state.links),
        )

    def _finish_html(self, rendered: str, state: _MessageState) -> str:
        if not self.html_prepared:
            return self._guard(
                "html_body",
                lambda: tracking_html.finish_rendered_html(
                    rendered,
                    track=state.track if self.tracked else None,
                    pixel=state.pixel() if self.tracked else "",
                    preheader=tracking_html.preheader_html(state.preheader) if state.preheader else "",
                ),
            )
        if state.preheader and not state.preheader_done:
            rendered = tracking_html.preheader_html(state.preheader) + rendered
        if self.tracked and not state.pixel_done:
            rendered += self._guard("html_body", state.pixel)
        return rendered

    def _render_text(self, context: dict, state: _MessageState, limits: RenderLimits, rendered_html: str) -> str:
        if "text_body" in self._parts:
            return self._render_part("text_body", context, limits)
        if "text" in self._parts:
            return tracking_html.normalize_text(self._render_part("text", context, limits, error_field="html_body"))
        if self.text_from_rendered_html:
            # A prepared HTML template has its links tracked already; otherwise track them here.
            track = state.track if self.tracked and not self.html_prepared else None
            return self._guard("html_body", lambda: tracking_html.html_to_text(rendered_html, track=track))
        return ""

    def _render_whatsapp(self, context: dict, limits: RenderLimits) -> WhatsAppParameters | None:
        parameters = self.source.whatsapp_parameters
        if parameters is None:
            return None
        rendered = {
            path: self._run("whatsapp_parameters", template, context, limits) for path, template in self._whatsapp
        }
        rendered = {path: " ".join(value.split()) for path, value in rendered.items()}
        if isinstance(parameters, list):
            return [rendered[f"[{index}]"] for index in range(len(parameters))]
        result: dict[str, str | list[str]] = {}
        for key, value in parameters.items():
            if isinstance(value, list):
                result[key] = [rendered[f"{key}[{index}]"] for index in range(len(value))]
            else:
                result[key] = rendered[key]
        return result

    def _render_part(self, name: str, context: dict, limits: RenderLimits, error_field: str | None = None) -> str:
        template = self._parts.get(name)
        if template is None:
            return ""
        field_name = error_field or ("html_body" if name == "html" else name)
        return self._run(field_name, template, context, limits, show_lines=name != "text")

    @staticmethod
    def _run(
        field_name: str, template: Template, context: dict, limits: RenderLimits, *, show_lines: bool = True
    ) -> str:
        chunks: list[str] = []
        append, room = chunks.append, limits.max_output
        try:
            # Counted as the chunks arrive: a template that outputs one big value many times
            # is stopped at the cap, not after every copy (escaping makes one) was collected.
            shared = template.globals == _PLAIN.globals  # then `context` holds them already (see render)
            for chunk in template.root_render_func(template.new_context(context, shared=shared)):
                room -= len(chunk)
                if room < 0:
                    raise LimitExceeded(f"the output is larger than {limits.max_output:,} characters")
                append(chunk)
        except _CallbackFailed as exc:
            raise exc.__cause__ from None
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            raise RenderError(field_name, _describe(exc, show_lines=show_lines)) from None
        return "".join(chunks)

    @staticmethod
    def _guard(field_name: str, work):
        try:
            return work()
        except _CallbackFailed as exc:
            raise exc.__cause__ from None
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            raise RenderError(field_name, _describe(exc, show_lines=False)) from None


def _where(template_name: str | None) -> str:
    if template_name and template_name.startswith(LAYOUT_PREFIX):
        return f"{template_name}, "
    return ""


def _describe(exc: BaseException, *, show_lines: bool) -> str:
    if isinstance(exc, RecursionError):
        message = "templates may not nest this deeply"
    elif isinstance(exc, TemplateNotFound):
        message = f"layout {str(exc.name).removeprefix(LAYOUT_PREFIX)!r} not found"
    elif isinstance(exc, UndefinedError | LimitExceeded) or str(exc):
        message = str(exc)
    else:
        message = type(exc).__name__
    if not show_lines:
        return message
    location = None
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            location = (template.name, template.get_corresponding_lineno(tb.tb_lineno))
        tb = tb.tb_next
    if location is None:
        return message
    name, lineno = location
    return f"{_where(name)}line {lineno}: {message}"


# --- The cache -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int
    size: int
    chars: int = 0
    """Characters of source behind the cached entries."""


K = TypeVar("K")
V = TypeVar("V")


class _BoundedCache(Generic[K, V]):
    """Least recently used entries, at most `entries` of them weighing at most `weight` together."""

    def __init__(self, *, entries: int, weight: int) -> None:
        self.max_entries = entries
        self.max_weight = weight
        self.entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.weight = 0
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V, *, weight: int) -> None:
        with self.lock:
            previous = self.entries.pop(key, None)
            if previous is not None:
                self.weight -= previous[1]
            if weight > self.max_weight:
                return
            self.entries[key] = (value, weight)
            self.weight += weight
            while len(self.entries) > self.max_entries or self.weight > self.max_weight:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.weight -= dropped

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.weight = 0


_cache: _BoundedCache[str, CompiledTemplate] = _BoundedCache(entries=CACHE_SIZE, weight=CACHE_SOURCE_CHARS)
_analyses: _BoundedCache[str, TextAnalysis] = _BoundedCache(entries=64, weight=4 * MAX_TOTAL_SOURCE)


def prepare(source: TemplateSource, *, organization_id: object, tracked: bool = False) -> CompiledTemplate:
    """The compiled template for `source` (cached); raises CompileError."""
    key = source.cache_key(organization_id, tracked=tracked)
    compiled = _cache.get(key)
    if compiled is None:
        compiled = CompiledTemplate(source, tracked=tracked)
        _cache.put(key, compiled, weight=source.chars())
    return compiled


def render_message(
    source: TemplateSource,
    context: Mapping[str, Any],
    *,
    organization_id: object,
    tracking: LinkTracking | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> RenderedMessage:
    """Compile (cached) and render one message; raises CompileError or RenderError."""
    compiled = prepare(source, organization_id=organization_id, tracked=tracking is not None)
    return compiled.render(context, tracking=tracking, limits=limits)


def cache_info() -> CacheInfo:
    with _cache.lock:
        return CacheInfo(hits=_cache.hits, misses=_cache.misses, size=len(_cache.entries), chars=_cache.weight)


def cache_clear() -> None:
    _cache.clear()
    _analyses.clear()
