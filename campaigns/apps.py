from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from campaigns import sequences
        from contacts import hooks

        # Drip sequences start on contact events and stop on replies and opt-outs.
        hooks.contact_event.connect(sequences.on_contact_event, dispatch_uid="campaigns.sequences")
