"""The generated OpenAPI document is valid and agrees with the route table and field declarations."""

import openapi_spec_validator

from nuage_ryu.directory import openapi
from nuage_ryu.directory.api import ROUTES
from nuage_ryu.directory.model import FIELDS


def test_document_is_valid_openapi_3():
    openapi_spec_validator.validate(openapi.build_document(ROUTES))


def test_create_schemas_follow_field_access():
    schemas = openapi.component_schemas()
    vport = schemas["CreateVPort"]
    assert vport["required"] == ["name"]
    assert "status" not in vport["properties"] and "gateway" not in vport["properties"]
    assert vport["additionalProperties"] is False
    assert schemas["CreateACL"]["required"] == ["priority"]
    assert schemas["Domain"]["properties"]["vni"]["maximum"] == 16777215
    for kind, fields in FIELDS.items():
        name = openapi._cap(kind)
        assert set(schemas[name]["required"]) == {f.name for f in fields}


def test_every_operation_documents_its_errors():
    doc = openapi.build_document(ROUTES)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or path.endswith("openapi.json"):
                continue
            assert {"400", "401", "404"} <= set(op["responses"]), (method, path)
            if method in ("post", "put"):
                assert "requestBody" in op


def test_counters_and_warnings_are_described():
    schemas = openapi.component_schemas()
    counters = schemas["ACL"]["properties"]["counters"]
    assert counters["required"] == ["packets", "bytes", "by_host"]
    assert counters["properties"]["by_host"]["additionalProperties"]["required"] == ["packets", "bytes"]
    assert schemas["Domain"]["properties"]["default_action_counters"]["properties"] == counters["properties"]
    assert "counters" not in schemas["CreateACL"]["properties"]
    assert "default_action_counters" not in schemas["CreateDomain"]["properties"]
    warning = schemas["ACL"]["properties"]["warnings"]["items"]
    assert set(warning["required"]) == {"code", "message", "rule", "by"}
