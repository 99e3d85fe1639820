from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import views

# Every path answers as API.md writes it and with a trailing slash, without redirects.
router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only knows "/" or ""
router.register("members", views.MemberViewSet, basename="member")
router.register("audit", views.AuditEventViewSet, basename="audit-event")


def both_forms(route: str, view, name: str) -> list:
    # The documented form is in the schema; the slash form is the same view, left out of it.
    return [path(route, view.as_view(), name=name), path(f"{route}/", view.as_view(schema=None))]


urlpatterns = [
    *both_forms("auth/register", views.RegisterView, "auth-register"),
    *both_forms("auth/login", views.LoginView, "auth-login"),
    *both_forms("auth/refresh", views.RefreshView, "auth-refresh"),
    *both_forms("auth/logout", views.LogoutView, "auth-logout"),
    *both_forms("auth/me", views.MeView, "auth-me"),
    *both_forms("auth/invitations/accept", views.InvitationAcceptView, "auth-invitation-accept"),
    *both_forms("organization", views.CurrentOrganizationView, "organization-current"),
    *router.urls,
]
