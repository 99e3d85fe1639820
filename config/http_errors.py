"""Error pages as API clients need them: under /api/ every error body is `{"detail": ...}` JSON.

Django's handlers (unknown routes, malformed ids, crashes) and the middleware below (which catches
the HTML pages Django renders itself in DEBUG, or from CSRF and host checks) both answer JSON for
paths under /api/ and keep Django's HTML pages everywhere else (admin, public pages).
"""

from __future__ import annotations

from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"

DETAILS = {
    400: "Bad request.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    500: "A server error occurred.",
}


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def json_error(status: int, detail: str | None = None) -> JsonResponse:
    if detail is None:
        detail = DETAILS.get(status) or _phrase(status)
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request, exception=None):
    if is_api_request(request):
        return json_error(400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if is_api_request(request):
        return json_error(403)
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if is_api_request(request):
        return json_error(404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_request(request):
        return json_error(500)
    return defaults.server_error(request)


class ApiJsonErrorsMiddleware:
    """Turn an HTML error page under /api/ into `{"detail": ...}` with the same status.

    With DEBUG on, Django answers unknown routes and crashes with its technical HTML pages instead
    of calling the handlers above; the CSRF and disallowed-host checks render HTML too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code >= 400 and is_api_request(request) and _is_html(response):
            json_response = json_error(response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    json_response[header] = response[header]
            return json_response
        return response


def _phrase(status: int) -> str:
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return "Error."


def _is_html(response: HttpResponse) -> bool:
    if getattr(response, "streaming", False):
        return False
    return response.get("Content-Type", "").startswith("text/html")
