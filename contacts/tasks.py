"""Audience background work."""

from __future__ import annotations

from celery import shared_task

from contacts import importer
from contacts.models import ImportJob


@shared_task(name="contacts.import_contacts", acks_late=True, time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def import_contacts_task(*, job_id: str, **_kwargs) -> None:
    """Run one CSV import; a redelivered task resumes or finds the job finished."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None:
        importer.run_import(job)
