"""Audience data. Every row belongs to one organization (accounts.TenantModel)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower

from accounts.models import TenantModel


class Tag(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="contacts_tag_org_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name
