"""The Jinja2 sandbox every user-authored template runs in.

Jinja's ``ImmutableSandboxedEnvironment`` already refuses private attributes
(``''.__class__``, ``__mro__``, ``|attr('__class__')``), ``str.format`` field
tricks and mutation of lists and dicts. Templates here are written by the
marketers of every organization and rendered inside web and worker processes,
so this module closes the remaining ways a template can exhaust them:

* a deadline per message, checked on every loop iteration, every call and
  every output chunk (``RenderLimits.timeout``);
* a nesting depth for macro and recursive-loop calls (``max_call_depth``);
* a size cap on every value a template builds: ``*``, ``**``, ``+``, ``%``,
  ``~`` and every filter are checked, before allocating where the size can
  be known in advance (``'a' * 10**9``, ``center(10**9)``), after otherwise;
* a cap on what loops and macros produce, counted as they produce it (so output
  buffered by macros, ``{% filter %}`` and ``{% set %}`` blocks is counted too),
  and on the rendered output itself;
* an allow-list of what a template may call: macros, ``loop``, ``super()``,
  Jinja's ``range``/``dict``/``cycler``/``joiner``/``namespace`` globals and
  read-only methods of strings, dicts and lists (``lipsum`` is removed).

The guards are inserted by rewriting the parsed template (``_Hardener``), so
they cost a function call where they apply and nothing elsewhere.
"""

from __future__ import annotations

import contextvars
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    BaseLoader,
    StrictUndefined,
    Undefined,
    nodes,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_replace,
    do_round,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
)
from jinja2.parser import Parser
from jinja2.runtime import BlockReference, LoopContext, Macro, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import Cycler, Joiner, Namespace
from jinja2.visitor import NodeTransformer

MAX_SOURCE_SIZE = 512 * 1024
"""Characters in one template field (or layout)."""

# Internal filters inserted by the hardener and by the HTML preparation. User
# templates may not name filters starting with "_" (see `check_template`).
ITER_GUARD = "_cc_iter"
CONCAT_GUARD = "_cc_concat"
SIZE_GUARD = "_cc_size"
EMIT_GUARD = "_cc_emit"
STATIC_COUNT = "_cc_count"
INTERNAL_FILTER_PREFIX = "_cc_"

LAYOUT_PREFIX = "layout:"


@dataclass(frozen=True)
class RenderLimits:
    timeout: float = 2.0
    """Seconds for one message, all of its parts together."""
    max_output: int = 1_000_000
    """Characters in one rendered part (subject, HTML, text...)."""
    max_value: int = 1_000_000
    """Characters (strings) or characters plus items (lists, dicts) in any value a template builds."""
    max_produced: int = 10_000_000
    """Characters a message may produce, output buffered by macros and blocks included."""
    max_call_depth: int = 40
    """Nesting of macro and recursive loop calls."""
    max_int_bits: int = 4096
    """Size of integers built with * and **."""
    max_format_width: int = 1000
    """Width or precision in a format specification."""


DEFAULT_LIMITS = RenderLimits()


class LimitExceeded(SecurityError):
    """A template went over one of the RenderLimits."""


class MessageUndefined(StrictUndefined):
    """Strict: an undefined value fails when output, iterated, compared or called.

    In a condition (``{% if contact.attributes.vip %}``) it is false, so templates
    can test optional data without ``is defined`` everywhere.
    """

    __slots__ = ()

    def __bool__(self) -> bool:
        return False


class Budget:
    """What one message has used of its RenderLimits."""

    __slots__ = ("deadline", "depth", "limits", "produced")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout
        self.depth = 0
        self.produced = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {self.limits.timeout:g} s")

    def produce(self, size: int) -> None:
        self.produced += size
        if self.produced > self.limits.max_produced:
            raise LimitExceeded(f"the template produces more than {self.limits.max_produced:,} characters")


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("templates_app_budget", default=None)


@contextmanager
def budget(limits: RenderLimits = DEFAULT_LIMITS) -> Iterator[Budget]:
    """Render inside this block to have the limits enforced."""
    current = Budget(limits)
    token = _budget.set(current)
    try:
        yield current
    finally:
        _budget.reset(token)


def current_budget() -> Budget | None:
    return _budget.get()


