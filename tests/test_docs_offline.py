"""/api/docs/ and /api/redoc/ load everything from our own static files: they work offline."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

REFERENCE = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']""")


@pytest.mark.parametrize("path", ["/api/docs/", "/api/docs", "/api/redoc/", "/api/redoc"])
def test_docs_reference_only_local_static_files(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    for remote in ("http://", "https://", "//cdn"):
        assert remote not in html
    references = REFERENCE.findall(html)
    scripts = [url for url in references if url.endswith(".js")]
    assert scripts, "the page loads its UI bundle"
    for url in references:
        if url.startswith(f"/{settings.STATIC_URL.strip('/')}/"):
            relative = url.split("/", 2)[2].split("?")[0]
            assert finders.find(relative), f"{url} is not among the static files"
        else:
            assert url.rstrip("/") == "/api/schema", url


def test_the_schema_the_docs_load_is_served(client):
    for path in ("/api/schema", "/api/schema/"):
        response = client.get(path)
        assert response.status_code == 200
        assert b"openapi" in response.content
