"""The OpenAPI 3.1 document of the admin API, built from its route table and its pydantic models.

Each row of `admin_api.ENDPOINTS` is one operation: its request body (`body`, a model of
`control.schemas`), its success status and answer (`status`, `response`, a model of
`control.responses`; a 204 has no body) and its error answers, all `{"error": {"code", "message",
"fields"?}}` (the `Error` schema). Every model lands once under `components/schemas` and is named by
`$ref`. The error statuses of an operation are those its shape implies (`error_statuses`) plus the
row's own `errors`.

A new endpoint needs a `response` model (unless it answers 204): the test that calls every endpoint
and validates its answers against this document (tests/integration/test_control_openapi.py) fails
for a row without one. See `control.responses` for how to add one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sluicegate.control.responses import Error
from sluicegate.control.schemas import PROVIDER_PATTERN

if TYPE_CHECKING:
    from sluicegate.control.admin_api import Endpoint

REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "refused by an operator rule (such as a base_url outside the allow-list)",
    401: "no valid admin token",
    403: "the token's scope does not allow this operation",
    404: "not found, or outside the token's scope",
    409: "conflicts with what is stored (such as a lock above this level)",
    422: "invalid input, per field",
    413: "the body is larger than the operation takes",
    502: "an upstream the gateway asked on the caller's behalf failed (such as an MCP server)",
    503: "the gateway cannot do this now (such as a feature turned off, a secret it cannot open)",
}


def error_statuses(e: Endpoint) -> list[int]:
    """The error statuses an operation can answer.

    Every one may be a 401 (no valid token). One naming an entity in its path may be a 404 (missing,
    or outside the token's scope). Under `/orgs/{org_id}`, a workspace admin's token is a 403, and so
    is every change asked by a viewer token. One taking a body, query parameters or a provider in its
    path may be a 422. Anything else (400, 409) is the row's `errors`.
    """
    out = {401, *e.errors}
    if "{" in e.path:
        out.add(404)
    if e.path.startswith("/orgs/") or e.mutates:  # every change is a 403 for a viewer token
        out.add(403)
    if e.body is not None or e.query or "{provider}" in e.path:
        out.add(422)
    return sorted(out)


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}


def openapi_document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    models: set[type[BaseModel]] = {Error}
    for e in endpoints:
        models |= {m for m in (e.body, e.response) if m is not None}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, Any] = {}
    for e in endpoints:
        params: list[dict[str, Any]] = []
        for name in re.findall(r"{(\w+)}", e.path):
            schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64}
            if name == "provider":
                schema = {"type": "string", "pattern": PROVIDER_PATTERN}
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in e.query]
        success: dict[str, Any] = {"description": "no content" if e.status == 204 else "success"}
        if e.response is not None:
            success |= _json(e.response)
        responses = {str(e.status): success}
        responses |= {str(s): {"description": _ERRORS[s]} | _json(Error) for s in error_statuses(e)}
        op: dict[str, Any] = {
            "operationId": e.handler.__name__ + "_" + re.sub(r"\W+", "_", e.path).strip("_"),
            "summary": e.summary,
            "parameters": params,
            "security": [{"adminToken": []}],
            "responses": responses,
        }
        if e.body is not None:
            op["requestBody"] = {"required": True} | _json(e.body)
        paths.setdefault("/admin/v1" + e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "sluicegate admin API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