def _limits() -> RenderLimits:
    current = _budget.get()
    return current.limits if current is not None else DEFAULT_LIMITS


# --- Sizes ------------------------------------------------------------------------


def value_size(value: object, limit: int) -> int:
    """Characters and items in `value`, counted until the count passes `limit`."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 1
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset | dict):
            total += len(item) + 1
            if total > limit:
                return total
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            else:
                stack.extend(item)
        else:
            total += 1
        if total > limit:
            return total
    return total


def check_size(value: object, limits: RenderLimits | None = None) -> object:
    limits = limits or _limits()
    if isinstance(value, str):
        if len(value) > limits.max_value:
            raise LimitExceeded(f"a value grew larger than {limits.max_value:,} characters")
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > limits.max_int_bits:
            raise LimitExceeded(f"a number grew larger than {limits.max_int_bits} bits")
    elif isinstance(value, list | tuple | dict | set | frozenset) and (
        value_size(value, limits.max_value) > limits.max_value
    ):
        raise LimitExceeded(f"a value grew larger than {limits.max_value:,} characters and items")
    return value


def _refuse_size(size: int, limits: RenderLimits) -> None:
    if size > limits.max_value:
        raise LimitExceeded(f"the result would be larger than {limits.max_value:,} characters or items")


def _is_sequence(value: object) -> bool:
    return isinstance(value, str | list | tuple)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_printf(fmt: str, limits: RenderLimits) -> None:
    """Refuse `*` and huge widths or precisions in a printf-style format string."""
    i, n = 0, len(fmt)
    while i < n:
        if fmt[i] != "%":
            i += 1
            continue
        i += 1
        if i < n and fmt[i] == "(":
            close = fmt.find(")", i)
            i = n if close < 0 else close + 1
        number = ""
        while i < n and fmt[i] in "#0- +.*0123456789":
            char = fmt[i]
            if char == "*":
                raise LimitExceeded("'*' widths are not allowed in format strings")
            if char.isdigit():
                number += char
            else:
                _check_width(number, limits)
                number = ""
            i += 1
        _check_width(number, limits)
        i += 1


def _check_width(number: str, limits: RenderLimits) -> None:
    if number and int(number) > limits.max_format_width:
        raise LimitExceeded(f"format widths above {limits.max_format_width} are not allowed")


def _check_format_string(fmt: str, limits: RenderLimits) -> None:
    """Refuse nested or huge format specifications in a str.format string."""
    for _literal, _field, spec, _conversion in string.Formatter().parse(fmt):
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("nested format specifications are not allowed")
        number = ""
        for char in spec + " ":
            if char.isdigit():
                number += char
            else:
                _check_width(number, limits)
                number = ""


# --- Guarded operators, calls and filters ---------------------------------------------


def guarded_binop(operator: str, left: object, right: object) -> object:
    limits = _limits()
    if operator == "*":
        if _is_sequence(left) and _int(right):
            _refuse_size(value_size(left, limits.max_value) * max(right, 0), limits)
        elif _is_sequence(right) and _int(left):
            _refuse_size(value_size(right, limits.max_value) * max(left, 0), limits)
        elif _int(left) and _int(right) and left.bit_length() + right.bit_length() > limits.max_int_bits:
            raise LimitExceeded(f"a number would be larger than {limits.max_int_bits} bits")
        result = left * right
    elif operator == "**":
        # 2**n has n + 1 bits; 0, 1 and -1 stay small whatever the exponent.
        if _int(left) and _int(right) and (abs(left).bit_length() - 1) * right > limits.max_int_bits:
            raise LimitExceeded(f"a number would be larger than {limits.max_int_bits} bits")
        result = left**right
    elif operator == "+":
        if _is_sequence(left) and _is_sequence(right):
            _refuse_size(value_size(left, limits.max_value) + value_size(right, limits.max_value), limits)
        result = left + right
    elif operator == "%":
        if isinstance(left, str):
            _check_printf(left, limits)
        result = left % right
    else:  # pragma: no cover - only the operators in `intercepted_binops` arrive here
        raise SecurityError(f"operator {operator!r} is not supported")
    return check_size(result, limits)


_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust",
        "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
        "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
        "striptags", "swapcase", "title", "unescape", "upper", "zfill",
    }
)  # fmt: skip
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_LOOP_METHODS = frozenset({"cycle", "changed"})
_CYCLER_METHODS = frozenset({"next", "reset"})
_CALLABLE_GLOBALS = (safe_range, dict, Cycler, Joiner, Namespace)
_CALLABLE_INSTANCES = (Macro, BlockReference, LoopContext, Joiner)


def _allowed_callable(obj: object) -> bool:
    if isinstance(obj, _CALLABLE_INSTANCES):
        return True
    if any(obj is allowed for allowed in _CALLABLE_GLOBALS):
        return True
    if getattr(obj, "_cc_sandboxed_call", False) is True:
        return True
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", None)
    if owner is None or name is None:
        return False
    if isinstance(owner, str):
        return name in _STR_METHODS
    if type(owner) is dict:
        return name in _DICT_METHODS
    if type(owner) in (list, tuple):
        return name in _SEQUENCE_METHODS
    if isinstance(owner, LoopContext):
        return name in _LOOP_METHODS
    if isinstance(owner, Cycler):
        return name in _CYCLER_METHODS
    return False


def _precheck_str_method(owner: str, name: str, args: tuple, kwargs: dict, limits: RenderLimits) -> tuple:
    """Refuse string method calls whose result would be too large; may return materialized args."""
    if name in {"center", "ljust", "rjust", "zfill"}:
        width = args[0] if args else kwargs.get("width", 0)
        if _int(width):
            _refuse_size(width, limits)
    elif name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        occurrences = owner.count(old) if old else len(owner) + 1
        if _int(count) and count >= 0:
            occurrences = min(occurrences, count)
        _refuse_size(len(owner) + occurrences * max(len(new) - len(old), 0), limits)
    elif name == "join" and args:
        items = list(args[0])
        size = len(owner) * max(len(items) - 1, 0)
        for item in items:
            size += value_size(item, limits.max_value)
            _refuse_size(size, limits)
        _refuse_size(size, limits)
        return (items, *args[1:])
    return args


def _guard_iter(value):
    current = _budget.get()
    if current is None:
        return value
    return _ticking(value, current)


def _ticking(value, current: Budget):
    for item in value:
        current.tick()
        yield item


@pass_eval_context
def _guard_concat(eval_ctx, parts):
    joined = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
    return check_size(joined)


def _guard_size(value):
    return check_size(value)


def _guard_emit(value):
    current = _budget.get()
    if current is not None:
        current.produce(len(value) if isinstance(value, str) else value_size(value, current.limits.max_produced))
    return value


@pass_context
def _count_static(context, size):
    # pass_context keeps Jinja from folding this into a constant at compile time.
    current = _budget.get()
    if current is not None:
        current.tick()
        current.produce(size)
    return ""


def _guarded_center(value, width=80):
    _refuse_size(width if _int(width) else 0, _limits())
    return do_center(value, width)


def _guarded_indent(s, width=4, first=False, blank=False):
    limits = _limits()
    text = str(s)
    unit = len(width) if isinstance(width, str) else (width if _int(width) else 0)
    _refuse_size(len(text) + (text.count("\n") + 1) * max(unit, 0), limits)
    return do_indent(s, width, first, blank)


def _guarded_format(value, *args, **kwargs):
    _check_printf(str(value), _limits())
    return do_format(value, *args, **kwargs)


@pass_eval_context
def _guarded_replace(eval_ctx, s, old, new, count=None):
    limits = _limits()
    text, old_text, new_text = str(s), str(old), str(new)
    occurrences = text.count(old_text) if old_text else len(text) + 1
    if _int(count) and count >= 0:
        occurrences = min(occurrences, count)
    # Escaping may grow the result further; the size guard after every filter catches that.
    _refuse_size(len(text) + occurrences * max(len(new_text) - len(old_text), 0), limits)
    return do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def _guarded_join(eval_ctx, value, d="", attribute=None):
    limits = _limits()
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    items = list(value)
    size = len(str(d)) * max(len(items) - 1, 0)
    for item in items:
        size += value_size(item, limits.max_value) if not isinstance(item, str) else len(item)
        _refuse_size(size, limits)
    _refuse_size(size, limits)
    return sync_do_join(eval_ctx, items, d)


MAX_WORDWRAP_INPUT = 50_000


@pass_environment
def _guarded_wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    # textwrap is pure Python and slow on long texts; one call could outlast the deadline.
    if len(str(s)) > MAX_WORDWRAP_INPUT:
        raise LimitExceeded(f"wordwrap works on at most {MAX_WORDWRAP_INPUT:,} characters")
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _guarded_batch(value, linecount, fill_with=None):
    if _int(linecount):
        _refuse_size(linecount, _limits())
    return do_batch(value, linecount, fill_with)


def _guarded_slice(value, slices, fill_with=None):
    if _int(slices):
        _refuse_size(slices, _limits())
    return sync_do_slice(value, slices, fill_with)


def _guarded_round(value, precision=0, method="common"):
    if _int(precision) and abs(precision) > 100:
        raise LimitExceeded("round() precision must be between -100 and 100")
    return do_round(value, precision, method)


@pass_environment
def _guarded_sum(environment, iterable, attribute=None, start=0):
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in iterable:
        total = guarded_binop("+", total, item)
    return total


@pass_context
def localdate(context, value, format="%d %b %Y"):
    """Format a date or date-time (or an ISO 8601 string) in the contact's time zone.

    ``{{ contact.attributes.renewal|localdate("%d %b %Y") }}``. Naive date-times are
    taken as UTC; the zone is the contact's, else the organization's, else UTC.
    """
    if isinstance(value, Undefined):
        str(value)  # raises the undefined error with its name
    if len(format) > 100:
        raise LimitExceeded("localdate formats are limited to 100 characters")
    moment = _as_date(value)
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo("UTC"))
        moment = moment.astimezone(_context_zone(context))
    return moment.strftime(format)


def _as_date(value) -> date | datetime:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        for parse in (date.fromisoformat, datetime.fromisoformat):
            try:
                return parse(value.strip())
            except ValueError:
                continue
    raise ValueError(f"localdate: {value!r} is not a date, a date-time or an ISO 8601 string")


def _context_zone(context) -> ZoneInfo:
    for key in ("contact", "organization"):
        holder = context.get(key)
        name = holder.get("timezone") if isinstance(holder, dict) else None
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


# --- The environment ------------------------------------------------------------


class _Hardener(NodeTransformer):
    """Inserts the guards into a parsed template."""

    def __init__(self) -> None:
        self.repeating = 0

    @staticmethod
    def _wrap(node: nodes.Expr, name: str) -> nodes.Filter:
        return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)

    def _visit_repeating(self, node: nodes.Node) -> nodes.Node:
        self.repeating += 1
        try:
            return self.generic_visit(node)
        finally:
            self.repeating -= 1

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self._visit_repeating(node)
        node.iter = self._wrap(node.iter, ITER_GUARD)
        return node

    def visit_Macro(self, node: nodes.Macro) -> nodes.Node:
        return self._visit_repeating(node)

    def visit_CallBlock(self, node: nodes.CallBlock) -> nodes.Node:
        return self._visit_repeating(node)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return self._wrap(nodes.List(node.nodes, lineno=node.lineno), CONCAT_GUARD)

    def visit_Filter(self, node: nodes.Filter) -> nodes.Node:
        node = self.generic_visit(node)
        if node.name.startswith(INTERNAL_FILTER_PREFIX):
            return node
        return self._wrap(node, SIZE_GUARD)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        if not self.repeating:
            # Output outside loops and macros is bounded by the source: the output cap is enough.
            return node
        children: list[nodes.Expr] = []
        static = 0
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                children.append(child)
                static += len(child.data)
            else:
                children.append(self._wrap(child, EMIT_GUARD))
        if static:
            children.append(self._wrap(nodes.Const(static, lineno=node.lineno), STATIC_COUNT))
        node.nodes = children
        return node


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """The environment for user templates: HTML with autoescape, text without."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool, loader: BaseLoader | None = None) -> None:
        super().__init__(
            autoescape=autoescape,
            loader=loader,
            undefined=MessageUndefined,
            auto_reload=False,
            cache_size=-1,
        )
        self.globals.pop("lipsum", None)
        self.filters.update(
            {
                "center": _guarded_center,
                "indent": _guarded_indent,
                "format": _guarded_format,
                "replace": _guarded_replace,
                "join": _guarded_join,
                "batch": _guarded_batch,
                "slice": _guarded_slice,
                "round": _guarded_round,
                "wordwrap": _guarded_wordwrap,
                "sum": _guarded_sum,
                "localdate": localdate,
                ITER_GUARD: _guard_iter,
                CONCAT_GUARD: _guard_concat,
                SIZE_GUARD: _guard_size,
                EMIT_GUARD: _guard_emit,
                STATIC_COUNT: _count_static,
            }
        )

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Hardener().visit(super()._parse(source, name, filename))

    def parse_plain(self, source: str) -> nodes.Template:
        """The template as written (no guards), for static checks; raises TemplateSyntaxError."""
        return Parser(self, source).parse()

    def call_binop(self, context, operator: str, left, right):
        return guarded_binop(operator, left, right)

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        format_string = str(value.__self__)

        def guarded(*args, **kwargs):
            limits = _limits()
            _check_format_string(format_string, limits)
            return check_size(wrapper(*args, **kwargs), limits)

        guarded._cc_sandboxed_call = True
        return guarded

    def call(__self, __context, __obj, *args, **kwargs):
        if not _allowed_callable(__obj):
            raise SecurityError(f"calling {getattr(__obj, '__name__', type(__obj).__name__)!r} is not allowed")
        current = _budget.get()
        limits = current.limits if current is not None else DEFAULT_LIMITS
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = _precheck_str_method(owner, __obj.__name__, args, kwargs, limits)
        if current is None:
            return check_size(__context.call(__obj, *args, **kwargs), limits)
        current.tick()
        if current.depth >= limits.max_call_depth:
            raise LimitExceeded(f"macro and loop calls may nest at most {limits.max_call_depth} deep")
        current.depth += 1
        try:
            result = __context.call(__obj, *args, **kwargs)
        finally:
            current.depth -= 1
        return check_size(result, limits)


