from django.apps import AppConfig


class TrackingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tracking"
    verbose_name = "Tracking and provider events"

    def ready(self) -> None:
        from anymail.signals import inbound, tracking

        from tracking import providers

        tracking.connect(providers.tracking_received, dispatch_uid="tracking.providers.tracking_received")
        inbound.connect(providers.inbound_received, dispatch_uid="tracking.providers.inbound_received")
