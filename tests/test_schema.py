import json

import pytest
from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.json"
    # --fail-on-warn turns every drf-spectacular warning or error into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(out))
    schema = json.loads(out.read_text())
    paths = schema["paths"]
    for path in ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/me"]:
        assert path in paths
    assert "/api/v1/members/" in paths
    tag_list_params = {p["name"] for p in paths["/api/v1/tags/"]["get"]["parameters"]}
    assert {"X-Organization", "page", "page_size"} <= tag_list_params


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def _generate() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def test_operation_ids_are_unique_and_stable():
    first = {(m, p): op["operationId"] for m, p, op in _operations(_generate())}
    second = {(m, p): op["operationId"] for m, p, op in _operations(_generate())}
    assert first == second
    assert len(set(first.values())) == len(first), "two operations share an operationId"


def test_every_operation_documents_its_errors():
    schema = _generate()
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), (method, path)
        secured = operation.get("security") and {} not in operation["security"]
        if secured:
            assert "401" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert responses["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ValidationError"
            }, (method, path)
        for code, response in responses.items():
            if code >= "400":
                assert response["content"]["application/json"]["schema"]["$ref"].endswith(
                    ("/ErrorDetail", "/ValidationError")
                ), (method, path, code)
    paths = schema["paths"]
    assert "403" in paths["/api/v1/contacts/"]["get"]["responses"]
    assert "429" in paths["/api/v1/auth/login"]["post"]["responses"]
    assert "401" in paths["/api/v1/auth/login"]["post"]["responses"]
    assert "401" not in paths["/api/v1/auth/register"]["post"]["responses"]
    validation = schema["components"]["schemas"]["ValidationError"]
    assert validation["properties"]["non_field_errors"] == {"type": "array", "items": {"type": "string"}}
    assert schema["components"]["schemas"]["ErrorDetail"]["required"] == ["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/api/v1/campaigns/{id}/"),
        ("DELETE", "/api/v1/campaigns/{id}/"),
        ("POST", "/api/v1/campaigns/{id}/launch/"),
        ("POST", "/api/v1/campaigns/{id}/pause/"),
        ("POST", "/api/v1/campaigns/{id}/resume/"),
        ("POST", "/api/v1/campaigns/{id}/cancel/"),
        ("POST", "/api/v1/campaigns/{id}/ab-winner/"),
        ("POST", "/api/v1/messages/{id}/resend/"),
        ("PATCH", "/api/v1/sequences/{id}/"),
        ("DELETE", "/api/v1/sequences/{id}/"),
        ("POST", "/api/v1/sequences/{id}/activate/"),
        ("POST", "/api/v1/sequences/{id}/pause/"),
        ("POST", "/api/v1/sequences/{id}/archive/"),
        ("POST", "/api/v1/sequences/{id}/enroll/"),
        ("POST", "/api/v1/enrollments/{id}/stop/"),
        ("POST", "/api/v1/callbacks/{id}/status/"),
        ("POST", "/api/v1/callbacks/{id}/complete/"),
        ("POST", "/api/v1/callbacks/{id}/assign/"),
        ("DELETE", "/api/v1/members/{id}/"),
        ("DELETE", "/api/v1/templates/{id}/"),
        ("DELETE", "/api/v1/sending-domains/{id}/"),
    ],
)
def test_illegal_transitions_document_409(method, path):
    operation = _generate()["paths"][path][method.lower()]
    assert operation["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorDetail"
    }
    # The success response is still there next to it.
    assert any(code in operation["responses"] for code in ("200", "202", "204"))


def test_campaign_settings_are_typed_components():
    schemas = _generate()["components"]["schemas"]
    campaign = schemas["CampaignRequest"]["properties"]
    for name, component in [
        ("audience", "AudienceRequest"),
        ("schedule", "ScheduleRequest"),
        ("throttle", "ThrottleRequest"),
        ("followup", "FollowupRequest"),
        ("ab_test", "ABTestRequest"),
    ]:
        assert campaign[name] == {"$ref": f"#/components/schemas/{component}"}, name
    audience = schemas["AudienceRequest"]
    assert audience["additionalProperties"] is False
    assert audience["properties"]["exclude_recent_days"]["maximum"] == 3650
    ab_test = schemas["ABTestRequest"]["properties"]
    assert ab_test["test_fraction"]["exclusiveMaximum"] is True
    assert ab_test["wait_hours"]["maximum"] == 720
    assert schemas["MetricEnum"]["enum"] == ["open_rate", "click_rate"]
    window = schemas["SendingWindowRequest"]
    assert sorted(window["required"]) == ["end", "start"]
    assert window["properties"]["days"]["items"] == {"type": "integer", "maximum": 6, "minimum": 0}
    throttle = schemas["ThrottleRequest"]["properties"]
    assert throttle["per_domain_interval_minutes"]["maximum"] == 7 * 24 * 60
    followup = schemas["FollowupRequest"]["properties"]
    assert followup["days"] == {"type": "integer", "maximum": 90, "minimum": 1, "description": "Days after the first."}


def test_sequence_and_segment_json_is_typed():
    schema = _generate()
    schemas = schema["components"]["schemas"]
    write = schemas["SequenceWriteRequest"]["properties"]
    assert write["trigger"]["allOf"][0] == {"$ref": "#/components/schemas/SequenceTriggerRequest"}
    assert schemas["SequenceSettingsRequest"]["additionalProperties"] is False
    assert schemas["SequenceSettingsRequest"]["properties"]["max_new_per_day"]["maximum"] == 10_000_000
    assert schemas["StepConditionRequest"]["properties"]["rules"]["allOf"] == [
        {"$ref": "#/components/schemas/SegmentRule"}
    ]
    assert schemas["SegmentRequest"]["properties"]["rules"] == {"$ref": "#/components/schemas/SegmentRule"}
    rule = schemas["SegmentRule"]
    assert {"$ref": "#/components/schemas/SegmentCondition"} in rule["anyOf"]
    assert schemas["SegmentCondition"]["properties"]["op"] == {"$ref": "#/components/schemas/SegmentOperatorEnum"}
    assert {"eq", "contains", "before", "did_not"} <= set(schemas["SegmentOperatorEnum"]["enum"])
    assert schemas["ContactRequest"]["properties"]["attributes"]["type"] == "object"
    assert schemas["FrequencyCap"]["properties"]["per_day"]["maximum"] == 1000


def test_contact_import_documents_its_multipart_form():
    operation = _generate()["paths"]["/api/v1/contacts/import/"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form == {"$ref": "#/components/schemas/ImportUploadRequest"}
    upload = _generate()["components"]["schemas"]["ImportUploadRequest"]
    assert upload["properties"]["file"]["format"] == "binary"
    assert {"file", "tags", "list", "event"} <= set(upload["properties"])
    assert upload["required"] == ["file"]


def test_bearer_security_scheme():
    schema = _generate()
    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert schema["paths"]["/api/v1/contacts/"]["get"]["security"] == [{"jwtAuth": []}]
