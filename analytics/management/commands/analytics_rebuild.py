"""Rewrite the daily rollups of a date range from the raw rows."""

from __future__ import annotations

import uuid
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from analytics.rollup import rebuild

MAX_DAYS = 3660


def _date(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date like 2026-01-31.") from None


class Command(BaseCommand):
    help = "Rebuild the analytics rollups (daily, link and agent figures) of every day from --from to --to."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="date_from", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="date_to", required=True, help="Last day, YYYY-MM-DD (included).")
        parser.add_argument("--organization", help="Only this organization (its id or slug); default all.")

    def handle(self, *args, date_from: str, date_to: str, organization: str | None = None, **options) -> None:
        first = _date("--from", date_from)
        last = _date("--to", date_to)
        if first > last:
            raise CommandError(f"--from ({first}) is after --to ({last}).")
        if (last - first).days >= MAX_DAYS:
            raise CommandError(f"--from to --to spans more than {MAX_DAYS} days; rebuild it in parts.")
        organization_id = None
        if organization:
            try:
                lookup = {"pk": uuid.UUID(organization)}
            except ValueError:
                lookup = {"slug": organization}
            organization_id = Organization.objects.filter(**lookup).values_list("pk", flat=True).first()
            if organization_id is None:
                raise CommandError(f"--organization: no organization with id or slug {organization!r}.")
        result = rebuild(organization_id=organization_id, date_from=first, date_to=last)
        message = f"Rebuilt {result['days']} days in {result['organizations']} organization(s): {result['rows']} rows."
        if result["skipped_days"]:
            message += f" Left {result['skipped_days']} days older than the event retention as they were."
        self.stdout.write(self.style.SUCCESS(message))
