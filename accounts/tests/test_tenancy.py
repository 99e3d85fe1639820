"""The tenancy mechanism, proven on a real tenant-owned resource (tags)."""

import uuid

import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from conftest import bearer_client
from contacts.models import Tag
from contacts.tests.factories import TagFactory

pytestmark = pytest.mark.django_db

TAGS = "/api/v1/tags/"


def test_another_organizations_tag_answers_404(member_client):
    client, _, _ = member_client(Role.MANAGER)
    foreign = TagFactory(name="theirs")
    url = f"{TAGS}{foreign.pk}/"
    assert client.get(url).status_code == 404
    assert client.patch(url, {"name": "mine now"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "theirs"


def test_list_shows_only_the_requests_organization(member_client):
    client, _, organization = member_client(Role.VIEWER)
    mine = TagFactory(organization=organization, name="mine")
    TagFactory(name="theirs")
    response = client.get(TAGS)
    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert [row["id"] for row in response.json()["results"]] == [str(mine.pk)]


def test_viewer_reads_but_gets_403_on_writes(member_client):
    client, _, organization = member_client(Role.VIEWER)
    tag = TagFactory(organization=organization, name="vip")
    assert client.get(f"{TAGS}{tag.pk}/").status_code == 200
    assert client.post(TAGS, {"name": "new"}, format="json").status_code == 403
    assert client.patch(f"{TAGS}{tag.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{TAGS}{tag.pk}/").status_code == 403
    assert list(Tag.objects.values_list("name", flat=True)) == ["vip"]


def test_agent_cannot_reach_the_audience(member_client):
    client, _, _ = member_client(Role.AGENT)
    assert client.get(TAGS).status_code == 403


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MANAGER])
def test_marketing_roles_create_tags(member_client, role):
    client, _, organization = member_client(role)
    response = client.post(TAGS, {"name": "Newsletter"}, format="json")
    assert response.status_code == 201, response.content
    assert Tag.objects.get(pk=response.json()["id"]).organization == organization


def test_organization_in_the_body_is_ignored(member_client):
    client, _, organization = member_client(Role.MANAGER)
    other = OrganizationFactory()
    response = client.post(TAGS, {"name": "sneaky", "organization": str(other.pk)}, format="json")
    assert response.status_code == 201
    assert Tag.objects.get(name="sneaky").organization == organization
    assert not Tag.objects.filter(organization=other).exists()


def test_duplicate_tag_name_is_400_naming_the_field(member_client):
    client, _, organization = member_client(Role.MANAGER)
    TagFactory(organization=organization, name="VIP")
    response = client.post(TAGS, {"name": "vip"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    # Another organization may use the same name.
    other_client, _, _ = member_client(Role.MANAGER)
    assert other_client.post(TAGS, {"name": "vip"}, format="json").status_code == 201


def test_x_organization_header_picks_the_membership(db):
    first, second = OrganizationFactory(), OrganizationFactory()
    membership = MembershipFactory(organization=first, role=Role.VIEWER)
    MembershipFactory(user=membership.user, organization=second, role=Role.MANAGER)
    TagFactory(organization=first, name="in-first")
    TagFactory(organization=second, name="in-second")

    default = bearer_client(membership.user)  # no header: the first membership
    assert [t["name"] for t in default.get(TAGS).json()["results"]] == ["in-first"]
    assert default.post(TAGS, {"name": "x"}, format="json").status_code == 403  # viewer there

    chosen = bearer_client(membership.user, second)
    assert [t["name"] for t in chosen.get(TAGS).json()["results"]] == ["in-second"]
    assert chosen.post(TAGS, {"name": "x"}, format="json").status_code == 201  # manager here


def test_x_organization_of_a_stranger_is_403_and_malformed_is_400(db):
    membership = MembershipFactory(role=Role.OWNER)
    stranger_org = OrganizationFactory()
    client = bearer_client(membership.user, stranger_org)
    assert client.get(TAGS).status_code == 403

    client.defaults["HTTP_X_ORGANIZATION"] = "not-a-uuid"
    response = client.get(TAGS)
    assert response.status_code == 400
    assert "X-Organization" in response.json()

    client.defaults["HTTP_X_ORGANIZATION"] = str(uuid.uuid4())
    assert client.get(TAGS).status_code == 403


def test_user_without_membership_is_403(db):
    from accounts.tests.factories import UserFactory

    client = bearer_client(UserFactory())
    assert client.get(TAGS).status_code == 403


def test_tag_list_query_count_does_not_grow_with_rows(member_client, django_assert_max_num_queries):
    client, _, organization = member_client(Role.MANAGER)
    for n in range(30):
        TagFactory(organization=organization, name=f"t{n}")
    with django_assert_max_num_queries(4):
        assert client.get(TAGS).status_code == 200
