"""Template background work: test sends, so SMTP never runs inside a web request."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.exceptions import ValidationError

from config.errors import DomainError
from templates_app import services
from templates_app.models import MessageTemplate

logger = logging.getLogger(__name__)


@shared_task(
    name="templates.send_test",
    queue="default",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=3,
    time_limit=120,
    soft_time_limit=100,
)
def template_send_test_task(*, template_id: str, to: list[str], **_kwargs) -> None:
    """Email a test of a template as it stands now. A template deleted or broken since is logged, not retried.

    Delivered at least once: a test that was sent when its worker died may be sent again.
    """
    template = MessageTemplate.objects.select_related("organization").filter(pk=template_id).first()
    if template is None:
        return
    try:
        services.template_send_test(template=template, to=to)
    except (ValidationError, DomainError) as exc:
        logger.warning("test send of template %s refused: %s", template_id, exc)
