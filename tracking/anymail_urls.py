"""Anymail's webhook URLs (`anymail.urls`, same paths and names), each view wrapped so that the
events of one post reach the buffer together, and only once Anymail verified and parsed it all.
Mount at /anymail/ in place of `anymail.urls`."""

from anymail.urls import urlpatterns as anymail_urlpatterns
from django.urls import URLPattern

from tracking.buffer import collecting

app_name = "anymail"
urlpatterns = [
    URLPattern(pattern.pattern, collecting(pattern.callback), pattern.default_args, pattern.name)
    for pattern in anymail_urlpatterns
]
