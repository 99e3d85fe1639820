"""Clear preferred times the database holds but Python cannot read back (before year 1 or after
year 9999 in UTC, stored before input was bounded): each such row failed every page listing it.
The window is a preference only; the request itself stays. Done in SQL, without loading rows."""

from datetime import UTC, datetime

from django.db import migrations
from django.db.models import Q

STORABLE_MIN = datetime(1, 1, 2, tzinfo=UTC)
STORABLE_MAX = datetime(9999, 12, 30, tzinfo=UTC)


def clear_unreadable(apps, schema_editor):
    CallbackRequest = apps.get_model("callbacks", "CallbackRequest")
    outside = (
        Q(preferred_start__lt=STORABLE_MIN)
        | Q(preferred_start__gt=STORABLE_MAX)
        | Q(preferred_end__lt=STORABLE_MIN)
        | Q(preferred_end__gt=STORABLE_MAX)
    )
    CallbackRequest.objects.filter(outside).update(preferred_start=None, preferred_end=None)


class Migration(migrations.Migration):
    dependencies = [
        ("callbacks", "0001_callback_requests_activities_settings"),
    ]

    operations = [
        migrations.RunPython(clear_unreadable, migrations.RunPython.noop, elidable=True),
    ]
