from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import Membership, Organization, User
from accounts.tenancy import Area, TenantAdminMixin, admin_organization_ids


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "organization"
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "default_from_email", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    # An organization is its own tenant: staff see the ones they belong to.
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=admin_organization_ids(request.user, Area.ORGANIZATION, write=False))

    def has_module_permission(self, request):
        return request.user.is_superuser or (request.user.is_staff and request.user.memberships.exists())

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        allowed = admin_organization_ids(request.user, Area.ORGANIZATION, write=False)
        return bool(allowed) and (obj is None or obj.pk in allowed)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        allowed = admin_organization_ids(request.user, Area.ORGANIZATION, write=True)
        return bool(allowed) and (obj is None or obj.pk in allowed)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(TenantAdminMixin, admin.ModelAdmin):
    permission_area = Area.MEMBERS
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_superuser", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    # Staff who are not superusers see the users of their own organizations only.
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        org_ids = admin_organization_ids(request.user, Area.MEMBERS, write=False)
        return queryset.filter(memberships__organization__in=org_ids).distinct()

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or bool(admin_organization_ids(request.user, Area.MEMBERS, write=False))
