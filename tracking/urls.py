"""API routes (under /api/v1/)."""

from config.routing import api_path
from tracking import views

urlpatterns = [
    api_path("messages/<int:message_id>/events", views.MessageEventListView.as_view(), name="message-events"),
]
