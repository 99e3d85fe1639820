"""One routing convention: every path of the OpenAPI schema answers with and without its trailing
slash, the same way, without a redirect, a crash or an HTML page."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator

from callbacks.tests.factories import CallbackRequestFactory
from campaigns import sequences
from campaigns.models import CampaignStatus, Enrollment, Sequence
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, SendingDomainFactory
from contacts.models import Suppression, SuppressionKind
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory, TagFactory
from templates_app.tests.factories import LayoutFactory
from tracking.tests.factories import SentMessageFactory

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
PARAMETER = re.compile(r"\{(\w+)\}")


def schema_operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation the generated schema documents."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(method, path) for path, item in schema["paths"].items() for method in METHODS if method in item]


def organization_rows(organization, member) -> dict[str, str]:
    """Ids of one row per resource, keyed by the path before the parameter."""
    contact = ContactFactory(organization=organization)
    template = EmailTemplateFactory(organization=organization)
    campaign = CampaignFactory(organization=organization, template=template)
    message = SentMessageFactory(campaign=CampaignFactory(organization=organization, status=CampaignStatus.RUNNING))
    sequence = sequences.sequence_activate(
        sequence=sequences.sequence_save(
            sequence=Sequence(organization=organization, name="Drip", channel="email"),
            trigger={"type": "api"},
            steps=[{"order": 1, "template": str(template.pk)}],
        )
    )
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    suppression = Suppression.objects.create(
        organization=organization, kind=SuppressionKind.EMAIL, value=f"gone-{uuid.uuid4().hex}@example.com"
    )
    return {
        "/api/v1/analytics/campaigns/": str(campaign.pk),
        "/api/v1/callbacks/": str(CallbackRequestFactory(organization=organization, contact=contact).pk),
        "/api/v1/campaigns/": str(campaign.pk),
        "/api/v1/contacts/": str(contact.public_id),
        "/api/v1/enrollments/": str(Enrollment.objects.get(sequence=sequence, contact=contact).pk),
        "/api/v1/layouts/": str(LayoutFactory(organization=organization).pk),
        "/api/v1/lists/": str(ContactListFactory(organization=organization).pk),
        "/api/v1/members/": str(member.memberships.get(organization=organization).pk),
        "/api/v1/messages/": str(message.pk),
        "/api/v1/segments/": str(SegmentFactory(organization=organization).pk),
        "/api/v1/sending-domains/": str(SendingDomainFactory(organization=organization).pk),
        "/api/v1/sequences/": str(sequence.pk),
        "/api/v1/suppressions/": str(suppression.pk),
        "/api/v1/tags/": str(TagFactory(organization=organization).pk),
        "/api/v1/templates/": str(template.pk),
    }


def fill(path: str, ids: dict[str, str]) -> str:
    """The path with each parameter replaced by the id of a row of that resource, else a random UUID."""

    def one(match: re.Match) -> str:
        return ids.get(path[: match.start()], str(uuid.uuid4()))

    return PARAMETER.sub(one, path)


def call_and_roll_back(client, method: str, url: str):
    """One request whose writes are undone, so that both forms of a path meet the same state."""
    with transaction.atomic():
        response = client.get(url) if method == "get" else getattr(client, method)(url, {}, format="json")
        transaction.set_rollback(True)
    return response


def test_the_schema_documents_the_api(member_client):
    operations = schema_operations()
    paths = {path for _method, path in operations}
    # The walk below is only as good as the schema it walks.
    assert len(operations) > 80
    assert {"/api/v1/auth/me", "/api/v1/contacts/", "/api/v1/campaigns/{id}/launch/"} <= paths


def test_every_schema_path_answers_the_same_with_and_without_a_trailing_slash(member_client):
    client, user, organization = member_client("owner")
    ids = organization_rows(organization, user)
    for method, template in schema_operations():
        bare = fill(template, ids).rstrip("/")
        answers = {}
        for url in (bare, f"{bare}/"):
            response = call_and_roll_back(client, method, url)
            status = response.status_code
            assert not 300 <= status < 400, (method, url, status, response.get("Location"))
            assert status < 500, (method, url, status)
            assert not response.get("Content-Type", "").startswith("text/html"), (method, url, status)
            answers[url] = status
        assert len(set(answers.values())) == 1, (method, answers)


def test_another_organizations_ids_answer_404_on_both_forms(member_client):
    client, _user, _organization = member_client("owner")
    _other_client, other_user, other = member_client("owner")
    other_ids = organization_rows(other, other_user)
    walked = 0
    for method, template in schema_operations():
        if method != "get" or not PARAMETER.search(template):
            continue
        bare = fill(template, other_ids).rstrip("/")
        for url in (bare, f"{bare}/"):
            response = client.get(url)
            assert response.status_code == 404, (url, response.status_code)
            assert response.json() == {"detail": response.json()["detail"]}, url
        walked += 1
    assert walked >= 15
