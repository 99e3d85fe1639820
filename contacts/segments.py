"""The segment rules language, compiled to one SQL query.

A rule is a tree of nodes::

    {"all": [node, ...]}     every node matches
    {"any": [node, ...]}     at least one node matches
    {"not": node}            the node does not match
    {"field": F, "op": OP, "value": V}   a condition

Fields and their operators:

    email, email_domain, first_name, last_name, phone, locale, timezone
        eq, neq, contains, starts_with, in, exists       (text, case-insensitive)
    status          eq, neq, in                          (subscribed|unsubscribed|bounced|complained)
    tags            contains (a tag name), in (any of the names), exists (has any tag)
    lists           contains (a list id), in (any of the ids), exists (on any list); unsubscribed members don't count
    attributes.<key>[.<key>...]
                    eq, neq, in, contains (substring of the text form), exists,
                    gt, gte, lt, lte (numbers compare with numbers, strings with strings;
                    a value of another JSON type never matches), before, after (ISO-8601 date strings)
    created_at, last_contacted_at
                    before, after, exists (absolute times within DATE_MIN_YEAR..DATE_MAX_YEAR)
    event           did, did_not: value is the event name; optional "within_days": N

Times for before/after are absolute ("2026-01-31", "2026-01-31T08:00:00+01:00") or
relative ("30 days ago", "2 weeks ago", "6 months ago", "in 7 days", "today", "now"),
evaluated when the query runs. `neq` matches contacts that lack the value too.

`compile_rules` returns a Q for Contact querysets: every condition becomes SQL
(EXISTS subqueries for tags, lists and events), so counting a segment is one
query and nothing is filtered in Python. Bad rules raise `SegmentRuleError`
naming the path in the rule, e.g. ``rules.all[1].op``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.db import NotSupportedError, connection
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone

from config.validation import check_date

MAX_DEPTH = 10
MAX_CONDITIONS = 200
MAX_IN_VALUES = 1000

TEXT_FIELDS = {"email", "email_domain", "first_name", "last_name", "phone", "locale", "timezone"}
LOWERCASE_STORED = {"email", "email_domain"}
TIME_FIELDS = {"created_at", "last_contacted_at"}
STATUSES = {"subscribed", "unsubscribed", "bounced", "complained"}
ATTRIBUTE_KEY = re.compile(r"^(?!.*__)[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
RELATIVE = re.compile(
    r"^(?:(?P<n>\d{1,5})\s+(?P<unit>minute|hour|day|week|month|year)s?\s+ago|in\s+(?P<fn>\d{1,5})\s+(?P<funit>minute|hour|day|week|month|year)s?)$"
)

OPERATORS: dict[str, set[str]] = {
    "text": {"eq", "neq", "contains", "starts_with", "in", "exists"},
    "status": {"eq", "neq", "in"},
    "tags": {"contains", "in", "exists"},
    "lists": {"contains", "in", "exists"},
    "attribute": {"eq", "neq", "in", "contains", "exists", "gt", "gte", "lt", "lte", "before", "after"},
    "time": {"before", "after", "exists"},
    "event": {"did", "did_not"},
}


class SegmentRuleError(ValueError):
    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class _Context:
    now: datetime
    vendor: str


def compile_rules(rules: Any, *, now: datetime | None = None, vendor: str | None = None) -> Q:
    """Validate `rules` and return a Q over Contact; raises SegmentRuleError."""
    ctx = _Context(now=now or timezone.now(), vendor=vendor or connection.vendor)
    counter = [0]
    return _node(rules, "rules", 0, ctx, counter)


def validate_rules(rules: Any) -> None:
    compile_rules(rules)


def _node(node: Any, path: str, depth: int, ctx: _Context, counter: list[int]) -> Q:
    if depth > MAX_DEPTH:
        raise SegmentRuleError(path, f"rules nest deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise SegmentRuleError(path, "must be an object with all, any, not or field")
    groups = [key for key in ("all", "any", "not") if key in node]
    if groups:
        if len(node) != 1:
            raise SegmentRuleError(path, f"a {groups[0]!r} group takes no other keys")
        key = groups[0]
        if key == "not":
            return ~_node(node["not"], f"{path}.not", depth + 1, ctx, counter)
        children = node[key]
        if not isinstance(children, list) or not children:
            raise SegmentRuleError(f"{path}.{key}", "must be a non-empty list of rules")
        compiled = [_node(child, f"{path}.{key}[{i}]", depth + 1, ctx, counter) for i, child in enumerate(children)]
        combined = compiled[0]
        for q in compiled[1:]:
            combined = (combined & q) if key == "all" else (combined | q)
        return combined
    if "field" not in node:
        raise SegmentRuleError(path, "must be an object with all, any, not or field")
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise SegmentRuleError(path, f"more than {MAX_CONDITIONS} conditions")
    return _condition(node, path, ctx)


def _condition(node: dict, path: str, ctx: _Context) -> Q:
    field = node.get("field")
    op = node.get("op")
    if not isinstance(field, str) or not field:
        raise SegmentRuleError(f"{path}.field", "must be a field name")
    kind = _field_kind(field, path)
    if op not in OPERATORS[kind]:
        allowed = ", ".join(sorted(OPERATORS[kind]))
        raise SegmentRuleError(f"{path}.op", f"unknown operator {op!r} for field {field!r} (use one of: {allowed})")
    allowed_keys = {"field", "op", "value"} | ({"within_days"} if kind == "event" else set())
    extra = set(node) - allowed_keys
    if extra:
        raise SegmentRuleError(path, f"unexpected key(s): {', '.join(sorted(extra))}")
    value = node.get("value")
    vpath = f"{path}.value"
    if kind == "text":
        return _text(field, op, value, vpath)
    if kind == "status":
        return _status(op, value, vpath)
    if kind == "tags":
        return _tags(op, value, vpath)
    if kind == "lists":
        return _lists(op, value, vpath)
    if kind == "attribute":
        return _attribute(field.split(".")[1:], op, value, vpath, ctx)
    if kind == "time":
        return _time(field, op, value, vpath, ctx)
    return _event(op, value, node.get("within_days"), path, ctx)


def _field_kind(field: str, path: str) -> str:
    if field in TEXT_FIELDS:
        return "text"
    if field == "status":
        return "status"
    if field in ("tags", "lists", "event"):
        return field
    if field in TIME_FIELDS:
        return "time"
    if field.startswith("attributes."):
        keys = field.split(".")[1:]
        for key in keys:
            if not ATTRIBUTE_KEY.match(key):
                raise SegmentRuleError(f"{path}.field", f"invalid attribute key {key!r}")
        return "attribute"
    raise SegmentRuleError(f"{path}.field", f"unknown field {field!r}")


# --- value checks -------------------------------------------------------------------


def _string(value: Any, path: str, *, max_length: int = 500) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SegmentRuleError(path, "must be a non-empty string")
    if len(value) > max_length:
        raise SegmentRuleError(path, f"is longer than {max_length} characters")
    return value.strip()


def _string_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise SegmentRuleError(path, "must be a non-empty list")
    if len(value) > MAX_IN_VALUES:
        raise SegmentRuleError(path, f"has more than {MAX_IN_VALUES} values")
    return [_string(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _flag(value: Any, path: str) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise SegmentRuleError(path, "must be true or false")
    return value


def _uuid(value: Any, path: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise SegmentRuleError(path, f"{value!r} is not a valid id") from None


def parse_when(value: Any, path: str, now: datetime) -> datetime:
    """An absolute ISO date/datetime or a relative phrase, as an aware datetime."""
    if not isinstance(value, str) or not value.strip():
        raise SegmentRuleError(path, "must be a date, a datetime or a phrase like '30 days ago'")
    text = value.strip().lower()
    if text == "now":
        return now
    if text == "today":
        return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    match = RELATIVE.match(text)
    if match:
        ago = match.group("n") is not None
        n = int(match.group("n") or match.group("fn"))
        unit = match.group("unit") or match.group("funit")
        delta = relativedelta(**{f"{unit}s": n})
        try:
            return now - delta if ago else now + delta
        except (ValueError, OverflowError):
            raise SegmentRuleError(path, f"{value!r} is too far from now") from None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value.strip()), time.min)
        except ValueError:
            raise SegmentRuleError(
                path, f"{value!r} is neither an ISO date/datetime nor a phrase like '30 days ago'"
            ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


# --- conditions -------------------------------------------------------------------------


def _text(field: str, op: str, value: Any, path: str) -> Q:
    if op == "exists":
        present = Q(**{f"{field}__isnull": False}) & ~Q(**{field: ""})
        return present if _flag(value, path) else ~present
    if op == "in":
        values = [v.lower() for v in _string_list(value, path)]
        if field in LOWERCASE_STORED:
            return Q(**{f"{field}__in": values})
        return Q(In(Lower(F(field)), values))
    text = _string(value, path)
    if op in ("eq", "neq"):
        matched = Q(**{field: text.lower()}) if field in LOWERCASE_STORED else Q(**{f"{field}__iexact": text})
        return matched if op == "eq" else ~matched
    if op == "contains":
        return Q(**{f"{field}__icontains": text})
    return Q(**{f"{field}__istartswith": text})


def _status(op: str, value: Any, path: str) -> Q:
    if op == "in":
        values = _string_list(value, path)
        for i, item in enumerate(values):
            if item not in STATUSES:
                raise SegmentRuleError(f"{path}[{i}]", f"unknown status {item!r}")
        return Q(status__in=values)
    status = _string(value, path)
    if status not in STATUSES:
        raise SegmentRuleError(path, f"unknown status {status!r} (use one of: {', '.join(sorted(STATUSES))})")
    return Q(status=status) if op == "eq" else ~Q(status=status)


def _tags(op: str, value: Any, path: str) -> Q:
    from contacts.models import ContactTag

    links = ContactTag.objects.filter(contact_id=OuterRef("pk"))
    if op == "exists":
        has_any = Q(Exists(links))
        return has_any if _flag(value, path) else ~has_any
    names = [_string(value, path)] if op == "contains" else _string_list(value, path)
    names = [n.lower() for n in names]
    return Q(Exists(links.filter(In(Lower(F("tag__name")), names))))


def _lists(op: str, value: Any, path: str) -> Q:
    from contacts.models import ListMembership

    memberships = ListMembership.objects.filter(contact_id=OuterRef("pk"), unsubscribed_at__isnull=True)
    if op == "exists":
        on_any = Q(Exists(memberships))
        return on_any if _flag(value, path) else ~on_any
    if op == "contains":
        ids = [_uuid(value, path)]
    else:
        if not isinstance(value, list) or not value:
            raise SegmentRuleError(path, "must be a non-empty list of list ids")
        ids = [_uuid(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return Q(Exists(memberships.filter(contact_list_id__in=ids)))


class AttributeIsType(Func):
    """True when the JSON value at `keys` of `attributes` has the given JSON type (number or string)."""

    output_field = BooleanField()

    def __init__(self, keys: list[str], json_type: str):
        self.keys = keys
        self.json_type = json_type
        super().__init__(F("attributes"))

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        path = "{" + ",".join(self.keys) + "}"
        return f"(jsonb_typeof({column} #> %s) = %s)", [*params, path, self.json_type]

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        path = "$" + "".join(f'."{key}"' for key in self.keys)
        types = ("integer", "real") if self.json_type == "number" else ("text",)
        placeholders = ", ".join(["%s"] * len(types))
        return f"(json_type({column}, %s) IN ({placeholders}))", [*params, path, *types]

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"segment attribute comparisons support PostgreSQL and SQLite, not {connection.vendor}")


def _path(keys: list[str], lookup: str) -> str:
    # Keys are validated (no "__"), and an explicit lookup always ends the path, so
    # every key is read as a JSON key even when it is named like a lookup.
    return "__".join(["attributes", *keys, lookup])


def _has_key(keys: list[str]) -> Q:
    return Q(**{_path(keys[:-1], "has_key"): keys[-1]})


def _scalar(value: Any, path: str) -> str | int | float | bool:
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 500):
        return value
    raise SegmentRuleError(path, "must be a string, a number or true/false")


def _attribute(keys: list[str], op: str, value: Any, path: str, ctx: _Context) -> Q:
    if op == "exists":
        present = _has_key(keys)
        return present if _flag(value, path) else ~present
    if op in ("eq", "neq"):
        scalar = _scalar(value, path)
        if ctx.vendor == "postgresql":
            # JSON containment (@>): a type-exact comparison that also suits a GIN index if one is added.
            nested: Any = scalar
            for key in reversed(keys):
                nested = {key: nested}
            matched = Q(attributes__contains=nested)
        else:
            matched = Q(**{_path(keys, "exact"): scalar})
        return matched if op == "eq" else (~matched | ~_has_key(keys))
    if op == "in":
        if not isinstance(value, list) or not value:
            raise SegmentRuleError(path, "must be a non-empty list")
        if len(value) > MAX_IN_VALUES:
            raise SegmentRuleError(path, f"has more than {MAX_IN_VALUES} values")
        return Q(**{_path(keys, "in"): [_scalar(v, f"{path}[{i}]") for i, v in enumerate(value)]})
    if op == "contains":
        return Q(**{_path(keys, "icontains"): _string(value, path)})
    if op in ("before", "after"):
        when = parse_when(value, path, ctx.now)
        # Attribute dates are ISO-8601 strings, which sort as text.
        bound = when.date().isoformat() if _looks_like_date(value) else when.isoformat()
        lookup = "lt" if op == "before" else "gt"
        return Q(AttributeIsType(keys, "string")) & Q(**{_path(keys, lookup): bound})
    # gt, gte, lt, lte
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SegmentRuleError(path, "must be a number or a string")
    json_type = "string" if isinstance(value, str) else "number"
    return Q(AttributeIsType(keys, json_type)) & Q(**{_path(keys, op): value})


def _looks_like_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)) or text == "today" or " day" in text or " week" in text


def _time(field: str, op: str, value: Any, path: str, ctx: _Context) -> Q:
    if op == "exists":
        present = Q(**{f"{field}__isnull": False})
        return present if _flag(value, path) else ~present
    when = parse_when(value, path, ctx.now)
    try:
        # Our own timestamps: a year outside the configured range is a typo, not a filter.
        check_date(when)
    except ValidationError as exc:
        raise SegmentRuleError(path, " ".join(exc.messages)) from None
    return Q(**{f"{field}__lt" if op == "before" else f"{field}__gt": when})


def _event(op: str, value: Any, within_days: Any, path: str, ctx: _Context) -> Q:
    from contacts.models import ContactEvent

    name = _string(value, f"{path}.value", max_length=100)
    events = ContactEvent.objects.filter(contact_id=OuterRef("pk"), name=name)
    if within_days is not None:
        if isinstance(within_days, bool) or not isinstance(within_days, int) or not 0 < within_days <= 3650:
            raise SegmentRuleError(f"{path}.within_days", "must be a whole number of days from 1 to 3650")
        events = events.filter(occurred_at__gte=ctx.now - timedelta(days=within_days))
    did = Q(Exists(events))
    return did if op == "did" else ~did
