from django.contrib import admin

from accounts.tenancy import Area, TenantModelAdmin
from contacts.models import Tag


@admin.register(Tag)
class TagAdmin(TenantModelAdmin):
    permission_area = Area.AUDIENCE
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]
