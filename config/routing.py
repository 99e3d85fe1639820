"""The one routing convention of the API: every path answers with and without its trailing slash.

Both forms reach the view directly. Nothing redirects, so a POST without the slash stays a POST
(a 301 would turn it into a GET in most clients). Every app's urls.py builds its routes with
`ApiRouter` (viewsets) and `api_path` (single views); nothing else.
"""

from __future__ import annotations

from django.urls import URLPattern
from django.urls.resolvers import RoutePattern
from rest_framework.routers import SimpleRouter

OPTIONAL_SLASH = "/?"


class ApiRouter(SimpleRouter):
    """DRF's SimpleRouter whose routes match with and without the trailing slash.

    The schema documents the slash form (`/api/v1/contacts/`, `/api/v1/contacts/{id}/`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The constructor only knows "/" or ""; the regex accepts both.
        self.trailing_slash = OPTIONAL_SLASH


class OptionalSlashRoutePattern(RoutePattern):
    """A `path()` route (converters and all) that matches with and without its trailing slash.

    `str()` of the pattern stays the route as written, so the schema documents the form the route
    is written in (`auth/me` as `/api/v1/auth/me`, `sending-policy/` as `/api/v1/sending-policy/`)."""

    def __init__(self, route, name=None, is_endpoint=False):
        super().__init__(route, name=name, is_endpoint=is_endpoint)
        if is_endpoint:
            # _route_to_regex ends an endpoint with \Z.
            self._regex = self._regex.removesuffix(r"\Z").removesuffix("/") + r"/?\Z"


def api_path(route: str, view, kwargs: dict | None = None, name: str | None = None) -> URLPattern:
    """`django.urls.path()` for one API view, answering with and without the trailing slash."""
    if not callable(view):  # include() gives a tuple
        raise TypeError("api_path() takes a view callable; use include() with path() for a URLconf")
    pattern = OptionalSlashRoutePattern(route, name=name, is_endpoint=True)
    return URLPattern(pattern, view, kwargs, name)
