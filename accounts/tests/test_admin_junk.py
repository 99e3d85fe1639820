"""Whatever is typed into an admin form of the back office, the answer is a page, never a server
error, and nothing is saved from junk. Every add and change form of the accounts, contacts,
templates and callbacks admins is read from the page itself (every input, select and textarea),
filled with junk and posted."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.forms.models import model_to_dict

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from callbacks.tests.factories import CallbackRequestFactory
from contacts.models import Segment
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory, TagFactory
from templates_app.tests.factories import LayoutFactory, MessageTemplateFactory

pytestmark = pytest.mark.django_db

APPS = ("accounts", "contacts", "templates_app", "campaigns", "tracking", "analytics", "callbacks")
KEEP_SUFFIXES = ("-TOTAL_FORMS", "-INITIAL_FORMS", "-MIN_NUM_FORMS", "-MAX_NUM_FORMS")
JUNK_TEXTS = [
    "junk",
    '{"all": [{"field": "attributes.a b", "op": "nope"}]}',
    '{"any": []}',
    "-99999999999999999999999",
    "9999-99-99 99:99",
    "<script>alert(1)</script>{{ contact.",
    '[1, {"x": }',
    "",
]


class FormFields(HTMLParser):
    """The names and choices of every field of the page's main form."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, dict] = {}
        self._select: str | None = None
        self.in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id", "").endswith("_form"):
            self.in_form = True
        if not self.in_form:
            return
        name = attrs.get("name")
        if tag in ("input", "textarea") and name:
            kind = attrs.get("type", "text") if tag == "input" else "textarea"
            if kind in ("submit", "button", "reset", "image"):
                return
            self.fields.setdefault(name, {"kind": kind, "value": attrs.get("value", ""), "options": []})
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, {"kind": "select", "value": "", "options": []})
        elif tag == "option" and self._select:
            self.fields[self._select]["options"].append(attrs.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        if tag == "form":
            self.in_form = False


def read_form(html: str) -> dict[str, dict]:
    parser = FormFields()
    parser.feed(html)
    return parser.fields


def junk_payload(fields: dict[str, dict], junk: str, *, valid_choices: bool) -> dict[str, str]:
    data = {"_save": "Save"}
    for name, field in fields.items():
        if name == "csrfmiddlewaretoken" or name.endswith(KEEP_SUFFIXES):
            data[name] = field["value"]
        elif field["kind"] == "select":
            options = [option for option in field["options"] if option]
            data[name] = options[0] if valid_choices and options else junk
        elif field["kind"] == "checkbox":
            data[name] = "on"
        else:
            data[name] = junk
    return data


def snapshot(model):
    return sorted(
        (repr(sorted(model_to_dict(obj).items(), key=lambda item: item[0])) for obj in model._default_manager.all()),
    )


def model_admins():
    return [
        (model, model_admin) for model, model_admin in admin.site._registry.items() if model._meta.app_label in APPS
    ]


@pytest.fixture
def world():
    organization = OrganizationFactory(name="Acme")
    MembershipFactory(organization=organization, role=Role.OWNER)
    MembershipFactory(organization=organization, role=Role.AGENT)
    tag = TagFactory(organization=organization, name="vip")
    contact_list = ContactListFactory(organization=organization)
    ContactFactory(organization=organization, tags=[tag], lists=[contact_list])
    SegmentFactory(organization=organization)
    LayoutFactory(organization=organization)
    MessageTemplateFactory(organization=organization)
    CallbackRequestFactory(organization=organization)
    return organization


def test_every_admin_form_answers_junk_without_a_server_error_and_saves_nothing(client, world):
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)
    checked, failures = [], []
    for model, _model_admin in model_admins():
        opts = model._meta
        pages = [f"/admin/{opts.app_label}/{opts.model_name}/add/"]
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append(f"/admin/{opts.app_label}/{opts.model_name}/{first.pk}/change/")
        for url in pages:
            page = client.get(url)
            assert page.status_code in (200, 302, 403), (url, page.status_code)
            if page.status_code != 200:
                continue
            fields = read_form(page.content.decode())
            if not any(not name.endswith(KEEP_SUFFIXES) for name in fields if name != "csrfmiddlewaretoken"):
                continue  # a read-only page
            checked.append(url)
            for junk in JUNK_TEXTS:
                for valid_choices in (False, True):
                    before = snapshot(model)
                    try:
                        response = client.post(url, junk_payload(fields, junk, valid_choices=valid_choices))
                    except Exception as exc:  # the test client re-raises a view's exception
                        failures.append((url, junk, valid_choices, repr(exc)[:300]))
                        continue
                    if response.status_code >= 500:
                        failures.append((url, junk, valid_choices, response.status_code))
                    elif snapshot(model) != before and (response.status_code != 302 or not valid_choices):
                        # A refused form, or one whose choices are junk, saves nothing. (With real choices,
                        # free text such as a tag named "junk" may well be accepted, with a redirect.)
                        failures.append((url, junk, valid_choices, "saved", response.status_code))
    assert not failures, "\n".join(map(str, failures))
    expected = {
        "/admin/contacts/contact/add/",
        "/admin/contacts/segment/add/",
        "/admin/templates_app/messagetemplate/add/",
        "/admin/accounts/organization/add/",
    }
    assert expected <= set(checked), checked


def test_an_invalid_segment_rule_is_an_error_on_the_form(client, world):
    manager = MembershipFactory(organization=world, role=Role.MANAGER, user__is_staff=True).user
    client.login(username=manager.email, password=PASSWORD)
    response = client.post(
        "/admin/contacts/segment/add/",
        {
            "organization": str(world.pk),
            "name": "Bad",
            "rules": '{"all": [{"field": "status", "op": "gt", "value": "x"}]}',
        },
    )
    assert response.status_code == 200
    assert "unknown operator" in response.content.decode()
    assert not Segment.objects.filter(name="Bad").exists()
