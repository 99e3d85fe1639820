"""Public pages without JWT, mounted at the site root: /t/o/, /t/c/, /u/, /v/."""

from django.urls import path

from tracking import public

urlpatterns = [
    path("t/o/<str:token>.gif", public.open_pixel, name="tracking-open"),
    path("t/c/<str:token>", public.click, name="tracking-click"),
    path("u/<str:token>", public.unsubscribe, name="tracking-unsubscribe"),
    path("v/<str:token>", public.view_in_browser, name="tracking-view"),
]
