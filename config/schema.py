"""The OpenAPI schema as clients generate code from it: every operation lists its error responses.

`ApiAutoSchema` (DEFAULT_SCHEMA_CLASS) adds the errors an operation can answer with, from what the
view is made of, so no view has to repeat them:

- 400 `ValidationError` when the operation takes a body, query parameters or the X-Organization header;
- 401 `ErrorDetail` when it authenticates the caller; 403 when a role or membership decides;
- 404 when its path names a resource, or it is a paginated list (`?page=` past the end);
- 413 when it takes a JSON body (larger than API_MAX_BODY_BYTES); 429 when it is throttled.

409 is the operation's own business: views whose transitions can be illegal declare
`conflict("which states refuse it")` in their `extend_schema(responses=...)`.

It also holds the hand-written components (the error shapes, the recursive segment rules) and marks
serializers with `schema_closed = True` as refusing unknown keys.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers

from config.api import TenantAutoSchema
from contacts.segments import OPERATORS as SEGMENT_RULE_OPERATORS

ERROR_MEDIA_TYPE = "application/json"

TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$"
BLANKABLE_FORMATS = {"email", "uri", "hostname", "ipv4", "ipv6"}

ERROR_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'An error that concerns the whole request: `{"detail": "..."}`.',
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "A machine-readable reason, when there is one."},
        "messages": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "Why a token was refused (401).",
        },
    },
    "required": ["detail"],
}

# A field's errors: usually a list of reasons; nested objects and lists name their own fields
# ({"variants": [{"template": [...]}]}, {"emails": {"0": [...]}}).
_FIELD_ERRORS: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": True}]}},
        {"type": "object", "additionalProperties": True},
        {"type": "string"},
    ]
}

VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'Bad input: `{"field": ["reason", ...]}` per field (a nested field is named by its path, '
    'e.g. "schedule.window.start"); `non_field_errors` for reasons about several fields together; '
    "`detail` when the body could not be read at all (malformed JSON).",
    "properties": {
        "detail": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": _FIELD_ERRORS,
}

# Free-form JSON objects (contact attributes, event properties, template variables).
JSON_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}

# contacts.segments: a rule is a group (all / any / not) or a condition; groups nest.
SEGMENT_OPERATORS = sorted({op for ops in SEGMENT_RULE_OPERATORS.values() for op in ops})

SEGMENT_RULE_SCHEMA: dict[str, Any] = {
    "description": 'Segment rules: {"all": [rule, ...]}, {"any": [rule, ...]}, {"not": rule} or a condition. '
    'E.g. {"all": [{"field": "attributes.city", "op": "eq", "value": "Utrecht"}, '
    '{"field": "tags", "op": "contains", "value": "vip"}]}.',
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/SegmentRule"}}
            },
            "required": ["all"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/SegmentRule"}}
            },
            "required": ["any"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"not": {"$ref": "#/components/schemas/SegmentRule"}},
            "required": ["not"],
            "additionalProperties": False,
        },
        {"$ref": "#/components/schemas/SegmentCondition"},
    ],
}

SEGMENT_CONDITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One condition. Fields: email, email_domain, first_name, last_name, phone, locale, timezone, "
    "status, tags, lists, attributes.<key>[.<key>...], created_at, last_contacted_at, event. Which operators a "
    "field takes, and the value they need, is in the segments documentation; a wrong one is a 400 naming its "
    'path, e.g. "rules.all[1].op".',
    "properties": {
        "field": {"type": "string", "minLength": 1},
        "op": {"$ref": "#/components/schemas/SegmentOperatorEnum"},
        "value": {"description": "Text, a number, a list (in), an id (lists), a date or a relative time."},
        "within_days": {
            "type": "integer",
            "minimum": 1,
            "maximum": 3650,
            "nullable": True,
            "description": "event only: within the last N days.",
        },
    },
    "required": ["field", "op"],
    "additionalProperties": False,
}

SEGMENT_RULE = {"$ref": "#/components/schemas/SegmentRule"}

COMPONENTS = {
    "ErrorDetail": ERROR_DETAIL_SCHEMA,
    "ValidationError": VALIDATION_ERROR_SCHEMA,
    "SegmentRule": SEGMENT_RULE_SCHEMA,
    "SegmentCondition": SEGMENT_CONDITION_SCHEMA,
    "SegmentOperatorEnum": {"type": "string", "enum": SEGMENT_OPERATORS},
}

ERROR_DESCRIPTIONS = {
    "400": "Bad input; nothing was changed.",
    "401": "Missing, expired or invalid credentials.",
    "403": "Not a member of the organization, or the member's role does not allow this.",
    "404": "No such resource in this organization (or no such page).",
    "409": "The resource's current state does not allow this.",
    "413": "The request body is too large.",
    "429": "Too many requests; retry after the Retry-After header's seconds.",
}


class _Component:
    """The identity drf-spectacular keys a hand-written component by."""

    def __init__(self, name: str):
        self.name = name


_COMPONENT_OBJECTS = {name: _Component(name) for name in COMPONENTS}


def _error_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def conflict(description: str) -> OpenApiResponse:
    """A 409 for `extend_schema(responses=...)`, saying which states refuse the operation."""
    return OpenApiResponse(_error_ref("ErrorDetail"), description=description)


def unauthorized(description: str) -> OpenApiResponse:
    """A 401 for operations that check credentials themselves (login, refresh)."""
    return OpenApiResponse(_error_ref("ErrorDetail"), description=description)


class ApiAutoSchema(TenantAutoSchema):
    """drf-spectacular's AutoSchema with the X-Organization header and the common error responses."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        for name, schema in COMPONENTS.items():
            registry.register_on_missing(
                ResolvedComponent(
                    name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=_COMPONENT_OBJECTS[name]
                )
            )
        return super().get_operation(path, path_regex, path_prefix, method, registry)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self.error_codes():
            responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code]})
        for code, response in responses.items():
            if code >= "400" and "content" not in response:
                # An error declared with a description only still has the one error body.
                name = "ValidationError" if code == "400" else "ErrorDetail"
                response["content"] = {ERROR_MEDIA_TYPE: {"schema": _error_ref(name)}}
        return dict(sorted(responses.items()))

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.TimeField) and isinstance(schema, dict) and schema.get("format") == "time":
            # DRF writes "09:00:00", without the offset RFC 3339's "time" format requires.
            schema = {key: value for key, value in schema.items() if key != "format"}
            schema["pattern"] = TIME_OF_DAY_PATTERN
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        if getattr(field, "allow_blank", False) and schema.get("format") in BLANKABLE_FORMATS:
            # "" (none set) is no email address or URL: the format holds for the other values.
            del schema["format"]
            schema["description"] = f"{schema.get('description', '')} Empty when none is set.".strip()

    def _postprocess_serializer_schema(self, schema, serializer, direction):
        schema = super()._postprocess_serializer_schema(schema, serializer, direction)
        if getattr(serializer, "schema_closed", False):
            # The service refuses unknown keys ("Unknown key(s): ..."): say so.
            schema["additionalProperties"] = False
        return schema

    # --- what the view is made of ---------------------------------------------------------------------

    def _takes_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None

    def _takes_json(self) -> bool:
        if not self._takes_body():
            return False
        return any(getattr(parser, "media_type", "") == "application/json" for parser in self.view.get_parsers())

    def _has_query_parameters(self) -> bool:
        if self._get_filter_parameters() or self._get_pagination_parameters():
            return True
        return any(
            getattr(parameter, "location", None) == "query"
            for parameter in self.get_override_parameters()
            if not isinstance(parameter, dict)
        )

    def _authenticates(self) -> bool:
        return bool(self.view.get_authenticators())

    def _permission_classes(self) -> set[type]:
        return {permission.__class__ for permission in self.view.get_permissions()}

    def _is_paginated_list(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

    def error_codes(self) -> list[str]:
        tenant = getattr(self.view, "tenant_scoped", False)
        perms = self._permission_classes()
        open_to_all = permissions.AllowAny in perms
        codes = set()
        if self._takes_body() or self._has_query_parameters() or tenant:
            codes.add("400")
        if self._authenticates() and not open_to_all:
            codes.add("401")
        if not open_to_all and (tenant or perms - {permissions.IsAuthenticated}):
            codes.add("403")
        if "{" in self.path or self._is_paginated_list():
            codes.add("404")
        if self._takes_json():
            codes.add("413")
        if self.view.get_throttles():
            codes.add("429")
        return sorted(codes)
