from dataclasses import asdict

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.tenancy import Area, HasOrganizationRole, TenantScopedViewMixin, allowed_roles, request_membership
from config.schema import conflict
from contacts.models import Contact
from templates_app import rendering, selectors, services
from templates_app.models import Layout, MessageTemplate
from templates_app.serializers import (
    LayoutSerializer,
    MessageTemplateSerializer,
    PreviewRequestSerializer,
    PreviewSerializer,
)


class ReadAccess(HasOrganizationRole):
    """For POST actions that change nothing (previews): whoever may read the area may use them."""

    def has_permission(self, request, view) -> bool:
        return request_membership(request).role in allowed_roles(view.permission_area, write=False)


@extend_schema_view(
    destroy=extend_schema(responses={204: None, 409: conflict("A campaign uses the template.")}),
)
class MessageTemplateViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Message templates for email, SMS and WhatsApp (Jinja2)."""

    permission_area = Area.TEMPLATES
    serializer_class = MessageTemplateSerializer
    queryset = MessageTemplate.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["channel", "purpose"]

    def perform_create(self, serializer):
        serializer.instance = services.template_create(
            organization=self.request.organization, by=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.template_update(
            template=serializer.instance, by=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.template_delete(template=instance)


class TemplatePreviewView(TenantScopedViewMixin, generics.GenericAPIView):
    """POST /templates/{id}/preview: the template rendered for a contact or a given context, without tracking."""

    permission_area = Area.TEMPLATES
    permission_classes = [IsAuthenticated, ReadAccess]
    queryset = MessageTemplate.objects.all()
    serializer_class = PreviewRequestSerializer

    @extend_schema(
        request=PreviewRequestSerializer,
        responses={
            200: PreviewSerializer,
            400: OpenApiResponse(description="The template does not render: {field: [reason]}."),
        },
        summary="Render the template for a contact or a given context",
    )
    def post(self, request, pk):
        template = self.get_object()
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        contact = None
        contact_id = payload.validated_data.get("contact_id")
        if contact_id is not None:
            contact = Contact.objects.filter(organization=request.organization, public_id=contact_id).first()
            if contact is None:
                raise exceptions.ValidationError({"contact_id": ["No contact with this id in this organization."]})
        try:
            rendered = selectors.template_preview(
                template=template, contact=contact, context=payload.validated_data.get("context")
            )
        except rendering.TemplateProblem as exc:
            raise exceptions.ValidationError(exc.errors) from None
        return Response(
            PreviewSerializer(
                {
                    "subject": rendered.subject,
                    "preheader": rendered.preheader,
                    "html": rendered.html,
                    "text": rendered.text,
                    "sms": asdict(rendered.sms) if rendered.sms is not None else None,
                    "whatsapp_parameters": rendered.whatsapp_parameters,
                }
            ).data
        )


@extend_schema_view(
    partial_update=extend_schema(
        responses={200: LayoutSerializer, 409: conflict("Templates or layouts name the layout: it cannot be renamed.")}
    ),
    destroy=extend_schema(responses={204: None, 409: conflict("A template or layout uses the layout.")}),
)
class LayoutViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """Reusable HTML layouts; a template's body fills their {% block content %}."""

    permission_area = Area.TEMPLATES
    serializer_class = LayoutSerializer
    queryset = Layout.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        serializer.instance = services.layout_create(
            organization=self.request.organization, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.layout_update(layout=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.layout_delete(layout=instance)
