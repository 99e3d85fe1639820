from rest_framework import viewsets

from accounts.tenancy import Area, TenantScopedViewMixin
from contacts import services
from contacts.models import Tag
from contacts.serializers import TagSerializer


class TagViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Tags of the organization's contacts."""

    permission_area = Area.AUDIENCE
    serializer_class = TagSerializer
    queryset = Tag.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    search_fields = ["name"]

    def perform_create(self, serializer):
        serializer.instance = services.tag_create(
            organization=self.request.organization, name=serializer.validated_data["name"]
        )

    def perform_update(self, serializer):
        if "name" in serializer.validated_data:
            services.tag_rename(tag=serializer.instance, name=serializer.validated_data["name"])
