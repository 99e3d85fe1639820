"""Public pages without JWT, mounted at the site root: /t/o/, /t/c/, /u/, /v/, and the SMS and
WhatsApp provider webhooks under /webhooks/."""

from django.urls import path, re_path

from tracking import channel_webhooks, public

urlpatterns = [
    path("t/o/<str:token>.gif", public.open_pixel, name="tracking-open"),
    path("t/c/<str:token>", public.click, name="tracking-click"),
    path("u/<str:token>", public.unsubscribe, name="tracking-unsubscribe"),
    path("v/<str:token>", public.view_in_browser, name="tracking-view"),
    re_path(r"^webhooks/sms/twilio/?$", channel_webhooks.twilio_webhook, name="webhook-twilio"),
    re_path(r"^webhooks/whatsapp/?$", channel_webhooks.whatsapp_webhook, name="webhook-whatsapp"),
]
