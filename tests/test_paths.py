"""Every API path answers as API.md writes it and with a trailing slash: no redirects, no 404s."""

import pytest

from callbacks.tests.factories import CallbackRequestFactory
from campaigns import sequences
from campaigns.models import Enrollment, Sequence
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory, SendingDomainFactory
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory

pytestmark = pytest.mark.django_db


def both_forms(path: str) -> list[str]:
    return [path, f"{path}/"]


def make_sequence(organization, *, active: bool = True) -> Sequence:
    template = EmailTemplateFactory(organization=organization)
    sequence = sequences.sequence_save(
        sequence=Sequence(organization=organization, name="Drip", channel="email"),
        trigger={"type": "api"},
        steps=[{"order": 1, "template": str(template.pk)}],
    )
    if active:
        sequence = sequences.sequence_activate(sequence=sequence)
    return sequence


def make_enrollment(organization) -> Enrollment:
    sequence = make_sequence(organization)
    contact = ContactFactory(organization=organization)
    sequences.sequence_enroll(sequence=sequence, contact_ids=[contact.pk])
    return Enrollment.objects.get(sequence=sequence, contact=contact)


def contract_paths(organization) -> list[tuple[str, str]]:
    """(method, path) as API.md writes them, for this organization's rows."""
    contact = ContactFactory(organization=organization)
    contact_list = ContactListFactory(organization=organization)
    segment = SegmentFactory(organization=organization)
    template = EmailTemplateFactory(organization=organization)
    campaign = CampaignFactory(organization=organization, template=template)
    callback = CallbackRequestFactory(organization=organization, contact=contact)
    sending_domain = SendingDomainFactory(organization=organization)
    sequence = make_enrollment(organization).sequence
    return [
        ("get", "/api/v1/contacts"),
        ("get", f"/api/v1/contacts/{contact.public_id}"),
        ("post", "/api/v1/contacts/import"),
        ("get", "/api/v1/tags"),
        ("get", "/api/v1/lists"),
        ("post", f"/api/v1/lists/{contact_list.pk}/members"),
        ("post", f"/api/v1/lists/{contact_list.pk}/members/remove"),
        ("get", "/api/v1/segments"),
        ("get", f"/api/v1/segments/{segment.pk}/preview"),
        ("get", "/api/v1/suppressions"),
        ("post", "/api/v1/events"),
        ("get", "/api/v1/templates"),
        ("get", f"/api/v1/templates/{template.pk}"),
        ("post", f"/api/v1/templates/{template.pk}/preview"),
        ("get", "/api/v1/campaigns"),
        ("post", f"/api/v1/campaigns/{campaign.pk}/dry-run"),
        ("get", f"/api/v1/campaigns/{campaign.pk}/stats"),
        ("post", f"/api/v1/campaigns/{campaign.pk}/test-send"),
        ("get", "/api/v1/messages"),
        ("get", "/api/v1/sending-domains"),
        ("get", f"/api/v1/sending-domains/{sending_domain.pk}"),
        ("post", f"/api/v1/sending-domains/{sending_domain.pk}/verify"),
        ("get", "/api/v1/sequences"),
        ("get", f"/api/v1/sequences/{sequence.pk}"),
        ("post", f"/api/v1/sequences/{sequence.pk}/enroll"),
        ("get", f"/api/v1/sequences/{sequence.pk}/enrollments"),
        ("get", f"/api/v1/sequences/{sequence.pk}/stats"),
        ("get", "/api/v1/sending-policy"),
        ("get", "/api/v1/callbacks"),
        ("post", f"/api/v1/callbacks/{callback.pk}/assign"),
        ("post", f"/api/v1/callbacks/{callback.pk}/status"),
        ("post", f"/api/v1/callbacks/{callback.pk}/complete"),
        ("get", f"/api/v1/callbacks/{callback.pk}/activities"),
        ("get", "/api/v1/callbacks/settings"),
        ("get", "/api/v1/callbacks/metrics"),
    ]


def state_change_paths(organization) -> list[tuple[str, str]]:
    """(method, path) of state changes as API.md writes them, on fresh rows: each answers 200 once."""
    return [
        ("post", f"/api/v1/sequences/{make_sequence(organization, active=False).pk}/activate"),
        ("post", f"/api/v1/sequences/{make_sequence(organization).pk}/pause"),
        ("post", f"/api/v1/sequences/{make_sequence(organization).pk}/archive"),
        ("post", f"/api/v1/enrollments/{make_enrollment(organization).pk}/stop"),
    ]


def test_every_contract_path_answers_with_and_without_a_trailing_slash(member_client):
    client, _user, organization = member_client("owner")
    for method, path in contract_paths(organization):
        for form in both_forms(path):
            response = getattr(client, method)(form, {}, format="json")
            # The view answered (200, 201, 202, or 400 for the empty body), never a redirect or 404/405.
            assert response.status_code in {200, 201, 202, 400}, (method, form, response.status_code)
            assert response["Content-Type"].startswith("application/json"), (method, form)


def test_state_changes_answer_with_and_without_a_trailing_slash(member_client):
    client, _user, organization = member_client("owner")
    for form in ("", "/"):
        for method, path in state_change_paths(organization):
            response = getattr(client, method)(f"{path}{form}", {}, format="json")
            assert response.status_code == 200, (method, path + form, response.status_code)
            assert response["Content-Type"].startswith("application/json"), (method, path + form)


def test_another_organizations_ids_answer_404_on_both_forms(member_client):
    client, _user, _organization = member_client("owner")
    _other_client, _other_user, other = member_client("owner")
    for method, path in [*contract_paths(other), *state_change_paths(other)]:
        if path.count("/") < 5:
            continue  # list endpoints carry no id
        for form in both_forms(path):
            response = getattr(client, method)(form, {}, format="json")
            assert response.status_code == 404, (method, form, response.status_code)


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/nope/", "/api/v1/contacts/not-an-id/", "/api/v2/contacts/"])
def test_unknown_api_routes_and_malformed_ids_answer_json_404(member_client, path):
    client, _user, _organization = member_client("owner")
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


def test_unknown_pages_outside_the_api_stay_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
