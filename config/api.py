"""Shared REST plumbing: error mapping and the schema class."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import ConflictError, DomainError


def exception_handler(exc, context):
    """DRF's handler, plus service errors: ConflictError -> 409, DomainError -> 400."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, ConflictError):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, DomainError):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


ORGANIZATION_HEADER = OpenApiParameter(
    name="X-Organization",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Id of the organization to act in; defaults to the user's first membership.",
)


class TenantAutoSchema(AutoSchema):
    """Documents the X-Organization header on every organization-scoped endpoint."""

    def get_override_parameters(self):
        params = super().get_override_parameters()
        if getattr(self.view, "tenant_scoped", False):
            params = [*params, ORGANIZATION_HEADER]
        return params
