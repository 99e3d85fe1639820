from accounts import views
from config.routing import ApiRouter, api_path

router = ApiRouter()
router.register("members", views.MemberViewSet, basename="member")
router.register("audit", views.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    api_path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    api_path("auth/login", views.LoginView.as_view(), name="auth-login"),
    api_path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    api_path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    api_path("auth/me", views.MeView.as_view(), name="auth-me"),
    api_path("auth/password", views.PasswordChangeView.as_view(), name="auth-password"),
    api_path("auth/password-reset", views.PasswordResetView.as_view(), name="auth-password-reset"),
    api_path(
        "auth/password-reset/confirm",
        views.PasswordResetConfirmView.as_view(),
        name="auth-password-reset-confirm",
    ),
    api_path("auth/invitations/accept", views.InvitationAcceptView.as_view(), name="auth-invitation-accept"),
    api_path("organization", views.CurrentOrganizationView.as_view(), name="organization-current"),
    *router.urls,
]
