"""Audience writes."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from accounts.models import Organization
from contacts.models import Tag


def tag_create(*, organization: Organization, name: str) -> Tag:
    """Create a tag; names are unique per organization regardless of case."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["This field may not be blank."]})
    if Tag.objects.for_organization(organization).filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"A tag named {name!r} already exists."]})
    return Tag.objects.create(organization=organization, name=name)


def tag_rename(*, tag: Tag, name: str) -> Tag:
    """Rename a tag, keeping names unique per organization."""
    name = name.strip()
    clash = Tag.objects.for_organization(tag.organization_id).filter(name__iexact=name).exclude(pk=tag.pk)
    if clash.exists():
        raise ValidationError({"name": [f"A tag named {name!r} already exists."]})
    tag.name = name
    tag.save(update_fields=["name"])
    return tag
