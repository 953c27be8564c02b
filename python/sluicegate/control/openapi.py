"""The OpenAPI 3.1 document of the admin API, built from its route table and its pydantic models."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

from sluicegate.control.schemas import PROVIDER_PATTERN

if TYPE_CHECKING:
    from sluicegate.control.admin_api import Endpoint

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["code", "message"],
        }
    },
}


def openapi_document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    models = sorted({e.body for e in endpoints if e.body is not None}, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    paths: dict[str, Any] = {}
    for e in endpoints:
        params: list[dict[str, Any]] = []
        for name in re.findall(r"{(\w+)}", e.path):
            schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64}
            if name == "provider":
                schema = {"type": "string", "pattern": PROVIDER_PATTERN}
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in e.query]
        op: dict[str, Any] = {
            "operationId": e.handler.__name__ + "_" + re.sub(r"\W+", "_", e.path).strip("_"),
            "summary": e.summary,
            "parameters": params,
            "security": [{"adminToken": []}],
            "responses": {
                str(e.status): {"description": "success"}
                | ({} if e.status == 204 else {"content": {"application/json": {"schema": {"type": "object"}}}}),
                **{
                    str(s): {
                        "description": d,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                    for s, d in ((401, "no valid token"), (403, "out of scope"), (404, "not found or out of scope"))
                },
                **(
                    {
                        "400": {
                            "description": "refused by an operator rule (such as a base_url outside the allow-list)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        },
                        "409": {"description": "conflict"},
                    }
                    if e.body is not None
                    else {}
                ),
                "422": {
                    "description": "invalid input, per field",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        }
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{e.body.__name__}"}}},
            }
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
