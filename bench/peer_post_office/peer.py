"""django-post-office sending N personalized emails into an SMTP sink; prints one JSON line.

Run with the bench-only virtualenv's Python (bench/send_pipeline.py does):

    PEER_DB_NAME=... EMAIL_PORT=... python bench/peer_post_office/peer.py N MODE

MODE ``prerendered``: each email is queued with its HTML and text already rendered
(``mail.send(..., html_message=...)``, done here with one bulk INSERT per 2,000 rows
as ``mail.send_many`` does); sending builds and sends it. MODE ``render_on_delivery``:
each email is queued with an ``EmailTemplate`` and its context
(``mail.send(template=..., context=..., render_on_delivery=True)``); sending renders it.
Queueing is setup and is not timed. Timed: ``send_queued_mail_until_done(processes=1)``,
what ``manage.py send_queued_mail`` runs, until the queue is empty.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import uuid
from email.utils import make_msgid
from importlib.metadata import version

import content

CHUNK = 2_000
BASE_URL = "https://campaigns.example.com"


def clear() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE post_office_log, post_office_attachment_emails, post_office_attachment, post_office_email, "
            "post_office_emailtemplate RESTART IDENTITY CASCADE"
        )


def context_for(index: int) -> dict:
    person = content.recipient(index)
    token = uuid.uuid4().hex
    return {
        **content.VARIABLES,
        "contact": {
            "email": person["email"],
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "attributes": {"city": person["city"]},
        },
        "organization": {"name": "Bench Shop"},
        "campaign": {"name": "Bench send"},
        "unsubscribe_url": f"{BASE_URL}/u/{token}",
        "view_in_browser_url": f"{BASE_URL}/v/{token}",
    }


def queue(count: int, mode: str) -> None:
    from django.db import connection
    from django.template import Context, Template
    from post_office.models import PRIORITY, STATUS, Email, EmailTemplate

    sender = "Bench Shop <news@mail.example.com>"
    template = EmailTemplate.objects.create(
        name="bench", subject=content.SUBJECT, content=content.text_body(), html_content=content.html_body()
    )
    subject, text, html = Template(content.SUBJECT), Template(content.text_body()), Template(content.html_body())
    emails = []
    for index in range(1, count + 1):
        context = context_for(index)
        headers = {
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        common = {
            "from_email": sender,
            "to": [context["contact"]["email"]],
            "status": STATUS.queued,
            "priority": PRIORITY.medium,
            "headers": headers,
            "message_id": make_msgid(domain="mail.example.com"),
        }
        if mode == "render_on_delivery":
            emails.append(Email(**common, template=template, context=context))
        else:
            rendered = Context(context)
            emails.append(
                Email(
                    **common,
                    subject=subject.render(rendered),
                    message=text.render(rendered),
                    html_message=html.render(rendered),
                )
            )
        if len(emails) == CHUNK:
            Email.objects.bulk_create(emails)
            emails = []
    if emails:
        Email.objects.bulk_create(emails)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE post_office_email")


def message_size() -> int:
    from post_office.models import STATUS, Email

    email = Email.objects.filter(status=STATUS.sent).first()
    return len(email.prepare_email_message().message().as_bytes())


def main() -> None:
    count, mode = int(sys.argv[1]), sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_settings")
    import django

    django.setup()
    from django.core.management import call_command
    from post_office.mail import send_queued_mail_until_done
    from post_office.models import STATUS, Email

    call_command("migrate", verbosity=0, interactive=False)
    clear()
    queue(count, mode)
    with tempfile.TemporaryDirectory(prefix="bench-post-office-") as lock_dir:
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        send_queued_mail_until_done(lockfile=os.path.join(lock_dir, "send"), processes=1)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    sent = Email.objects.filter(status=STATUS.sent).count()
    size = message_size()
    clear()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "sent": sent,
                "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                "max_rss_mb": after.ru_maxrss / 1024,
                "message_bytes": size,
                "version": version("django-post-office"),
                "django": django.get_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
