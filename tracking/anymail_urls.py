"""Anymail's webhook URLs (`anymail.urls`, same paths and names), each view wrapped so that only
the configured provider answers (others are a 404), a verified post with a malformed body is a 400,
and the events of one post reach the buffer together, once Anymail verified and parsed it all
(see tracking/webhooks.py). Mount at /anymail/ in place of `anymail.urls`."""

from anymail.urls import urlpatterns as anymail_urlpatterns
from django.urls import URLPattern

from tracking.buffer import collecting
from tracking.webhooks import checked_view, mounted, route_esp

app_name = "anymail"
urlpatterns = [
    URLPattern(
        pattern.pattern,
        mounted(
            collecting(
                checked_view(
                    pattern.callback.view_class,
                    esp=route_esp(str(pattern.pattern)),
                    initkwargs=pattern.callback.view_initkwargs,
                )
            ),
            esp=route_esp(str(pattern.pattern)),
        ),
        pattern.default_args,
        pattern.name,
    )
    for pattern in anymail_urlpatterns
]
