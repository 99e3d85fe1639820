"""Create the demo organization and an admin user once, and print how to sign in."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Organization, Role, User

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create a demo organization and an admin user (idempotent); print the credentials."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="admin@example.com")
        parser.add_argument("--organization", default="Demo Organization")

    def handle(self, *args, email: str, organization: str, **options):
        credentials_file = Path(settings.VAR_DIR) / "admin-credentials.txt"
        with transaction.atomic():
            org, _ = Organization.objects.get_or_create(slug=DEMO_SLUG, defaults={"name": organization})
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                password = secrets.token_urlsafe(12)
                user = User.objects.create_superuser(email=email, password=password, full_name="Demo Admin")
                credentials_file.parent.mkdir(parents=True, exist_ok=True)
                credentials_file.write_text(f"{email}\n{password}\n")
                credentials_file.chmod(0o600)
            Membership.objects.get_or_create(user=user, organization=org, defaults={"role": Role.OWNER})

        if credentials_file.exists():
            saved_email, saved_password = credentials_file.read_text().split("\n")[:2]
            password_line = saved_password
        else:
            saved_email, password_line = email, "(unchanged; reset with: manage.py changepassword)"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Campaign Central is ready.",
                    f"  Admin:     {settings.PUBLIC_BASE_URL}/admin/",
                    f"  API docs:  {settings.PUBLIC_BASE_URL}/api/docs/",
                    f"  Email:     {saved_email}",
                    f"  Password:  {password_line}",
                    f"  Organization: {org.name} (id {org.pk})",
                    "",
                ]
            )
        )
