"""The admin API's OpenAPI document is the contract its answers keep.

Every endpoint of `ENDPOINTS` is called for real (a control store on SQLite and on PostgreSQL, the
AdminApi through httpx's ASGI transport) and each answer, success and error, is validated against the
schema the served document gives for that status (JSON Schema 2020-12, `$ref`s resolved in the
document). A client built from the document alone (its paths, parameters, bodies and schemas, not the
Python models) drives a whole flow. The document itself validates against the OpenAPI 3.1
meta-schema, and is checked for what a client generator needs beyond it: every `$ref` resolves, every
schema is a valid 2020-12 schema, every path parameter is declared.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi.definitions import OPENAPI_31
from tests.integration.mcp_listing import docs_tools
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.config import RedactionRule, RedactionSettings, Settings
from sluicegate.control.admin_api import ENDPOINTS, AdminApi, Endpoint
from sluicegate.control.audit import Actor
from sluicegate.control.openapi import openapi_document
from sluicegate.control.policies import OperatorPolicy
from sluicegate.control.schemas import KeyIn, McpServerIn, PolicyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.view import ControlView
from sluicegate.proxy.egress import TenantUrls
from sluicegate.spend.local import LocalStore

ACTOR = Actor("test/setup")
SECRET_VALUE = "sk-secret-value-never-shown-0123456789"
DOC_URI = "urn:sluicegate:admin-openapi"
AT = "2026-11-27T09:15:00+00:00"
# The operator's rules for tenant base URLs: `openai` may point at llm.example (and its own origin).
TENANT_URLS = TenantUrls.from_settings(
    Settings.model_validate(
        {
            "providers": {"openai": {"kind": "openai", "api_key": "k"}},
            "upstream": {"tenant_base_urls": {"openai": ["llm.example"]}},
        }
    )
)


# ── validating answers against the document ───────────────────────────────────────────────────


class Contract:
    """The served document, and the check of an answer against it (the only source of schemas)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)

    def operation(self, method: str, path: str) -> dict[str, Any]:
        return self.doc["paths"][path][method.lower()]

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        # A `$ref` of the document's (`#/components/schemas/…`) is resolved in the document.
        if "$ref" in schema and schema["$ref"].startswith("#"):
            schema = {"$ref": DOC_URI + schema["$ref"]}
        return Draft202012Validator(schema, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def check(self, method: str, path: str, response: httpx.Response) -> Any:
        """Validate `response` against what the document declares for its status; returns the body."""
        where = f"{method} {path} -> {response.status_code}: {response.text[:300]}"
        declared = self.operation(method, path)["responses"]
        assert str(response.status_code) in declared, f"undeclared status: {where}"
        content = declared[str(response.status_code)].get("content")
        if content is None:
            assert response.content == b"", where
            return None
        assert response.headers["content-type"] == "application/json", where
        body = response.json()
        errors = sorted(self.validator(content["application/json"]["schema"]).iter_errors(body), key=str)
        assert not errors, f"{where}: {[f'{list(e.absolute_path)}: {e.message}' for e in errors]}"
        return body


# ── the world: two organizations, every kind of row, records to read back ─────────────────────


@dataclass
class World:
    client: httpx.AsyncClient
    store: ControlStore
    api: AdminApi
    contract: Contract
    ids: dict[str, str]
    tokens: dict[str, str]


def _event(n: int, org: str, ws: str, user: str, key: str) -> dict[str, Any]:
    return {
        "id": f"evt{n}",
        "at": AT,
        "org_id": org,
        "workspace_id": ws,
        "user_id": user,
        "key_id": key,
        "request_id": f"req{n}",
        "trace_id": "0af7651916cd43dd8448eb211c80319c" if n else None,
        "run_id": "run-1" if n else None,
        "policy": "redaction",
        "action": "redact" if n == 0 else "monitor",  # a monitor event for the monitoring report
        "direction": "request",
        "entity": "EMAIL_ADDRESS",
        "count": 2,
        "detail": orjson.dumps({"positions": [[3, 20]]}).decode(),
    }


def _ledger(n: int, org: str, ws: str, user: str, key: str) -> dict[str, Any]:
    return {
        "id": f"spd{n}",
        "at": AT,
        "org_id": org,
        "workspace_id": ws,
        "user_id": user if n else None,
        "key_id": key,
        "request_id": f"req{n}",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_tokens": 120,
        "output_tokens": 30 * n,
        "cost_nusd": 45_000 * (n + 1),
    }


@pytest.fixture
async def world(control_settings: ControlSettings) -> AsyncIterator[World]:  # noqa: F811
    store = ControlStore(control_settings)
    await store.open()
    a = await store.create_org(ACTOR, "a")
    a1 = await store.create_workspace(ACTOR, a["id"], "a1")
    user = await store.create_user(ACTOR, a1, "alice")
    key, _ = await store.create_key(ACTOR, a1, KeyIn(name="k", user_id=user["id"]))
    spec = SecretIn(value=SECRET_VALUE, base_url="https://llm.example/v1", project="p")
    await store.set_secret(ACTOR, "workspace", a1["id"], a["id"], "openai", spec)
    await store.set_secret(ACTOR, "org", a["id"], a["id"], "openai", SecretIn(value=SECRET_VALUE))
    server = McpServerIn(url="https://tools.example/mcp", headers={"Authorization": f"Bearer {SECRET_VALUE}"})
    await store.set_mcp_server(ACTOR, a1, "docs", server)
    # Locks above and weaker choices below, so the effective policy shows floors, clamps and raises.
    org_policy = {
        "caps": [{"window": "month", "limit_usd": "10", "locked": True, "thresholds": [50, 90]}],
        "redaction": [{"entities": ["US_SSN"], "action": "block", "locked": True}],
        "custom_patterns": [{"entity": "TICKET", "pattern": "TK-[0-9]{6}"}],
        "loops": [{"detect": "repeat", "max_repeats": 5, "locked": True}],
    }
    await store.set_policy(ACTOR, "org", a["id"], a["id"], PolicyIn.model_validate(org_policy))
    ws_policy = {
        "caps": [{"window": "month", "limit_usd": "50", "mode": "monitor"}],
        "redaction": [{"entities": ["US_SSN"], "action": "monitor", "direction": "request"}],
        "loops": [{"detect": "repeat", "max_repeats": 50, "action": "monitor"}],
    }
    await store.set_policy(ACTOR, "workspace", a1["id"], a["id"], PolicyIn.model_validate(ws_policy))
    events = [_event(n, a["id"], a1["id"], user["id"], key["id"]) for n in range(2)]
    await store.insert_records(events, [_ledger(n, a["id"], a1["id"], user["id"], key["id"]) for n in range(2)])
    b = await store.create_org(ACTOR, "b")
    await store.create_workspace(ACTOR, b["id"], "b1")
    made = {
        "operator": await store.create_admin_token(ACTOR, None, None, "op"),
        "org_a": await store.create_admin_token(ACTOR, a["id"], None, "a"),
        "ws_a1": await store.create_admin_token(ACTOR, a["id"], a1["id"], "a1"),
        "viewer_a": await store.create_admin_token(ACTOR, a["id"], None, "audit", role="viewer"),
    }
    victim, _ = await store.create_admin_token(ACTOR, a["id"], None, "to revoke")
    ids = {"org_id": a["id"], "workspace_id": a1["id"], "user_id": user["id"], "key_id": key["id"]}
    ids |= {"token_id": victim["id"], "provider": "openai", "name": "docs"}
    # What the DELETE rows remove, so the walk keeps its world: an empty org and a workspace, user and key.
    ids["spare_org_id"] = (await store.create_org(ACTOR, "spare"))["id"]
    ids["spare_workspace_id"] = (await store.create_workspace(ACTOR, a["id"], "spare"))["id"]
    ids["spare_user_id"] = (await store.create_user(ACTOR, a1, "spare"))["id"]
    ids["spare_key_id"] = (await store.create_key(ACTOR, a1, KeyIn(name="spare")))[0]["id"]
    locked_cards = RedactionRule(entities=["CREDIT_CARD"], action="block", locked=True)
    view = ControlView(store, operator=OperatorPolicy(rules=(locked_cards,), default_action="redact"))
    await view.refresh()
    api = AdminApi(
        store,
        view,
        run_url="https://traces.example/runs/{run_id}?trace={trace_id}",
        redaction=RedactionSettings(rules=[{"entities": ["EMAIL"], "action": "redact"}]),
    )
    api.caps_status = LocalStore().snapshot  # what a gateway without Redis wires in (real buckets)
    api.base_url_refusal = TENANT_URLS.refusal
    api.mcp_url_refusal = TENANT_URLS.mcp_refusal

    api.mcp_tools = docs_tools(a1["id"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://admin") as client:
        doc = (await client.get("/admin/v1/openapi.json")).json()
        yield World(client, store, api, Contract(doc), ids, {n: t for n, (_, t) in made.items()})
    await api.close()
    await store.close()


def _body(endpoint: Endpoint, ids: dict[str, str]) -> dict[str, Any] | None:
    if endpoint.body is None:
        return None
    name = endpoint.body.__name__
    if name == "KeyIn":
        return {"name": "k2", "user_id": ids["user_id"], "expires_at": "2099-01-01T00:00:00Z"}
    if name == "AdminTokenIn":
        return {"name": "t", "workspace_id": ids["workspace_id"]}
    if name == "SecretIn":
        return {"value": SECRET_VALUE, "base_url": "https://llm.example/v1"}
    if name == "McpServerIn":
        return {"url": "https://tools.example/mcp", "headers": {"Authorization": f"Bearer {SECRET_VALUE}"}}
    if name == "RedactionTryIn":
        return {"text": "write to someone@example.com"}
    if name == "PolicyIn":
        return {
            "caps": [{"window": "day", "limit_usd": "5.25"}],
            "redaction": [{"entities": ["US_SSN"], "action": "block"}],
        }
    return {"name": "n"}


def _path(endpoint: Endpoint, ids: dict[str, str]) -> str:
    # An entity's own DELETE (`/keys/{key_id}`) removes a spare one when the world has it.
    spare = "spare_" if endpoint.method == "DELETE" and re.fullmatch(r"/\w+/{\w+}", endpoint.path) else ""
    return "/admin/v1" + re.sub(r"{(\w+)}", lambda m: ids.get(spare + m.group(1), ids[m.group(1)]), endpoint.path)


async def _call(
    world: World,
    endpoint: Endpoint,
    token: str | None,
    ids: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if "content" not in kwargs:
        kwargs["json"] = _body(endpoint, world.ids)
    path = _path(endpoint, ids or world.ids)
    return await world.client.request(endpoint.method, path, headers=headers, params=query, **kwargs)


def _template(endpoint: Endpoint) -> str:
    return "/admin/v1" + endpoint.path


# ── every endpoint, its success answer ────────────────────────────────────────────────────────


def test_every_endpoint_has_a_response_model() -> None:
    """A new row without a `response` model (or a 204 with one) fails here."""
    for e in ENDPOINTS:
        assert (e.response is None) == (e.status == 204), f"{e.method} {e.path}: response={e.response}"


async def test_every_endpoint_answers_what_the_document_says(world: World) -> None:
    assert world.contract.doc == openapi_document(ENDPOINTS)  # as served at /admin/v1/openapi.json
    # The optional parts of answers: every grouping column of a spend rollup, and run links.
    for path in ("/orgs/{org_id}/spend", "/workspaces/{workspace_id}/spend"):
        endpoint = next(e for e in ENDPOINTS if e.path == path)
        query = {"group_by": "workspace,user,key,model,provider", "bucket": "hour"}
        response = await _call(world, endpoint, world.tokens["org_a"], query=query)
        body = world.contract.check("GET", _template(endpoint), response)
        assert {(r["bucket"], r["user_id"]) for r in body["data"]} == {(AT[:13], None), (AT[:13], world.ids["user_id"])}
        assert body["total_cost_nusd"] == 135_000 and [c["spent_nusd"] for c in body["caps"]] == [0, 0]
    events = await _call(world, next(e for e in ENDPOINTS if e.path == "/orgs/{org_id}/events"), world.tokens["org_a"])
    assert sorted(str(e.get("run_url")) for e in events.json()["data"]) == [
        "None",
        "https://traces.example/runs/run-1?trace=0af7651916cd43dd8448eb211c80319c",
    ]
    # Then every row of the table, in order (its DELETEs last remove spare entities and policies).
    for endpoint in ENDPOINTS:
        operator = endpoint.path == "/orgs" or (endpoint.method == "DELETE" and endpoint.path == "/orgs/{org_id}")
        response = await _call(world, endpoint, world.tokens["operator" if operator else "org_a"])
        assert response.status_code == endpoint.status, (endpoint.method, endpoint.path, response.text)
        body = world.contract.check(endpoint.method, _template(endpoint), response)
        assert SECRET_VALUE not in response.text
        if endpoint.method == "GET" and isinstance(body, dict) and "data" in body:
            assert body["data"], f"{endpoint.path}: an empty list validates nothing"


async def test_the_effective_policy_shows_floors_clamps_and_raises(world: World) -> None:
    endpoint = next(e for e in ENDPOINTS if e.path == "/keys/{key_id}/effective-policy")
    body = world.contract.check("GET", _template(endpoint), await _call(world, endpoint, world.tokens["org_a"]))
    assert [c.get("clamped_from") for c in body["caps"]] == [None, {"limit_nusd": 50_000_000_000, "mode": "monitor"}]
    raised = [r for r in body["redaction"] if r.get("raised_from")]
    assert [(r["entities"], r["raised_from"]["action"], r["floor"]["level"]) for r in raised] == [
        (["US_SSN"], "monitor", "org")
    ]
    assert {r["origin"] for r in body["redaction"]} == {"operator", "org"}
    assert body["custom_patterns"][0]["origin"] == "org"
    [loop] = body["loops"]  # the workspace's laxer loop rule, raised to the org's lock
    assert (loop["max_repeats"], loop["action"], loop["origin"], loop["floor"]["level"]) == (
        5,
        "block",
        "workspace",
        "org",
    )
    assert loop["raised_from"]["rule"]["max_repeats"] == 50


async def test_spend_without_a_spend_store_shows_null_figures(world: World) -> None:
    api = AdminApi(world.store)  # no caps_status wired
    endpoint = next(e for e in ENDPOINTS if e.path == "/orgs/{org_id}/spend")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://admin") as client:
        headers = {"authorization": f"Bearer {world.tokens['org_a']}"}
        response = await client.get(_path(endpoint, world.ids), headers=headers)
    body = world.contract.check("GET", _template(endpoint), response)
    assert body["caps"] and {c["spent_nusd"] for c in body["caps"]} == {None}


# ── every endpoint, its error answers ─────────────────────────────────────────────────────────


def _declared(world: World, endpoint: Endpoint) -> set[int]:
    return {int(s) for s in world.contract.operation(endpoint.method, _template(endpoint))["responses"]}


def _bad_query(endpoint: Endpoint) -> dict[str, str]:
    """A value out of the first query parameter's schema (an integer or a time)."""
    for name, schema in endpoint.query:
        if schema.get("type") == "integer" or schema.get("format") == "date-time":
            return {name: "not-a-number-nor-a-time"}
    raise AssertionError(f"{endpoint.path}: no integer or time parameter")


async def test_every_endpoint_answers_its_errors_as_the_document_says(world: World) -> None:
    seen: dict[int, int] = {}

    async def expect(endpoint: Endpoint, status: int, response: httpx.Response) -> None:
        assert response.status_code == status, (endpoint.method, endpoint.path, status, response.text)
        body = world.contract.check(endpoint.method, _template(endpoint), response)
        assert SECRET_VALUE not in response.text
        if status == 422:
            assert body["error"]["fields"], endpoint.path
        seen[status] = seen.get(status, 0) + 1

    for endpoint in ENDPOINTS:
        declared = _declared(world, endpoint)
        await expect(endpoint, 401, await _call(world, endpoint, None))
        await expect(endpoint, 401, await _call(world, endpoint, "sga-not-a-token"))
        if 403 in declared:  # a workspace admin under /orgs/{org_id}; a viewer asking for a change
            token = world.tokens["ws_a1" if endpoint.path.startswith("/orgs/") else "viewer_a"]
            await expect(endpoint, 403, await _call(world, endpoint, token))
        if 404 in declared:
            missing = {name: "missing0" for name in world.ids} | {"provider": "openai"}
            await expect(endpoint, 404, await _call(world, endpoint, world.tokens["operator"], missing))
        if 422 in declared:
            token = world.tokens["operator"]
            if endpoint.body is not None:
                await expect(endpoint, 422, await _call(world, endpoint, token, content=b"[]"))
                await expect(endpoint, 422, await _call(world, endpoint, token, content=b"{nope"))
            if endpoint.query:
                await expect(endpoint, 422, await _call(world, endpoint, token, query=_bad_query(endpoint)))
            if "{provider}" in endpoint.path:
                bad = world.ids | {"provider": "Not-A-Provider"}
                await expect(endpoint, 422, await _call(world, endpoint, token, bad))
    # 409: a policy weaker than a lock above it (the field names the lock); 400: a refused base_url.
    headers = {"authorization": f"Bearer {world.tokens['org_a']}"}
    for path, body in (
        ("/workspaces/{workspace_id}/policy", {"caps": [{"window": "month", "limit_usd": "11"}]}),
        ("/orgs/{org_id}/policy", {"redaction": [{"entities": ["CREDIT_CARD"], "action": "monitor"}]}),
    ):
        endpoint = next(e for e in ENDPOINTS if e.method == "PUT" and e.path == path)
        response = await world.client.put(_path(endpoint, world.ids), json=body, headers=headers)
        await expect(endpoint, 409, response)
        assert response.json()["error"]["fields"][0]["locked_by"]["level"] in ("org", "operator")
    for endpoint in (e for e in ENDPOINTS if e.method == "PUT" and "{provider}" in e.path):
        body = {"value": SECRET_VALUE, "base_url": "https://evil.example/v1"}
        await expect(endpoint, 400, await world.client.put(_path(endpoint, world.ids), json=body, headers=headers))
    assert set(seen) == {400, 401, 403, 404, 409, 422}


# ── the document itself ───────────────────────────────────────────────────────────────────────


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_is_valid_openapi_3_1() -> None:
    """Against the OpenAPI 3.1 meta-schema (the one schemathesis, in the lock, carries), and by
    schemathesis's own check; a document missing a required part fails both."""
    doc = openapi_document(ENDPOINTS)
    meta = Draft202012Validator(OPENAPI_31)
    assert [e.message for e in meta.iter_errors(doc)] == []
    schemathesis.openapi.from_dict(doc).validate()
    broken = copy.deepcopy(doc)
    del broken["paths"]["/admin/v1/whoami"]["get"]["responses"]["200"]["description"]
    assert [e.message for e in meta.iter_errors(broken)] == ["'description' is a required property"]
    with pytest.raises(Exception, match="description"):
        schemathesis.openapi.from_dict(broken).validate()


def test_the_document_is_complete_for_a_client_generator() -> None:
    """What the meta-schema leaves open and a generator relies on: refs resolve, schemas are valid."""
    doc = openapi_document(ENDPOINTS)
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    schemes = doc["components"]["securitySchemes"]
    refs = set(_refs(doc))
    for ref in refs:
        _pointer(doc, ref)  # resolves (a KeyError otherwise)
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert f"#/components/schemas/{name}" in refs, f"{name} is never used"
    operation_ids = []
    for path, ops in doc["paths"].items():
        in_path = re.findall(r"{(\w+)}", path)
        for method, op in ops.items():
            assert method in ("get", "put", "post", "delete", "patch")
            operation_ids.append(op["operationId"])
            params = op["parameters"]
            assert len({(p["name"], p["in"]) for p in params}) == len(params)
            declared = [p["name"] for p in params if p["in"] == "path"]
            assert declared == in_path, (method, path)
            assert all(p["required"] for p in params if p["in"] == "path")
            for p in params:
                assert p["in"] in ("path", "query") and p["schema"].get("type") in ("string", "integer")
                Draft202012Validator.check_schema(p["schema"])
            assert all(set(s) <= set(schemes) for s in op["security"])
            successes = [s for s in op["responses"] if s.startswith("2")]
            assert len(successes) == 1, (method, path)
            for status, answer in op["responses"].items():
                assert answer["description"]
                if status == "204":
                    assert "content" not in answer
                else:
                    schema = answer["content"]["application/json"]["schema"]
                    assert set(schema) == {"$ref"}, (method, path, status)
                    if not status.startswith("2"):
                        assert schema["$ref"] == "#/components/schemas/Error"
            if "requestBody" in op:
                assert method in ("put", "post", "patch")
                assert set(op["requestBody"]["content"]["application/json"]["schema"]) == {"$ref"}
    assert len(set(operation_ids)) == len(operation_ids)
    # Response schemas refuse fields they do not name, so a leak (a hash, a value) is a failure.
    for name in ("Key", "KeyCreated", "AdminToken", "Secret", "Org"):
        assert doc["components"]["schemas"][name]["additionalProperties"] is False
    assert "key_hash" not in doc["components"]["schemas"]["Key"]["properties"]
    assert "value" not in doc["components"]["schemas"]["Secret"]["properties"]


# ── a client generated from the document drives a whole flow ──────────────────────────────────


class ClientError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status} {error['code']}")
        self.status, self.code = status, error["code"]


class GeneratedClient:
    """Request functions built from the document alone: for each operation its method, path
    template, path and query parameters and body, each checked against the document's schemas on
    the way out, and each answer validated against the schema of its status on the way back."""

    def __init__(self, http: httpx.AsyncClient, contract: Contract, token: str) -> None:
        self.http, self.contract, self.token = http, contract, token
        self.operations: dict[tuple[str, str], Any] = {}
        for path, ops in contract.doc["paths"].items():
            for method, op in ops.items():
                self.operations[(method.upper(), path.removeprefix("/admin/v1"))] = self._build(method, path, op)

    def _build(self, method: str, template: str, op: dict[str, Any]) -> Any:
        params = {p["name"]: p for p in op["parameters"]}
        body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")

        async def call(body: Any = None, token: str | None = None, **args: Any) -> Any:
            unknown = set(args) - set(params)
            assert not unknown, f"{op['operationId']} takes no {unknown}"
            path, query = template, {}
            for name, p in params.items():
                if name not in args:
                    assert not p["required"], f"{op['operationId']} needs {name}"
                    continue
                self.contract.validator(p["schema"]).validate(args[name])
                if p["in"] == "path":
                    path = path.replace("{" + name + "}", str(args[name]))
                else:
                    query[name] = str(args[name])
            if body_schema is not None:
                assert body is not None, f"{op['operationId']} needs a body"
                self.contract.validator(body_schema).validate(body)
            headers = {"authorization": f"Bearer {token or self.token}"}
            response = await self.http.request(method.upper(), path, json=body, params=query, headers=headers)
            result = self.contract.check(method, template, response)
            if response.status_code >= 400:
                raise ClientError(response.status_code, result["error"])
            success = [s for s in op["responses"] if s.startswith("2")]
            assert str(response.status_code) in success
            return result

        call.__name__ = op["operationId"]
        return call

    def __call__(self, method: str, path: str) -> Any:
        return self.operations[(method, path)]


async def test_a_client_generated_from_the_document_drives_a_full_flow(world: World) -> None:
    api = GeneratedClient(world.client, world.contract, world.tokens["operator"])
    org = await api("POST", "/orgs")(body={"name": "acme"})
    ws = await api("POST", "/orgs/{org_id}/workspaces")(org_id=org["id"], body={"name": "prod"})
    made = await api("POST", "/orgs/{org_id}/admin-tokens")(org_id=org["id"], body={"name": "ci"})
    assert await api("GET", "/whoami")(token=made["token"]) == {
        "token_id": made["id"],
        "org_id": org["id"],
        "workspace_id": None,
        "role": "admin",
    }
    api.token = made["token"]  # from here on, as the organization's admin
    user = await api("POST", "/workspaces/{workspace_id}/users")(workspace_id=ws["id"], body={"name": "ada"})
    key = await api("POST", "/workspaces/{workspace_id}/keys")(
        workspace_id=ws["id"], body={"name": "ada's key", "user_id": user["id"], "expires_at": "2099-01-01T00:00:00Z"}
    )
    assert key["key"] and key["user_id"] == user["id"]
    policy = {"caps": [{"window": "day", "limit_usd": "2.50", "locked": True}]}
    assert (await api("PUT", "/orgs/{org_id}/policy")(org_id=org["id"], body=policy))["caps"][0]["limit_usd"] == "2.50"
    await api("PUT", "/keys/{key_id}/policy")(key_id=key["id"], body={"caps": [{"window": "total", "limit_usd": "1"}]})
    with pytest.raises(ClientError) as locked:
        await api("PUT", "/users/{user_id}/policy")(
            user_id=user["id"], body={"caps": [{"window": "day", "limit_usd": "3"}]}
        )
    assert (locked.value.status, locked.value.code) == (409, "policy_locked")
    effective = await api("GET", "/keys/{key_id}/effective-policy")(key_id=key["id"])
    assert [(c["level"], c["limit_nusd"]) for c in effective["caps"]] == [
        ("org", 2_500_000_000),
        ("key", 1_000_000_000),
    ]
    listed = await api("GET", "/workspaces/{workspace_id}/keys")(workspace_id=ws["id"])
    assert [k["id"] for k in listed["data"]] == [key["id"]] and key["key"] not in str(listed)
    await api("PUT", "/workspaces/{workspace_id}/secrets/{provider}")(
        workspace_id=ws["id"], provider="anthropic", body={"value": SECRET_VALUE}
    )
    secrets = await api("GET", "/workspaces/{workspace_id}/secrets")(workspace_id=ws["id"])
    assert [s["provider"] for s in secrets["data"]] == ["anthropic"]
    assert (
        await api("DELETE", "/workspaces/{workspace_id}/secrets/{provider}")(
            workspace_id=ws["id"], provider="anthropic"
        )
        is None
    )
    revoked = await api("POST", "/keys/{key_id}/revoke")(key_id=key["id"])
    assert revoked["revoked_at"] and (await api("GET", "/keys/{key_id}")(key_id=key["id"]))["revoked_at"]
    audit = await api("GET", "/orgs/{org_id}/audit")(org_id=org["id"], limit=1000)
    assert [r["action"] for r in audit["data"]] == [
        "org.create",
        "workspace.create",
        "admin_token.create",
        "user.create",
        "key.create",
        "policy.set",
        "policy.set",
        "secret.set",
        "secret.delete",
        "key.revoke",
    ]
    spend = await api("GET", "/orgs/{org_id}/spend")(org_id=org["id"], group_by="key", bucket="day")
    assert spend["data"] == [] and spend["total_cost_nusd"] == 0
    await api("POST", "/orgs/{org_id}/admin-tokens/{token_id}/revoke")(org_id=org["id"], token_id=made["id"])
    with pytest.raises(ClientError) as gone:
        await api("GET", "/whoami")()
    assert (gone.value.status, gone.value.code) == (401, "unauthenticated")
    # The client checks what it sends against the document too: a bad body never leaves it.
    orgs = len((await api("GET", "/orgs")(token=world.tokens["operator"]))["data"])
    with pytest.raises(ValidationError, match="should be non-empty"):
        await api("POST", "/orgs")(body={"name": ""}, token=world.tokens["operator"])
    assert len((await api("GET", "/orgs")(token=world.tokens["operator"]))["data"]) == orgs
