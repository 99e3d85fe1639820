"""API routes (under /api/v1/)."""

from django.urls import path

from tracking import views

urlpatterns = [
    path("messages/<int:message_id>/events", views.MessageEventListView.as_view(), name="message-events"),
]
