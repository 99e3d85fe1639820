"""The Celery application. Settings come from Django settings under the CELERY_ prefix."""

import os
import time

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
    "campaigns.sequences": {
        "task": "campaigns.sequences.advance",
        "schedule": float(os.environ.get("SEQUENCE_ADVANCE_INTERVAL_SECONDS") or 10),
    },
    "campaigns.recurrence": {"task": "campaigns.recurrence.due", "schedule": 60.0},
    "campaigns.ab": {
        "task": "campaigns.ab.decide",
        "schedule": float(os.environ.get("AB_DECIDE_INTERVAL_SECONDS") or 60),
    },
    "callbacks.sweep": {"task": "callbacks.sweep", "schedule": 60.0},
    "tracking.flush": {
        "task": "tracking.flush",
        "schedule": float(os.environ.get("TRACKING_FLUSH_INTERVAL_SECONDS") or 2),
    },
    # The entry keeps its earlier name so the scheduler updates its row instead of adding a second one.
    "tracking.guard": {"task": "campaigns.guard", "schedule": 60.0},
    "analytics.rollup": {
        "task": "analytics.rollup",
        "schedule": float(os.environ.get("ANALYTICS_ROLLUP_INTERVAL_SECONDS") or 60),
    },
    "analytics.prune": {"task": "analytics.prune", "schedule": 24 * 3600},
    "webhooks.fanout": {
        "task": "webhooks.fanout",
        "schedule": float(os.environ.get("WEBHOOKS_FANOUT_INTERVAL_SECONDS") or 10),
    },
    "webhooks.deliver": {
        "task": "webhooks.deliver",
        "schedule": float(os.environ.get("WEBHOOKS_DELIVER_INTERVAL_SECONDS") or 5),
    },
    "accounts.flush-expired-tokens": {
        "task": "accounts.flush_expired_tokens",
        "schedule": 24 * 3600,
    },
    # On the default queue, which every worker consumes: /health reports workers as stale when
    # beat's tasks stop running (all worker processes busy or wedged, or no worker at all).
    "config.heartbeat": {"task": "config.heartbeat", "schedule": 30.0},
}

# Where the heartbeat leaves its time: the Django cache, shared by web, worker and beat.
HEARTBEAT_CACHE_KEY = "health:worker-heartbeat"


@app.task(name="config.heartbeat", acks_late=True, ignore_result=True, time_limit=30, soft_time_limit=20)
def heartbeat_task(**_kwargs) -> None:
    """Record that a worker ran one of beat's tasks just now (read by /health)."""
    from django.core.cache import cache

    cache.set(HEARTBEAT_CACHE_KEY, time.time(), timeout=None)


@task_prerun.connect
def _bind_task_log_context(task_id=None, task=None, **_kwargs):
    from config.logging import request_id_var

    request_id_var.set(f"task:{task_id}")


@task_postrun.connect
def _unbind_task_log_context(**_kwargs):
    from config.logging import request_id_var

    request_id_var.set("-")
