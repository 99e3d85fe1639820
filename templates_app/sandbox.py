"""The Jinja2 sandbox every user-authored template runs in.

Jinja's ``ImmutableSandboxedEnvironment`` already refuses private attributes
(``''.__class__``, ``__mro__``, ``|attr('__class__')``), ``str.format`` field
tricks and mutation of lists and dicts. Templates here are written by the
marketers of every organization and rendered inside web and worker processes,
so this module closes the remaining ways a template can exhaust them:

* a deadline per message (``RenderLimits.timeout``), checked on every loop
  iteration, call, filter, operator, concatenation and output;
* a nesting depth for macro and recursive-loop calls (``max_call_depth``);
* a size cap on every value a template builds: ``*``, ``**``, ``+``, ``%``,
  ``~``, ``str.format``, list, tuple and dict literals and every filter are
  checked, before allocating where the size can be known in advance
  (``'a' * 10**9``, ``center(10**9)``, ``('{0}' * 9999).format(big)``), after
  otherwise. Sizes look inside lists, dicts and namespaces and count a value
  as often as it is referenced (``[a, a]`` is twice ``a``), so repeated
  references cannot build a string larger than the cap either;
* a cap on what a message produces, counted as it is produced, every output
  node included (so output repeated by a layout's loop around a block, by
  ``{% include %}`` in a loop, or buffered by macros, ``{% filter %}`` and
  ``{% set %}`` blocks is counted too), and on each rendered part;
* an allow-list of what a template may call: macros, ``loop``, ``super()``,
  Jinja's ``range``/``dict``/``cycler``/``joiner``/``namespace`` globals,
  read-only methods of strings, dicts and lists, and the callables the sandbox
  itself hands out (``lipsum`` is removed).

The guards are inserted by rewriting the parsed template (``_Hardener``) and by
wrapping every filter when the environment is made, so they cost a function
call where they apply and nothing elsewhere. Filters are never evaluated at
compile time (Jinja folds constant expressions), so a template cannot make the
compiler build large values either.
"""

from __future__ import annotations

import contextvars
import string
import time
from collections.abc import Collection, Iterator
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
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_replace,
    do_round,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
)
from jinja2.runtime import BlockReference, LoopContext, Macro, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import Cycler, Joiner, Namespace, _PassArg
from jinja2.visitor import NodeTransformer

MAX_SOURCE_SIZE = 512 * 1024
"""Characters in one template field (or layout)."""

# Internal filters inserted by the hardener and by the HTML preparation. User
# templates may not name filters starting with "_" (see `check_template`).
ITER_GUARD = "_cc_iter"
CONCAT_GUARD = "_cc_concat"
SIZE_GUARD = "_cc_size"
EMIT_GUARD = "_cc_emit"
OUTPUT_GUARD = "_cc_output"
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
        # time.monotonic() costs tens of nanoseconds: cheap enough for every guard.
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {self.limits.timeout:g} s")

    def produce(self, size: int) -> None:
        """Count output (and check the deadline)."""
        self.produced += size
        if self.produced > self.limits.max_produced:
            raise LimitExceeded(f"the template produces more than {self.limits.max_produced:,} characters")
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {self.limits.timeout:g} s")


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


def _tick() -> RenderLimits:
    """Check the deadline (when rendering under a budget); returns the limits in force."""
    current = _budget.get()
    if current is None:
        return DEFAULT_LIMITS
    current.tick()
    return current.limits


# --- Sizes ------------------------------------------------------------------------


_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)
_CYCLE_SIZE = 5
"""What a container counts inside itself: its text shows as "[...]" there."""
_TICK_EVERY = 1 << 15


