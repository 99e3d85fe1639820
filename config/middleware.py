"""Request middleware: an id per request (echoed in X-Request-ID and in every log line), and a
limit on the size of request bodies."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from config.logging import request_id_var
from config.parsers import declared_length

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIDMiddleware:
    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get(self.header, "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestSizeLimitMiddleware:
    """Answer 413 to a request whose Content-Length exceeds API_MAX_BODY_BYTES, before anything
    reads its body. The CSV import uploads (API and admin) may be as large as IMPORT_MAX_BYTES
    plus room for the form's other fields; their views check the file's own size. Provider
    webhooks may post batches up to WEBHOOK_MAX_BODY_BYTES."""

    import_views = frozenset({"contact-import-upload", "admin:contacts_importjob_add"})
    webhook_prefixes = ("/anymail/", "/webhooks/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = declared_length(request.META)
        if length is not None and length > settings.API_MAX_BODY_BYTES:
            limit = self.limit_for(request)
            if length > limit:
                return self.too_large(request, limit)
        return self.get_response(request)

    def limit_for(self, request) -> int:
        if request.path_info.startswith(self.webhook_prefixes):
            return settings.WEBHOOK_MAX_BODY_BYTES
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return settings.API_MAX_BODY_BYTES
        if match.view_name in self.import_views:
            return settings.IMPORT_MAX_BYTES + settings.API_MAX_BODY_BYTES
        return settings.API_MAX_BODY_BYTES

    @staticmethod
    def too_large(request, limit: int) -> HttpResponse:
        message = f"The request body is larger than {limit // 1024} KB."
        if request.path_info.startswith("/api/"):
            return JsonResponse({"detail": message}, status=413)
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
