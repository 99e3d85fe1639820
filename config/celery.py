"""The Celery application. Settings come from Django settings under the CELERY_ prefix."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("campaign_central")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic tasks are declared here, in one place; django-celery-beat's
# DatabaseScheduler installs them into its tables when beat starts, where
# operators can pause or retime them from the admin.
app.conf.beat_schedule = {
    "campaigns.dispatch": {
        "task": "campaigns.dispatch.due",
        "schedule": float(os.environ.get("CAMPAIGN_DISPATCH_INTERVAL_SECONDS") or 5),
    },
    "callbacks.sweep": {"task": "callbacks.sweep", "schedule": 60.0},
    "tracking.flush": {
        "task": "tracking.flush",
        "schedule": float(os.environ.get("TRACKING_FLUSH_INTERVAL_SECONDS") or 2),
    },
    "tracking.guard": {"task": "tracking.guard", "schedule": 60.0},
    "accounts.flush-expired-tokens": {
        "task": "accounts.flush_expired_tokens",
        "schedule": 24 * 3600,
    },
}


@task_prerun.connect
def _bind_task_log_context(task_id=None, task=None, **_kwargs):
    from config.logging import request_id_var

    request_id_var.set(f"task:{task_id}")


@task_postrun.connect
def _unbind_task_log_context(**_kwargs):
    from config.logging import request_id_var

    request_id_var.set("-")
