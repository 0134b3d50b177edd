"""The OpenAPI document and the router stay in step: every route is described, and only those."""

from __future__ import annotations

import pytest
import schemathesis
from aiohttp import web

from metricsd.app import create_app
from metricsd.web.openapi import load_spec

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def full_app(make_config, tmp_path) -> web.Application:
    """Every optional part configured, so every route that can exist is registered."""
    rules = tmp_path / "alerts.yml"
    rules.write_text("groups: []\n")
    return create_app(make_config({
        "ingest": {"tokens": ["t"], "cors_origins": ["https://shop.example"]},
        "admin": {"token": "a"},
        "alerting": {"rules": str(rules)},
        "postgres": {"targets": [{"name": "main", "dsn": "postgresql://u@127.0.0.1:9/db"}]},
    }))


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(path template, method) of every route; HEAD comes with GET, `*` counts as POST."""
    out = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path = f"{path}/{{filename}}"
        method = route.method.lower()
        if method == "head":
            continue
        out.add((path, "post" if method == "*" else method))
    return out


def document_operations() -> set[tuple[str, str]]:
    spec = load_spec()
    return {(path, method) for path, item in spec["paths"].items()
            for method in item if method in METHODS}


def test_every_route_is_in_the_document_and_every_path_is_routed(full_app):
    routed, documented = router_operations(full_app), document_operations()
    assert routed - documented == set(), "routes missing from metricsd/web/openapi.yaml"
    assert documented - routed == set(), "documented operations that no route serves"


def test_the_default_app_routes_nothing_undocumented(make_config):
    assert router_operations(create_app(make_config({}))) <= document_operations()


def test_the_document_is_valid_openapi_3_1():
    spec = load_spec()
    assert spec["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(spec)
    schema.validate()  # the OpenAPI 3.1 meta-schema
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {(o.path, o.method.lower()) for o in operations} == document_operations()
    for operation in operations:
        for status, response in operation.definition.raw["responses"].items():
            assert status.isdigit(), f"{operation.label}: explicit status codes only"
            assert "description" in response or "$ref" in response


async def test_served_document_is_the_file(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config({"admin": {"token": "a"}})))
    resp = await client.get("/openapi.json")  # anonymous even with admin auth configured
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == load_spec()