def _scalar_size(value: object) -> int:
    """Characters a value other than a container takes as text (numbers by their digits)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if isinstance(value, float):
        return 24
    return 1


def _contents(value: object) -> tuple[int, Collection]:
    """Length and children of a container (a dict's or namespace's keys and values)."""
    if isinstance(value, dict):
        return len(value), (*value.keys(), *value.values())
    if isinstance(value, Namespace):
        attributes = object.__getattribute__(value, "_Namespace__attrs")
        return len(attributes), (*attributes.keys(), *attributes.values())
    return len(value), value  # type: ignore[arg-type]


def value_size(value: object, limit: int) -> int:
    """Characters and items in `value`, a value counted each time it is referenced; at most limit + 1.

    Lists, tuples, sets, dicts and namespaces are looked into. Each distinct
    container is measured once (``[a, a]`` costs as little to measure as ``[a]``
    but counts ``a`` twice), a container inside itself counts as a few
    characters, and the work stops as soon as the count passes `limit`.
    """
    if not isinstance(value, _CONTAINERS):
        return _scalar_size(value)
    over = limit + 1
    sizes: dict[int, int] = {}
    pending: dict[int, tuple[int, list]] = {}  # containers whose children are being measured
    stack = [value]
    work, next_tick = 0, _TICK_EVERY
    while stack:
        item = stack[-1]
        key = id(item)
        if key in sizes:
            stack.pop()
            continue
        if key in pending:
            # Second visit: the children are measured (or are this container's ancestors).
            total, children = pending.pop(key)
            for child in children:
                total += sizes.get(id(child), _CYCLE_SIZE)
            sizes[key] = min(total, over)
            stack.pop()
            continue
        kind = type(item)
        length, contents = (len(item), item) if kind is list or kind is tuple else _contents(item)
        # Every distinct container adds at least its length + 1 to the size: `work` never exceeds it.
        work += length + 1
        if work > limit:
            return over
        if work > next_tick:
            next_tick += _TICK_EVERY
            _tick()
        total, unmeasured = length + 1, []
        for child in contents:
            kind = type(child)
            if kind is str:
                total += len(child)
            elif kind is int:
                total += child.bit_length() // 3 + 1
            elif not isinstance(child, _CONTAINERS):
                total += _scalar_size(child)
            else:
                child_key = id(child)
                known = sizes.get(child_key)
                if known is not None:
                    total += known
                else:
                    unmeasured.append(child)
                    if child_key not in pending:
                        stack.append(child)
        if total > limit:
            return over
        if unmeasured:
            pending[key] = (total, unmeasured)
        else:
            sizes[key] = total
            stack.pop()
    return sizes[id(value)]


def check_size(value: object, limits: RenderLimits | None = None) -> object:
    limits = limits or _limits()
    if isinstance(value, str):
        if len(value) > limits.max_value:
            raise LimitExceeded(f"a value grew larger than {limits.max_value:,} characters")
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > limits.max_int_bits:
            raise LimitExceeded(f"a number grew larger than {limits.max_int_bits} bits")
    elif isinstance(value, _CONTAINERS) and value_size(value, limits.max_value) > limits.max_value:
        raise LimitExceeded(f"a value grew larger than {limits.max_value:,} characters and items")
    return value


def _check_inputs(values: tuple, limits: RenderLimits) -> None:
    """Refuse lists, dicts and namespaces too large to be turned into text, before anything is built."""
    for value in values:
        if isinstance(value, _CONTAINERS) and value_size(value, limits.max_value) > limits.max_value:
            raise LimitExceeded(f"a value larger than {limits.max_value:,} characters and items cannot be used here")


def _refuse_size(size: int, limits: RenderLimits) -> None:
    if size > limits.max_value:
        raise LimitExceeded(f"the result would be larger than {limits.max_value:,} characters or items")


def _is_sequence(value: object) -> bool:
    return isinstance(value, str | list | tuple)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_width(number: str, limits: RenderLimits) -> int:
    width = int(number) if number else 0
    if width > limits.max_format_width:
        raise LimitExceeded(f"format widths above {limits.max_format_width} are not allowed")
    return width


class _Sizes:
    """value_size with a memory: a format string may name the same big value many times."""

    __slots__ = ("known", "limit")

    def __init__(self, limits: RenderLimits) -> None:
        self.limit = limits.max_value
        self.known: dict[int, int] = {}

    def __call__(self, value: object) -> int:
        key = id(value)
        size = self.known.get(key)
        if size is None:
            size = self.known[key] = value_size(value, self.limit)
        return size


def _check_printf(fmt: str, values: object, limits: RenderLimits) -> None:
    """Refuse `*`, huge widths and results over the size cap in printf-style formatting, before formatting."""
    mapping = values if isinstance(values, dict) else None
    items = values if isinstance(values, tuple) else (values,)
    size_of = _Sizes(limits)
    total, used, n = len(fmt), 0, len(fmt)
    i = fmt.find("%")
    while i != -1:
        i += 1
        key = None
        if i < n and fmt[i] == "(":
            close = fmt.find(")", i)
            if close < 0:
                return  # Python refuses the format itself
            key, i = fmt[i + 1 : close], close + 1
        width, number = 0, ""
        while i < n and fmt[i] in "#0- +.*0123456789":
            char = fmt[i]
            if char == "*":
                raise LimitExceeded("'*' widths are not allowed in format strings")
            if char.isdigit():
                number += char
            else:
                width = max(width, _check_width(number, limits))
                number = ""
            i += 1
        width = max(width, _check_width(number, limits))
        while i < n and fmt[i] in "hlL":
            i += 1
        if i >= n:
            return
        if fmt[i] != "%":
            if key is not None and mapping is not None:
                value = mapping.get(key, "")
            elif used < len(items):
                value, used = items[used], used + 1
            else:
                value = ""
            total += size_of(value) + width
            if total > limits.max_value:
                raise LimitExceeded(f"the formatted text would be larger than {limits.max_value:,} characters")
        i = fmt.find("%", i + 1)


def _check_format_string(fmt: str, args: tuple, kwargs: dict, limits: RenderLimits) -> None:
    """Refuse nested or huge format specifications and results over the size cap in a str.format string."""
    size_of = _Sizes(limits)
    total, auto = len(fmt), 0
    for _literal, field, spec, _conversion in string.Formatter().parse(fmt):
        width = 0
        if spec:
            if "{" in spec:
                raise LimitExceeded("nested format specifications are not allowed")
            number = ""
            for char in spec + " ":
                if char.isdigit():
                    number += char
                else:
                    width = max(width, _check_width(number, limits))
                    number = ""
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if not root:
            root, auto = str(auto), auto + 1
        value = kwargs.get(root, "") if not root.isdigit() else args[int(root)] if int(root) < len(args) else ""
        # An attribute or item of a value is part of it: the value's size bounds it.
        total += size_of(value) + width
        if total > limits.max_value:
            raise LimitExceeded(f"the formatted text would be larger than {limits.max_value:,} characters")


# --- Guarded operators, calls and filters ---------------------------------------------


def guarded_binop(operator: str, left: object, right: object) -> object:
    limits = _tick()
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
            _check_printf(left, right, limits)
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


class _SandboxCallable:
    """A callable the sandbox itself hands to templates (``'{}'.format`` guarded).

    Templates cannot make one: calls are allowed for instances of this class, not for
    whatever carries a marker attribute (a ``namespace()`` can carry any attribute).
    """

    __slots__ = ("__name__", "_func")

    def __init__(self, func, name: str) -> None:
        self._func = func
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._func(*args, **kwargs)


def _allowed_callable(obj: object) -> bool:
    if isinstance(obj, _CALLABLE_INSTANCES):
        return True
    if any(obj is allowed for allowed in _CALLABLE_GLOBALS):
        return True
    if type(obj) is _SandboxCallable:
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
    clock, deadline = time.monotonic, current.deadline
    for item in value:
        if clock() > deadline:
            current.tick()  # raises
        yield item


@pass_eval_context
def _guard_concat(eval_ctx, parts):
    limits = _tick()
    size = 0
    for part in parts:
        size += value_size(part, limits.max_value)
        _refuse_size(size, limits)
    joined = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
    return check_size(joined, limits)


def _guard_size(value):
    return check_size(value, _tick())


@pass_context
def _guard_emit(context, value, static=0):
    # pass_context keeps Jinja from running this at compile time on a constant.
    current = _budget.get()
    if current is None:
        return value
    if isinstance(value, str):
        current.produce(len(value) + static)
        return value
    # Checked before it is turned into text: a list of references to one big string is small in memory only.
    size = value_size(value, current.limits.max_value)
    if size > current.limits.max_value:
        raise LimitExceeded(f"a value larger than {current.limits.max_value:,} characters cannot be output")
    current.produce(size + static)
    return value


def _guard_output(value):
    # Top-level output of a message's own template: the renderer counts the text it streams,
    # but a list or namespace is measured before it is turned into text. A namespace is the
    # one value a template can change, so what holds one is only known to be small now.
    if isinstance(value, str) or not isinstance(value, _CONTAINERS):
        return value
    limits = _limits()
    if value_size(value, limits.max_value) > limits.max_value:
        raise LimitExceeded(f"a value larger than {limits.max_value:,} characters cannot be output")
    return value


@pass_context
def _count_static(context, size):
    # pass_context keeps Jinja from folding (and so dropping) this call when it compiles.
    current = _budget.get()
    if current is not None:
        current.produce(size)


# Filters that run Python code per word or tag: one call on a long text could outlast the deadline.
SLOW_FILTER_INPUT = {"wordwrap": 50_000, "urlize": 100_000, "title": 100_000, "striptags": 100_000}


def _checked_filter(name: str, func):
    """`func` with the guards every filter gets: the deadline, its inputs' and its result's size.

    The wrapper takes the context, which also keeps Jinja from running the filter at
    compile time on constant arguments (``{{ 'x'|center(900000) }}`` would otherwise be
    computed by the compiler and stored in the compiled template).
    """
    pass_arg = _PassArg.from_obj(func)
    max_input = SLOW_FILTER_INPUT.get(name)

    plain = pass_arg is None and max_input is None

    @pass_context
    def checked(context, value, *args, **kwargs):
        limits = _tick()
        if plain and type(value) is str and not args and not kwargs:
            # The usual call, `{{ text|filter }}`: nothing to measure before, the result after.
            result = func(value)
            if type(result) is str and len(result) <= limits.max_value:
                return result
            return check_size(result, limits)
        if isinstance(value, _CONTAINERS):
            _check_inputs((value,), limits)
        if max_input is not None and len(str(value)) > max_input:
            raise LimitExceeded(f"{name} works on at most {max_input:,} characters")
        if args or kwargs:
            _check_inputs((*args, *kwargs.values()), limits)
        if pass_arg is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return check_size(result, limits)

    checked.__name__ = getattr(func, "__name__", "filter")
    checked.__doc__ = func.__doc__
    return checked


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
    _check_printf(str(value), kwargs or args, _limits())
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
    """Inserts the guards into a parsed template.

    Output is counted where it may be collected rather than streamed: in macros,
    call, filter and set blocks, recursive loops and blocks (a layout may call a
    block from inside any of those), and everywhere in a layout (it may be included
    or imported from inside them). Output a message's own template streams at its top
    level reaches the renderer, which counts every chunk as it arrives; there only
    lists and namespaces are measured before they become text.
    """

    def __init__(self, *, count_all: bool) -> None:
        self.collected = 1 if count_all else 0

    @staticmethod
    def _wrap(node: nodes.Expr, name: str, *args: nodes.Expr) -> nodes.Filter:
        return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)

    def _visit_collected(self, node: nodes.Node) -> nodes.Node:
        self.collected += 1
        try:
            return self.generic_visit(node)
        finally:
            self.collected -= 1

    visit_Macro = visit_CallBlock = visit_FilterBlock = visit_AssignBlock = visit_Block = _visit_collected

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self._visit_collected(node) if node.recursive else self.generic_visit(node)
        node.iter = self._wrap(node.iter, ITER_GUARD)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return self._wrap(nodes.List(node.nodes, lineno=node.lineno), CONCAT_GUARD)

    def _visit_literal(self, node: nodes.Expr) -> nodes.Node:
        node = self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # an assignment target: `{% for key, value in ... %}`
        return self._wrap(node, SIZE_GUARD)

    visit_List = visit_Tuple = visit_Dict = _visit_literal

    def visit_Output(self, node: nodes.Output) -> nodes.Node | list[nodes.Node]:
        node = self.generic_visit(node)
        if not self.collected:
            node.nodes = [
                child if isinstance(child, nodes.TemplateData) else self._wrap(child, OUTPUT_GUARD)
                for child in node.nodes
            ]
            return node
        static = sum(len(child.data) for child in node.nodes if isinstance(child, nodes.TemplateData))
        children: list[nodes.Expr] = []
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                children.append(child)
            else:
                # The first value also counts the node's static text: one call rather than two.
                children.append(self._wrap(child, EMIT_GUARD, nodes.Const(static, lineno=child.lineno)))
                static = 0
        node.nodes = children
        if not static:
            return node
        # Text alone is counted by a statement before it, so nothing more is output (or escaped).
        count = self._wrap(nodes.Const(static, lineno=node.lineno), STATIC_COUNT)
        return [nodes.ExprStmt(count, lineno=node.lineno), node]


_FILTERS = {
    name: _checked_filter(name, func)
    for name, func in {
        **DEFAULT_FILTERS,
        "center": _guarded_center,
        "indent": _guarded_indent,
        "format": _guarded_format,
        "replace": _guarded_replace,
        "join": _guarded_join,
        "batch": _guarded_batch,
        "slice": _guarded_slice,
        "round": _guarded_round,
        "sum": _guarded_sum,
        "localdate": localdate,
    }.items()
}
_FILTERS.update(
    {
        ITER_GUARD: _guard_iter,
        CONCAT_GUARD: _guard_concat,
        SIZE_GUARD: _guard_size,
        EMIT_GUARD: _guard_emit,
        OUTPUT_GUARD: _guard_output,
        STATIC_COUNT: _count_static,
    }
)


_DICT_ATTRIBUTES = frozenset(dir(dict))


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
        self.filters = dict(_FILTERS)

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        # Every route to compiled code passes here (from_string, the loader, a parsed tree),
        # so nothing this environment runs misses the guards; `parse` stays the tree as written.
        tree = self.parse(source, name, filename) if isinstance(source, str) else source
        # Named templates are layouts (a message's own parts are compiled from strings).
        tree = _Hardener(count_all=name is not None).visit(tree)
        return super().compile(tree, name, filename, raw, defer_init)

    def parse_plain(self, source: str) -> nodes.Template:
        """The template as written (no guards), for static checks; raises TemplateSyntaxError."""
        return self.parse(source)

    def getattr(self, obj, attribute):
        # Filters such as groupby, sort and map look up attributes of every item: one call
        # on a long list could otherwise outlast the deadline.
        current = _budget.get()
        if current is not None:
            current.tick()
        # `contact.first_name` on the context's plain dicts: the key, as Jinja would find it after
        # getattr() failed (a name that is not a dict attribute), without raising on the way.
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        current = _budget.get()
        if current is not None:
            current.tick()
        return super().getitem(obj, argument)

    def call_binop(self, context, operator: str, left, right):
        return guarded_binop(operator, left, right)

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        format_string = str(value.__self__)
        is_format_map = value.__name__ == "format_map"

        def guarded(*args, **kwargs):
            limits = _tick()
            if is_format_map and len(args) == 1 and isinstance(args[0], dict) and not kwargs:
                _check_format_string(format_string, (), args[0], limits)
            else:
                _check_format_string(format_string, args, kwargs, limits)
            return check_size(wrapper(*args, **kwargs), limits)

        return _SandboxCallable(guarded, value.__name__)

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
    lineno: int | None
    """None when the problem is the template as a whole."""
    message: str

    def __str__(self) -> str:
        return self.message if self.lineno is None else f"line {self.lineno}: {self.message}"


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
    "syntax_problem",
]
