from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self) -> None:
        from contacts import hooks
        from webhooks import fanout

        # contact.created and contact.unsubscribed come from the contacts hook, after the writer's commit.
        hooks.contact_event.connect(fanout.on_contact_event, dispatch_uid="webhooks.fanout")
