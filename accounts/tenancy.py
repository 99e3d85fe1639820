"""The one tenancy mechanism: every API view and admin page is scoped through here.

A request acts in one organization: the one named by the ``X-Organization``
header, else the user's first membership. Querysets are filtered to it, new
rows get it, and the member's role decides what they may do (``ROLE_MATRIX``).
An id from another organization is simply not in the queryset, so it answers 404.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from django.contrib import admin, messages
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from rest_framework import exceptions, serializers
from rest_framework.permissions import BasePermission, IsAuthenticated

from accounts.models import Membership, Organization, Role
from config.errors import DomainError

ORGANIZATION_HEADER = "HTTP_X_ORGANIZATION"


class Area(StrEnum):
    AUDIENCE = "audience"  # contacts, tags, lists, segments, suppressions, imports, events
    TEMPLATES = "templates"
    CAMPAIGNS = "campaigns"  # campaigns, messages, sequences
    ANALYTICS = "analytics"
    CALLBACKS = "callbacks"
    MEMBERS = "members"
    ORGANIZATION = "organization"
    AUDIT = "audit"  # the audit trail, written only by the services


_STAFF = frozenset({Role.OWNER, Role.ADMIN})
_MARKETERS = _STAFF | {Role.MANAGER}
_READERS = _MARKETERS | {Role.VIEWER}
_EVERYONE = frozenset(Role)

# area -> (roles that may read, roles that may write)
ROLE_MATRIX: dict[Area, tuple[frozenset[str], frozenset[str]]] = {
    Area.AUDIENCE: (_READERS, _MARKETERS),
    Area.TEMPLATES: (_READERS, _MARKETERS),
    Area.CAMPAIGNS: (_READERS, _MARKETERS),
    Area.ANALYTICS: (_READERS, frozenset()),
    Area.CALLBACKS: (_EVERYONE, _MARKETERS | {Role.AGENT}),
    Area.MEMBERS: (_STAFF, _STAFF),
    Area.ORGANIZATION: (_EVERYONE, _STAFF),
    Area.AUDIT: (_STAFF, frozenset()),
}


def allowed_roles(area: Area, *, write: bool) -> frozenset[str]:
    read_roles, write_roles = ROLE_MATRIX[area]
    return write_roles if write else read_roles


def resolve_membership(user, organization_id: str | None) -> Membership:
    """The membership a request acts through; raises 400/403 when there is none to act through."""
    memberships = Membership.objects.select_related("organization").filter(user=user)
    if organization_id:
        try:
            uuid.UUID(organization_id)
        except ValueError:
            raise exceptions.ValidationError({"X-Organization": ["Not a valid organization id."]}) from None
        membership = memberships.filter(organization_id=organization_id).first()
        if membership is None:
            raise exceptions.PermissionDenied("You are not a member of this organization.")
        return membership
    membership = memberships.order_by("created_at", "id").first()
    if membership is None:
        raise exceptions.PermissionDenied("You are not a member of any organization.")
    return membership


def request_membership(request) -> Membership:
    """Resolve once per request and remember it on the request."""
    membership = getattr(request, "membership", None)
    if membership is None:
        membership = resolve_membership(request.user, request.META.get(ORGANIZATION_HEADER, "").strip() or None)
        request.membership = membership
        request.organization = membership.organization
    return membership


class HasOrganizationRole(BasePermission):
    """Allows the request when the member's role may read (safe methods) or write the view's area."""

    message = "Your role in this organization does not allow this."

    def has_permission(self, request, view) -> bool:
        membership = request_membership(request)
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        area = view.get_permission_area(request) if hasattr(view, "get_permission_area") else view.permission_area
        return membership.role in allowed_roles(area, write=write)


class TenantScopedViewMixin:
    """Mix into any DRF GenericAPIView/ViewSet whose model has an ``organization`` field."""

    tenant_scoped = True
    permission_area: Area
    permission_classes = [IsAuthenticated, HasOrganizationRole]

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        return queryset.filter(organization=self.request.organization)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["organization"] = getattr(self.request, "organization", None)
        return context

    def perform_create(self, serializer):
        # The organization is never taken from the request body.
        serializer.save(organization=self.request.organization)


class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary-key field that only accepts rows of the request's organization."""

    def get_queryset(self):
        queryset = super().get_queryset()
        organization = self.context.get("organization")
        if organization is None:
            return queryset.none()
        return queryset.filter(organization=organization)


# --- Admin ------------------------------------------------------------------


def admin_organization_ids(user, area: Area, *, write: bool) -> list:
    roles = allowed_roles(area, write=write)
    return list(Membership.objects.filter(user=user, role__in=roles).values_list("organization_id", flat=True))


def _has_organization(model) -> bool:
    return any(f.name == "organization" for f in model._meta.get_fields())


def organizations_q(model, organization_ids) -> Q | None:
    """The rows of `model` that belong to these organizations, or None when `model` is not
    tenant data (then nothing is filtered). Users belong to the organizations they are members of."""
    if model is Organization:
        return Q(pk__in=organization_ids)
    if model is get_user_model():
        return Q(pk__in=Membership.objects.filter(organization__in=organization_ids).values("user_id"))
    if _has_organization(model):
        return Q(organization__in=organization_ids)
    return None


def _limit_choices(field, related_model, organization_ids):
    if field is None or not hasattr(field, "queryset"):
        return field
    q = organizations_q(related_model, organization_ids)
    if q is not None:
        field.queryset = field.queryset.filter(q)
    return field


class TenantRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A "By <relation>" filter offering only the rows of organizations the staff member may read.

    TenantAdminMixin puts it in place of every plain relation in ``list_filter``."""

    def field_choices(self, field, request, model_admin):
        if request.user.is_superuser:
            return super().field_choices(field, request, model_admin)
        q = organizations_q(field.related_model, model_admin._org_ids(request, write=False))
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=q or Q())


class ServiceErrorsAdminMixin:
    """A business rule that refuses an admin write (a service raised ValidationError or a
    DomainError) becomes an error message on the same page with the whole write rolled back,
    instead of a 500. Admin code calls the services and lets their errors through."""

    def _refused(self, request, exc) -> HttpResponseRedirect:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        self.message_user(request, text or "The change was refused.", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except (ValidationError, DomainError) as exc:
            if request.method != "POST":
                raise
            return self._refused(request, exc)

    def delete_view(self, request, *args, **kwargs):
        try:
            return super().delete_view(request, *args, **kwargs)
        except (ValidationError, DomainError) as exc:
            if request.method != "POST":
                raise
            return self._refused(request, exc)

    def changelist_view(self, request, *args, **kwargs):
        # Actions (bulk delete among them) run here; each refusing action rolls back its own work.
        try:
            return super().changelist_view(request, *args, **kwargs)
        except (ValidationError, DomainError) as exc:
            if request.method != "POST":
                raise
            return self._refused(request, exc)


class TenantAdminMixin(ServiceErrorsAdminMixin):
    """Scopes a ModelAdmin to the organizations where a staff member's role allows it.

    Superusers see everything. Other staff see rows of organizations where their
    role may read the area, change rows where it may write, and can only pick
    those organizations (and their rows, and their members) in forms, inlines and
    list filters.
    """

    permission_area: Area
    organization_field = "organization"

    def _org_ids(self, request, *, write: bool) -> list:
        cache_name = f"_tenant_admin_orgs_{self.permission_area}_{write}"
        if not hasattr(request, cache_name):
            setattr(request, cache_name, admin_organization_ids(request.user, self.permission_area, write=write))
        return getattr(request, cache_name)

    def _scoped(self, request) -> bool:
        return not request.user.is_superuser

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if not self._scoped(request):
            return queryset
        return queryset.filter(**{f"{self.organization_field}__in": self._org_ids(request, write=False)})

    def _object_org_id(self, obj):
        return getattr(obj, f"{self.organization_field}_id")

    def has_module_permission(self, request):
        if not self._scoped(request):
            return super().has_module_permission(request)
        return request.user.is_active and request.user.is_staff and bool(self._org_ids(request, write=False))

    def has_view_permission(self, request, obj=None):
        if not self._scoped(request):
            return super().has_view_permission(request, obj)
        allowed = self._org_ids(request, write=False)
        return bool(allowed) and (obj is None or self._object_org_id(obj) in allowed)

    def has_add_permission(self, request, *args):
        if not self._scoped(request):
            return super().has_add_permission(request, *args)
        return bool(self._org_ids(request, write=True))

    def has_change_permission(self, request, obj=None):
        if not self._scoped(request):
            return super().has_change_permission(request, obj)
        allowed = self._org_ids(request, write=True)
        return bool(allowed) and (obj is None or self._object_org_id(obj) in allowed)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if self._scoped(request):
            field = _limit_choices(field, db_field.related_model, self._org_ids(request, write=True))
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if self._scoped(request):
            field = _limit_choices(field, db_field.related_model, self._org_ids(request, write=True))
        return field

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if not self._scoped(request):
            return filters
        return [self._scoped_list_filter(item) for item in filters]

    def _scoped_list_filter(self, item):
        if not isinstance(item, str):
            return item
        try:
            field = get_fields_from_path(self.model, item)[-1]
        except (FieldDoesNotExist, NotRelationField):
            return item
        if field.is_relation and organizations_q(field.related_model, []) is not None:
            return (item, TenantRelatedFieldListFilter)
        return item

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        if self._scoped(request):
            # An inline row links to rows of the page's own organization (or, on an add page,
            # of the organizations the staff member may write to).
            org_id = self._object_org_id(obj) if obj is not None else None
            allowed = [org_id] if org_id is not None else self._org_ids(request, write=True)
            for inline in inlines:
                _scope_inline_choices(inline, allowed)
        return inlines


def _scope_inline_choices(inline, organization_ids) -> None:
    # Inline instances are made per request, so binding the allowed organizations here is safe.
    for_foreignkey, for_manytomany = inline.formfield_for_foreignkey, inline.formfield_for_manytomany

    def formfield_for_foreignkey(db_field, request, **kwargs):
        return _limit_choices(for_foreignkey(db_field, request, **kwargs), db_field.related_model, organization_ids)

    def formfield_for_manytomany(db_field, request, **kwargs):
        return _limit_choices(for_manytomany(db_field, request, **kwargs), db_field.related_model, organization_ids)

    inline.formfield_for_foreignkey = formfield_for_foreignkey
    inline.formfield_for_manytomany = formfield_for_manytomany


class TenantModelAdmin(TenantAdminMixin, admin.ModelAdmin):
    pass


class ReadOnlyAdminMixin:
    """Append-only records (audit events, message events): shown, never added, changed or deleted
    from the admin. Put it before the tenant mixin so its answers win."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
