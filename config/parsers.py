"""Request parsers: JSON bodies within the limits of config.validation."""

from __future__ import annotations

from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser; bounds are added in config.validation."""
