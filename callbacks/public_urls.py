"""Public pages without JWT, mounted at the site root: /callback/<token>."""

from django.urls import path

from callbacks import public

urlpatterns = [
    path("callback/<str:token>", public.callback_form, name="callback-public-form"),
]
