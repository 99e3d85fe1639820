"""Campaign settings are bounded: absurd throttles are a 400 naming the field, never a plan that overflows."""

import pytest

from campaigns.tests.factories import EmailTemplateFactory
from contacts.tests.factories import ContactListFactory


@pytest.mark.django_db
def test_huge_throttle_is_a_400_naming_it(member_client):
    client, _user, org = member_client("owner")
    template = EmailTemplateFactory(organization=org)
    contact_list = ContactListFactory(organization=org)
    body = {
        "name": "x",
        "channel": "email",
        "template": str(template.pk),
        "audience": {"lists": [str(contact_list.pk)]},
    }
    response = client.post(
        "/api/v1/campaigns/", {**body, "throttle": {"per_domain_interval_minutes": 10**12}}, format="json"
    )
    assert response.status_code == 400
    assert "throttle.per_domain_interval_minutes" in response.json()