# --- Static checks --------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.message}"


def check_template(ast: nodes.Template) -> tuple[list[Problem], set[str]]:
    """Problems a template has before it ever renders, and the layouts it names.

    Refuses private attribute access and internal filter names outright, so
    ``{{ ''.__class__ }}`` is a validation error on save rather than at send time,
    and requires ``{% extends %}``, ``{% include %}`` and ``{% import %}`` to name a
    layout literally (``"layout:<name>"``), so every layout a template uses is known.
    """
    problems: list[Problem] = []
    layouts: set[str] = set()
    for node in ast.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            problems.append(Problem(node.lineno, f"access to {node.attr!r} is not allowed"))
    for node in ast.find_all(nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            problems.append(Problem(node.lineno, f"access to {node.arg.value!r} is not allowed"))
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if node.name.startswith("_"):
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            problems.append(Problem(node.lineno, f"no {kind} named {node.name!r}"))
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            first = node.args[0]
            if isinstance(first, nodes.Const) and isinstance(first.value, str) and first.value.startswith("_"):
                problems.append(Problem(node.lineno, f"access to {first.value!r} is not allowed"))
    for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        targets = node.template.items if isinstance(node.template, nodes.List | nodes.Tuple) else [node.template]
        for target in targets:
            if isinstance(target, nodes.Const) and isinstance(target.value, str):
                if target.value.startswith(LAYOUT_PREFIX):
                    layouts.add(target.value.removeprefix(LAYOUT_PREFIX))
                    continue
                problems.append(
                    Problem(node.lineno, f'layout {target.value!r} not found; name layouts as "layout:<name>"')
                )
            else:
                problems.append(Problem(node.lineno, 'name the layout literally, as "layout:<name>"'))
    return problems, layouts


def syntax_problem(exc: TemplateSyntaxError) -> Problem:
    return Problem(exc.lineno or 1, exc.message or str(exc))


def references_name(ast: nodes.Template, name: str) -> bool:
    """Whether the template reads the variable `name` anywhere."""
    return any(node.name == name and node.ctx == "load" for node in ast.find_all(nodes.Name))


__all__ = [
    "DEFAULT_LIMITS",
    "LAYOUT_PREFIX",
    "MAX_SOURCE_SIZE",
    "Budget",
    "LimitExceeded",
    "MessageUndefined",
    "Problem",
    "RenderLimits",
    "TemplateSandbox",
    "budget",
    "check_template",
    "current_budget",
    "references_name",
    "syntax_problem",
]
