from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import views

router = SimpleRouter(trailing_slash=True)
router.register("members", views.MemberViewSet, basename="member")

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", views.MeView.as_view(), name="auth-me"),
    path("auth/invitations/accept", views.InvitationAcceptView.as_view(), name="auth-invitation-accept"),
    path("organization", views.CurrentOrganizationView.as_view(), name="organization-current"),
    *router.urls,
]
