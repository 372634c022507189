"""The OpenAPI contract holds: schemathesis calls every operation with generated inputs (a fixed seed
and budget) and checks that no answer is a 5xx, every status is documented, and every body and
content type matches its documented schema; 405s list the right methods in ``Allow``."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi import checks as oapi

from app.openapi import ERRORS, statuses
from tests.api.conftest import open_client

CHECKS = [
    schemathesis.checks.not_a_server_error,
    oapi.status_code_conformance,
    oapi.response_schema_conformance,
    oapi.content_type_conformance,
    oapi.response_headers_conformance,
    oapi.allow_header_conformance,
]
EXAMPLES = 12  # per operation: the whole contract in about a minute on this machine


@pytest.fixture
def api_schema(settings):
    with open_client(settings) as client:
        yield schemathesis.openapi.from_asgi("/openapi.json", client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case):
    case.call_and_validate(headers={"Host": "testserver"}, checks=CHECKS)


def test_every_route_declares_its_statuses(client):
    paths = client.get("/openapi.json").json()["paths"]
    operations = {(method, path) for path, ops in paths.items() for method in ops}
    assert operations == set(ERRORS), "add a row to app.openapi.ERRORS for each new operation"
    post = paths["/api/v1/models"]["post"]["responses"]
    assert sorted(int(code) for code in post if code.startswith(("4", "5"))) == statuses("post", "/api/v1/models")
    assert post["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in post["503"]["headers"]


def test_model_creation_says_exactly_one_source(client):
    schema_ = client.get("/openapi.json").json()["components"]["schemas"]["CreateModel"]
    assert schema_["oneOf"] == [{"required": ["preset"]}, {"required": ["spec"]}, {"required": ["from"]}]
    r = client.post("/api/v1/models", json={"preset": "tiny-vgg", "from": "tiny-vgg-shapes"})
    assert r.status_code == 422 and r.json() == {"detail": "give exactly one of preset, spec or from"}


@pytest.mark.parametrize("method, path, allow", [
    ("OPTIONS", "/api/v1/models", "GET, HEAD, POST"),
    ("PUT", "/api/v1/models/some-id", "DELETE, GET, HEAD, PATCH"),
    ("DELETE", "/api/v1/presets", "GET, HEAD"),
])
def test_405_lists_every_method_of_the_path(client, method, path, allow):
    r = client.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert allow in r.json()["detail"]
