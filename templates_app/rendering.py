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
  compiles once per campaign rather than once per message.
* With ``tracked=True`` the HTML is prepared for click tracking and the open
  pixel once, at compile time (``tracking_html``), and the text alternative,
  when ``text_body`` is empty, is generated from the HTML as a template of its own.
"""

from __future__ import annotations

import contextvars
import hashlib
import html
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from jinja2 import DictLoader, Template, nodes, pass_context, pass_eval_context
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
    references_name,
    syntax_problem,
)
from templates_app.sms import SmsInfo, sms_info
from templates_app.tracking_html import LinkTracking

CONTENT_BLOCK = "content"
CACHE_SIZE = 256

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
        if self.tracking is None or not url[:8].lower().startswith(("http://", "https://")):
            return None
        if url == self.unsubscribe_url:
            return None
        tracked = self.tracked.get(url)
        if tracked is None:
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
    return Markup.escape(tracked) if eval_ctx.autoescape else tracked


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


def parse_problems(text: str) -> tuple[list[Problem], dict[str, int]]:
    """Syntax and static problems of one template text, and the layouts it names (with a line)."""
    if len(text) > MAX_SOURCE_SIZE:
        return [Problem(1, f"the template is larger than {MAX_SOURCE_SIZE // 1024} KB")], {}
    try:
        ast = _PLAIN.parse_plain(text)
    except TemplateSyntaxError as exc:
        return [syntax_problem(exc)], {}
    problems, names = check_template(ast)
    lines: dict[str, int] = {}
    for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        targets = node.template.items if isinstance(node.template, nodes.List | nodes.Tuple) else [node.template]
        for target in targets:
            if isinstance(target, nodes.Const) and isinstance(target.value, str):
                name = target.value.removeprefix(LAYOUT_PREFIX)
                if name in names:
                    lines.setdefault(name, node.lineno)
    return problems, lines


def extends_a_layout(text: str) -> bool:
    try:
        ast = _PLAIN.parse_plain(text)
    except TemplateSyntaxError:
        return False
    return ast.find(nodes.Extends) is not None


def uses_name(text: str, name: str) -> bool:
    """Whether a template text reads the variable `name` (false when it does not parse)."""
    try:
        return references_name(_PLAIN.parse_plain(text), name)
    except TemplateSyntaxError:
        return False


def defines_block(text: str, name: str) -> bool:
    try:
        ast = _PLAIN.parse_plain(text)
    except TemplateSyntaxError:
        return False
    return any(block.name == name for block in ast.find_all(nodes.Block))


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


def check_source(source: TemplateSource) -> dict[str, list[str]]:
    """Every problem of a template source, per field; empty when it compiles and renders safely."""
    errors: dict[str, list[str]] = {}

    def add(field_name: str, problems: list[Problem], prefix: str = "") -> None:
        for problem in problems:
            errors.setdefault(field_name, []).append(f"{prefix}{problem}")

    for field_name in ("subject", "preheader", "html_body", "text_body", "sms_body"):
        text = getattr(source, field_name)
        if not text:
            continue
        problems, layout_lines = parse_problems(text)
        add(field_name, problems)
        for name, lineno in layout_lines.items():
            if field_name != "html_body":
                add(field_name, [Problem(lineno, "layouts can only be used in the HTML body")])
            elif name not in source.layouts:
                add(field_name, [Problem(lineno, f"layout {name!r} not found")])
    for path, text in _whatsapp_strings(source.whatsapp_parameters):
        problems, layout_lines = parse_problems(text)
        add("whatsapp_parameters", problems, prefix=f"{path}: ")
        if layout_lines:
            add("whatsapp_parameters", [Problem(1, "layouts cannot be used here")], prefix=f"{path}: ")
    if source.layout and source.layout not in source.layouts:
        errors.setdefault("layout", []).append(f"layout {source.layout!r} not found")
    try:
        CompiledTemplate(source, tracked=False)
    except CompileError as exc:
        for field_name, messages in exc.errors.items():
            errors.setdefault(field_name, messages)  # a field's static problems say it better
    return errors


# --- Compiling ------------------------------------------------------------------------------------


class CompiledTemplate:
    """A template source compiled for one tracking mode; render it once per message."""

    def __init__(self, source: TemplateSource, *, tracked: bool) -> None:
        self.source = source
        self.tracked = tracked
        self.channel = source.channel
        self._parts: dict[str, Template] = {}
        self._whatsapp: list[tuple[str, Template]] = []
        self.html_prepared = False
        """True when the HTML was prepared at compile time; False: processed after rendering."""
        self.text_generated = False
        self.text_from_rendered_html = False
        errors: dict[str, list[str]] = {}

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
            self._compile_html(errors)
            if not source.text_body and not errors:
                self._compile_text()
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
        if not prefix:
            self._parts[field_name] = template
        return template

    def _compile_html(self, errors: dict[str, list[str]]) -> None:
        source = self.source
        options = {"track_links": self.tracked, "open_pixel": self.tracked, "preheader": bool(source.preheader)}
        try:
            layouts = {
                name: tracking_html.prepare_html_source(text, **options) for name, text in source.layouts.items()
            }
            body = tracking_html.prepare_html_source(source.html_body, **options)
            env = _sandbox(autoescape=True, layouts=layouts)
            self._parts["html"] = self._load_html(env, body)
            self.html_prepared = True
            return
        except (tracking_html.HtmlPrepareError, TemplateSyntaxError, TemplateNotFound):
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

    def _load_html(self, env: TemplateSandbox, body: str) -> Template:
        template = env.from_string(self._wrap(body, self.source.layout))
        for name in self.source.layouts:
            env.get_template(LAYOUT_PREFIX + name)  # compile now: errors surface here, not mid-campaign
        return template

    def _compile_text(self) -> None:
        source = self.source
        self.text_generated = True
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
        except (tracking_html.HtmlPrepareError, TemplateSyntaxError, TemplateNotFound):
            self.text_from_rendered_html = True

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
        context = dict(context)
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
        try:
            # Chunks are references to strings that already exist; loops count what they produce
            # as they go (sandbox), so the list stays small and the size is known before joining.
            chunks = list(template.root_render_func(template.new_context(context)))
            if sum(map(len, chunks)) > limits.max_output:
                raise LimitExceeded(f"the output is larger than {limits.max_output:,} characters")
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


class _CompiledCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[str, CompiledTemplate] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CompiledTemplate | None:
        with self.lock:
            compiled = self.entries.get(key)
            if compiled is None:
                self.misses += 1
            else:
                self.hits += 1
                self.entries.move_to_end(key)
            return compiled

    def put(self, key: str, compiled: CompiledTemplate) -> None:
        with self.lock:
            self.entries[key] = compiled
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


_cache = _CompiledCache(CACHE_SIZE)


def prepare(source: TemplateSource, *, organization_id: object, tracked: bool = False) -> CompiledTemplate:
    """The compiled template for `source` (cached); raises CompileError."""
    key = source.cache_key(organization_id, tracked=tracked)
    compiled = _cache.get(key)
    if compiled is None:
        compiled = CompiledTemplate(source, tracked=tracked)
        _cache.put(key, compiled)
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
        return CacheInfo(hits=_cache.hits, misses=_cache.misses, size=len(_cache.entries))


def cache_clear() -> None:
    with _cache.lock:
        _cache.entries.clear()
