"""Admin housekeeping: internal models for superusers only, "View site" somewhere useful, the member's
organization preselected, and logs without the periodic-task noise."""

import logging

import pytest
from django.contrib.auth.models import Group, Permission
from django_celery_beat.models import PeriodicTask

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, UserFactory
from config.logging import JSONFormatter, PeriodicTaskNoiseFilter

pytestmark = pytest.mark.django_db

INTERNAL = [
    "/admin/django_celery_beat/periodictask/",
    "/admin/token_blacklist/outstandingtoken/",
    "/admin/auth/group/",
]


def test_internal_models_are_for_superusers_only(client):
    owner = MembershipFactory(role=Role.OWNER, user__is_staff=True).user
    # Even with Django's model permissions granted, staff who are not superusers do not see them.
    owner.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["django_celery_beat", "token_blacklist", "auth"])
    )
    client.force_login(owner)
    index = client.get("/admin/").content.decode()
    assert "Periodic tasks" not in index
    assert "Groups" not in index
    assert "Outstanding tokens" not in index
    assert "Contacts" in index
    for url in INTERNAL:
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/auth/group/add/", {"name": "sneaky"}).status_code == 403
    assert not Group.objects.filter(name="sneaky").exists()

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for url in INTERNAL:
        assert client.get(url).status_code == 200, url
    assert PeriodicTask.objects.model._meta.app_label == "django_celery_beat"


def test_view_site_leads_to_the_api_documentation(client):
    client.force_login(MembershipFactory(role=Role.MANAGER, user__is_staff=True).user)
    page = client.get("/admin/").content.decode()
    assert '<a href="/api/docs/">View site</a>' in page


def test_add_forms_start_with_the_members_organization(client):
    membership = MembershipFactory(role=Role.MANAGER, user__is_staff=True)
    client.force_login(membership.user)
    for url in (
        "/admin/contacts/contact/add/",
        "/admin/contacts/contactlist/add/",
        "/admin/templates_app/messagetemplate/add/",
        "/admin/contacts/suppression/add/",
        "/admin/campaigns/campaign/add/",
        "/admin/campaigns/sequence/add/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        assert page.context["adminform"].form.initial.get("organization") == membership.organization_id, url
    # A superuser without a membership chooses.
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert "organization" not in client.get("/admin/contacts/contact/add/").context["adminform"].form.initial


def record(name, level, msg, args=()):
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_periodic_task_lines_are_dropped_at_info_and_the_rest_is_json():
    noise = PeriodicTaskNoiseFilter()
    beat = record("celery.beat", logging.INFO, "Scheduler: Sending due task %s (%s)", ("tracking.flush", "x"))
    periodic_done = record(
        "celery.app.trace",
        logging.INFO,
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
        ({"name": "campaigns.dispatch.due", "id": "1", "runtime": 0.1, "return_value": None},),
    )
    periodic_received = record(
        "celery.worker.strategy",
        logging.INFO,
        "Task %(name)s[%(id)s] received",
        ({"name": "tracking.flush", "id": "2"},),
    )
    other_done = record(
        "celery.app.trace",
        logging.INFO,
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
        ({"name": "contacts.import", "id": "3", "runtime": 2.0, "return_value": None},),
    )
    failure = record("celery.beat", logging.ERROR, "Scheduler: Sending due task %s failed", ("tracking.flush",))
    assert not noise.filter(beat)
    assert not noise.filter(periodic_done)
    assert not noise.filter(periodic_received)
    assert noise.filter(other_done)
    assert noise.filter(failure)
    assert JSONFormatter().format(other_done).startswith('{"time": ')


def test_celery_keeps_djangos_logging():
    from celery.signals import setup_logging

    assert any("keep_django_logging_in_celery" in repr(receiver) for receiver in setup_logging.receivers)
