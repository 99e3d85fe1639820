"""The peer of the send benchmark: django-post-office, run from its own virtualenv.

Nothing here is imported by the project except ``content`` (plain Python, shared
by both sides so they send the same email).
"""
