"""The admin API under `/admin/v1/…`: JSON in and out, scoped tokens, one audit row per change.

Tokens (`Authorization: Bearer sga-…`) are scoped:

- an operator token (no org) may create organizations and sees all of them;
- an org admin token sees its organization, its workspaces and everything in them;
- a workspace admin token sees only its workspace (users, keys, secrets, policy).

and have a role: `admin` (the default) or `viewer`, which reads everything its scope covers and
changes nothing (every endpoint that `mutates` is a 403). A token past its `expires_at` is a 401.

Across that line nothing is readable or changeable: an entity of another organization or another
workspace is a 404 (its existence is not confirmed); an org-level operation asked of a workspace
admin is a 403. Both are audit rows naming the token (`admin.access_denied`, rate-limited like failed
sign-ins). Bad input is a 422 naming each field at fault; no input makes a 500.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.config import RedactionSettings
from sluicegate.control import responses as res
from sluicegate.control.audit import Actor
from sluicegate.control.keys import hash_key, same_hash
from sluicegate.control.models import (
    admin_tokens,
    api_keys,
    audit_log,
    orgs,
    policy_events,
    spend_ledger,
    users,
    workspaces,
)
from sluicegate.control.oidc import SESSION_COOKIE, STATE_COOKIE, SignInError, Sso, csrf_ok
from sluicegate.control.policies import (
    LEVELS,
    Chain,
    OperatorPolicy,
    chain_of,
    effective,
    floors_for,
    violations,
)
from sluicegate.control.schemas import (
    MCP_SERVER_PATTERN,
    PROVIDER_PATTERN,
    TRY_TEXT_BYTES,
    AdminTokenIn,
    KeyIn,
    KeyPatch,
    KeyRotateIn,
    Level,
    McpServerIn,
    OrgIn,
    OrgPatch,
    PolicyIn,
    RedactionTryIn,
    SecretIn,
    UserIn,
    UserPatch,
    WorkspaceIn,
    WorkspacePatch,
    iso,
)
from sluicegate.control.store import Conflict, ControlStore, Gone, Page, page_order, public_key, record_where
from sluicegate.control.system_events import AccessDenials, AuthFailures
from sluicegate.control.view import ControlView
from sluicegate.forwarded import TrustedProxies, parse_address
from sluicegate.spend.caps import CapLine
from sluicegate.spend.money import format_usd

log = logging.getLogger("sluicegate.control.admin")
PREFIX = "/admin/v1"


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, fields: list[dict[str, Any]] | None = None, denied: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields
        self.denied = denied  # outside the token's scope: an audit row (`AccessDenials`)


def json_response(body: Any, status: int = 200, request_id: str = "") -> Response:
    headers = {"x-request-id": request_id} if request_id else None
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def _hidden(what: str) -> ApiError:
    """The 404 of an entity outside the token's scope: the same answer as a missing one."""
    return ApiError(404, "not_found", f"no such {what}", denied=True)


def _forbidden() -> ApiError:
    return ApiError(403, "forbidden", "this admin token's scope does not allow this operation", denied=True)


def _read_only() -> ApiError:
    return ApiError(403, "forbidden", "this admin token is a viewer: it changes nothing", denied=True)


TOUCH_INTERVAL_S = 60.0  # an admin token's last use is written at most this often


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of an admin token: an operator (no org), an org admin, or a workspace admin; or a
    console user signed in with single sign-on (`sso`: `sso/<issuer host>/<sub>`, also its token_id)."""

    token_id: str
    org_id: str | None
    workspace_id: str | None
    role: str = "admin"  # or "viewer"
    sso: str | None = None

    @property
    def actor(self) -> str:
        return self.sso if self.sso is not None else f"admin_token/{self.token_id}"


@dataclass(slots=True)
class Ctx:
    request: Request
    principal: Principal
    actor: Actor
    store: ControlStore
    view: ControlView | None
    params: dict[str, str]
    body: Any = None
    caps_status: CapsStatus | None = None
    run_url: str = ""
    base_url_refusal: BaseUrlRefusal | None = None
    redaction: RedactionSettings | None = None
    mcp_url_refusal: McpUrlRefusal | None = None
    routes_status: RoutesStatus | None = None
    mcp_tools: McpTools | None = None


Handler = Callable[[Ctx], Awaitable[Response]]
CapsStatus = Callable[[CapLine], Awaitable[tuple[int, int]]]  # (spent, reserved) of a cap's current window
# Why a tenant may not set a base URL for a provider (`proxy.egress.TenantUrls.refusal`), or None.
BaseUrlRefusal = Callable[[str, str], str | None]
McpUrlRefusal = Callable[[str], str | None]  # why a workspace may not register an MCP server's URL
# A workspace's MCP server's tools as the gateway's own client lists them (`McpProxy.upstream_tools`).
McpTools = Callable[[str, str], Awaitable[tuple[Any, list[dict[str, Any]]]]]
RoutesStatus = Callable[[], list[dict[str, Any]]]  # the gateway's routes and breakers (`proxy.routing.Routes.status`)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operation: the route table is also the OpenAPI document and the scope test's table.

    `response` is the model (`control.responses`) of the success answer's body (None only for a
    204); `errors` are the error statuses it can answer beyond those its shape implies
    (`openapi.error_statuses`: 401 always, 404 with a path id, 403 under an org, 422 with input).
    """

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    status: int = 200
    mutates: bool = False
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    response: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()


# ── scope checks ──────────────────────────────────────────────────────────────────────────────


async def org_of(ctx: Ctx, org_id: str) -> dict[str, Any]:
    p = ctx.principal
    if p.org_id is not None and p.org_id != org_id:
        raise _hidden("organization")
    row = await ctx.store.one(orgs, org_id)
    if row is None:
        raise _not_found("organization")
    if p.workspace_id is not None:
        raise _forbidden()
    return row


def _in_scope(p: Principal, org_id: str, workspace_id: str) -> bool:
    if p.org_id is not None and p.org_id != org_id:
        return False
    return p.workspace_id is None or p.workspace_id == workspace_id


async def workspace_of(ctx: Ctx, workspace_id: str) -> dict[str, Any]:
    row = await ctx.store.one(workspaces, workspace_id)
    if row is None:
        raise _not_found("workspace")
    if not _in_scope(ctx.principal, row["org_id"], row["id"]):
        raise _hidden("workspace")
    return row


async def user_of(ctx: Ctx, user_id: str) -> dict[str, Any]:
    row = await ctx.store.one(users, user_id)
    if row is None:
        raise _not_found("user")
    if not _in_scope(ctx.principal, row["org_id"], row["workspace_id"]):
        raise _hidden("user")
    return row


async def key_of(ctx: Ctx, key_id: str) -> dict[str, Any]:
    row = await ctx.store.one(api_keys, key_id)
    if row is None:
        raise _not_found("key")
    if not _in_scope(ctx.principal, row["org_id"], row["workspace_id"]):
        raise _hidden("key")
    return row


async def row_of(ctx: Ctx, level: str, entity_id: str) -> dict[str, Any]:
    """The row of an org, workspace, user or key, scope-checked."""
    finder = {"org": org_of, "workspace": workspace_of, "user": user_of, "key": key_of}[level]
    return await finder(ctx, entity_id)


async def entity_of(ctx: Ctx, level: str, entity_id: str) -> tuple[str, str]:
    """(entity id, org id) of a policy target, scope-checked."""
    row = await row_of(ctx, level, entity_id)
    return row["id"], row["id"] if level == "org" else row["org_id"]


def _operator(ctx: Ctx) -> OperatorPolicy:
    return ctx.view.operator if ctx.view is not None else OperatorPolicy()


# ── handlers ──────────────────────────────────────────────────────────────────────────────────


async def whoami(ctx: Ctx) -> Response:
    p = ctx.principal
    return json_response({"token_id": p.token_id, "org_id": p.org_id, "workspace_id": p.workspace_id, "role": p.role})


async def routes_status(ctx: Ctx) -> Response:
    """The operator's routes are no tenant's data, and their deployments' names are in every routed
    answer's `x-sluicegate-deployment`: any token may read them."""
    status = ctx.routes_status
    return json_response({"routes": status() if status is not None else []})


async def list_orgs(ctx: Ctx) -> Response:
    org_id = ctx.principal.org_id
    return await _list(ctx, orgs, [orgs.c.id == org_id] if org_id is not None else [])


async def create_org(ctx: Ctx) -> Response:
    if ctx.principal.org_id is not None:
        raise _forbidden()
    spec: OrgIn = ctx.body
    return json_response(await ctx.store.create_org(ctx.actor, spec.name, spec.description, spec.tags), 201)


async def get_org(ctx: Ctx) -> Response:
    return json_response(await org_of(ctx, ctx.params["org_id"]))


async def list_workspaces(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    return await _list(ctx, workspaces, [workspaces.c.org_id == org["id"]])


async def create_workspace(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    spec: WorkspaceIn = ctx.body
    row = await ctx.store.create_workspace(ctx.actor, org["id"], spec.name, spec.description, spec.tags)
    return json_response(row, 201)


async def create_admin_token(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    spec: AdminTokenIn = ctx.body
    if spec.workspace_id is not None:
        ws = await ctx.store.one(workspaces, spec.workspace_id)
        if ws is None or ws["org_id"] != org["id"]:
            raise ApiError(422, "validation_error", "invalid body", [_field("workspace_id", "no such workspace")])
    row, token = await ctx.store.create_admin_token(
        ctx.actor, org["id"], spec.workspace_id, spec.name, spec.role, iso(spec.expires_at)
    )
    return json_response({**row, "token": token}, 201)


def _public_token(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "token_hash"}


async def list_admin_tokens(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    return await _list(ctx, admin_tokens, [admin_tokens.c.org_id == org["id"]], _public_token)


async def revoke_admin_token(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    token = await ctx.store.one(admin_tokens, ctx.params["token_id"])
    if token is None:
        raise _not_found("admin token")
    if token["org_id"] != org["id"]:
        raise _hidden("admin token")
    return json_response(await ctx.store.revoke_admin_token(ctx.actor, token))


async def get_workspace(ctx: Ctx) -> Response:
    return json_response(await workspace_of(ctx, ctx.params["workspace_id"]))


async def list_users(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    return await _list(ctx, users, [users.c.workspace_id == ws["id"]])


async def create_user(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    spec: UserIn = ctx.body
    return json_response(await ctx.store.create_user(ctx.actor, ws, spec.name, spec.description, spec.tags), 201)


async def get_user(ctx: Ctx) -> Response:
    return json_response(await user_of(ctx, ctx.params["user_id"]))


async def list_keys(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    return await _list(ctx, api_keys, [api_keys.c.workspace_id == ws["id"]], public_key)


async def create_key(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    try:
        row, key = await ctx.store.create_key(ctx.actor, ws, ctx.body)
    except Conflict as exc:
        raise ApiError(422, "validation_error", "invalid body", [_field("user_id", str(exc))]) from None
    return json_response({**row, "key": key}, 201)


async def get_key(ctx: Ctx) -> Response:
    return json_response(public_key(await key_of(ctx, ctx.params["key_id"])))


async def revoke_key(ctx: Ctx) -> Response:
    key = await key_of(ctx, ctx.params["key_id"])
    return json_response(await ctx.store.revoke_key(ctx.actor, key))


async def rotate_key(ctx: Ctx) -> Response:
    key = await key_of(ctx, ctx.params["key_id"])
    spec: KeyRotateIn = ctx.body
    try:
        row, value = await ctx.store.rotate_key(ctx.actor, key, spec.overlap_s, spec.name)
    except Conflict as exc:
        raise ApiError(409, "conflict", f"this key cannot be rotated: {exc}") from None
    return json_response({**row, "key": value}, 201)


_NOUNS = {"org": "organization", "workspace": "workspace", "user": "user", "key": "key"}


def _entity_handlers(kind: str, param: str) -> tuple[Handler, Handler]:
    """PATCH and DELETE of an org, workspace, user or key (`ControlStore.update_entity` and
    `ControlStore.delete_<kind>` say what a deletion takes with it)."""

    async def patch(ctx: Ctx) -> Response:
        row = await row_of(ctx, kind, ctx.params[param])
        try:
            return json_response(await ctx.store.update_entity(ctx.actor, kind, row, ctx.body.changes()))
        except Gone:
            raise _not_found(_NOUNS[kind]) from None

    async def remove(ctx: Ctx) -> Response:
        p = ctx.principal
        # An organization is deleted by operators only, a workspace by its organization's admins.
        if (kind == "org" and p.org_id is not None) or (kind == "workspace" and p.workspace_id is not None):
            raise _forbidden()
        row = await row_of(ctx, kind, ctx.params[param])
        deletion = {
            "org": ctx.store.delete_org,
            "workspace": ctx.store.delete_workspace,
            "user": ctx.store.delete_user,
            "key": ctx.store.delete_key,
        }[kind]
        try:
            await deletion(ctx.actor, row)
        except Conflict as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        except Gone:
            raise _not_found(_NOUNS[kind]) from None
        return Response(status_code=204)

    patch.__name__, remove.__name__ = f"update_{kind}", f"delete_{kind}"
    return patch, remove


async def effective_policy(ctx: Ctx) -> Response:
    key = await key_of(ctx, ctx.params["key_id"])
    chain = [(lvl, eid, await ctx.store.policy(lvl, eid)) for lvl, eid in chain_of("key", key)]
    result = effective(key["org_id"], chain, _operator(ctx))
    return json_response({"key_id": key["id"], **result.as_json()})


async def try_redaction(ctx: Ctx) -> Response:
    """The key's redaction rules (the configuration's `[redaction]` and the policies' rules and
    patterns, as the gateway compiles them) run on a text: what would be found and sent. The text
    is answered to its sender only: never logged, stored or audited."""
    from sluicegate.policy.redaction import Redactor

    key = await key_of(ctx, ctx.params["key_id"])
    body: RedactionTryIn = ctx.body
    if len(body.text.encode()) > TRY_TEXT_BYTES:
        raise ApiError(413, "too_large", f"text is over {TRY_TEXT_BYTES} bytes", [_field("text", "too large")])
    base = ctx.redaction
    if base is None or not base.enabled:
        return json_response(
            {
                "key_id": key["id"],
                "enabled": False,
                "findings": [],
                "below_threshold": [],
                "allowed": [],
                "text": body.text,
            }
        )
    chain = [(lvl, eid, await ctx.store.policy(lvl, eid)) for lvl, eid in chain_of("key", key)]
    policy = effective(key["org_id"], chain, _operator(ctx))
    settings = policy.redaction_settings(base)
    try:
        redactor = Redactor(settings)
        # the same rules without their allowed terms: what the terms let through (this page's
        # second scan; the gateway never makes it)
        unexempt = Redactor(settings.model_copy(update={"allow_terms": []})) if settings.allow_terms else None
    except ValueError:
        raise ApiError(409, "policy_invalid", "the redaction policy for this key cannot be compiled") from None
    found, below, text = redactor.preview_all(body.text, key["workspace_id"])
    findings = [{"entity": e, "start": start, "end": end, "action": a} for e, start, end, a in found]
    quiet = [{"entity": e, "start": start, "end": end} for e, start, end in below]
    allowed: list[dict[str, Any]] = []
    if unexempt is not None:
        kept = {(e, start, end) for e, start, end, _ in found} | set(below)
        every, every_below = unexempt.find_all(body.text, "request")
        allowed = [
            {"entity": e, "start": start, "end": end}
            for e, start, end in sorted({*every, *every_below}, key=lambda f: f[1])
            if (e, start, end) not in kept
        ]
    return json_response(
        {
            "key_id": key["id"],
            "enabled": True,
            "findings": findings,
            "below_threshold": quiet,
            "allowed": allowed,
            "text": text,
        }
    )


def _policy_handlers(level: Level, param: str) -> tuple[Handler, Handler, Handler]:
    async def get_policy(ctx: Ctx) -> Response:
        entity_id, _ = await entity_of(ctx, level, ctx.params[param])
        policy = await ctx.store.policy(level, entity_id)
        return json_response((policy or PolicyIn()).model_dump(mode="json"))

    async def put_policy(ctx: Ctx) -> Response:
        row = await row_of(ctx, level, ctx.params[param])
        entity_id, org_id = row["id"], row["id"] if level == "org" else row["org_id"]
        # Whoever writes (operator, org or workspace token), a lock above this level holds: the
        # write is refused, naming the rule and who locks it. (Were a lock set between this check
        # and the write, the view raises the written rule to it anyway.)
        above: Chain = [(lvl, eid, await ctx.store.policy(lvl, eid)) for lvl, eid in chain_of(level, row)[:-1]]
        found = violations(floors_for(org_id, above, level, entity_id, _operator(ctx)), ctx.body)
        if found:
            raise ApiError(
                409,
                "policy_locked",
                f"this {level} policy would weaken {len(found)} locked rule(s): {found[0].loc}: {found[0].message}",
                [v.as_field() for v in found],
            )
        policy = await ctx.store.set_policy(ctx.actor, level, entity_id, org_id, ctx.body)  # type: ignore[arg-type]
        return json_response(policy.model_dump(mode="json"))

    async def delete_policy(ctx: Ctx) -> Response:
        # Nothing to check against the locks: without this level's policy, the levels above apply.
        entity_id, org_id = await entity_of(ctx, level, ctx.params[param])
        if not await ctx.store.delete_policy(ctx.actor, level, entity_id, org_id):
            raise _not_found("policy")
        return Response(status_code=204)

    return get_policy, put_policy, delete_policy


def _secret_handlers(level: str, param: str) -> tuple[Handler, Handler, Handler]:
    async def scope(ctx: Ctx) -> tuple[str, str]:
        return await entity_of(ctx, level, ctx.params[param])

    async def list_secrets(ctx: Ctx) -> Response:
        scope_id, _ = await scope(ctx)
        return json_response({"data": await ctx.store.secrets_list(level, scope_id)})

    async def put_secret(ctx: Ctx) -> Response:
        scope_id, org_id = await scope(ctx)
        provider = _provider(ctx.params["provider"])
        base_url = ctx.body.base_url
        if base_url is not None:
            check = ctx.base_url_refusal
            refused = check(provider, base_url) if check is not None else "cannot be checked (no rules loaded)"
            if refused is not None:
                raise ApiError(400, "base_url_not_allowed", f"base_url {refused}", [_field("base_url", refused)])
        try:
            shown = await ctx.store.set_secret(ctx.actor, level, scope_id, org_id, provider, ctx.body)
        except Conflict as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return json_response(shown)

    async def delete_secret(ctx: Ctx) -> Response:
        scope_id, org_id = await scope(ctx)
        provider = _provider(ctx.params["provider"])
        if not await ctx.store.delete_secret(ctx.actor, level, scope_id, org_id, provider):
            raise _not_found("secret")
        return Response(status_code=204)

    return list_secrets, put_secret, delete_secret


async def list_mcp_servers(ctx: Ctx) -> Response:
    workspace = await workspace_of(ctx, ctx.params["workspace_id"])
    return json_response({"data": await ctx.store.mcp_servers_list(workspace["id"])})


async def put_mcp_server(ctx: Ctx) -> Response:
    """Register or replace an upstream MCP server; its URL must pass the tenant egress rules."""
    workspace = await workspace_of(ctx, ctx.params["workspace_id"])
    name = _mcp_name(ctx.params["name"])
    check = ctx.mcp_url_refusal
    refused = check(ctx.body.url) if check is not None else "cannot be checked (no rules loaded)"
    if refused is not None:
        raise ApiError(400, "mcp_url_not_allowed", f"url {refused}", [_field("url", refused)])
    if ctx.body.oauth is not None:  # the token endpoint is the tenant's too: the same rules
        refused = check(ctx.body.oauth.token_url) if check is not None else "cannot be checked (no rules loaded)"
        if refused is not None:
            field = "oauth.token_url"
            raise ApiError(400, "mcp_url_not_allowed", f"{field} {refused}", [_field(field, refused)])
    try:
        shown = await ctx.store.set_mcp_server(ctx.actor, workspace, name, ctx.body)
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return json_response(shown)


async def delete_mcp_server(ctx: Ctx) -> Response:
    workspace = await workspace_of(ctx, ctx.params["workspace_id"])
    if not await ctx.store.delete_mcp_server(ctx.actor, workspace, _mcp_name(ctx.params["name"])):
        raise _not_found("MCP server")
    return Response(status_code=204)


async def mcp_server_tools(ctx: Ctx) -> Response:
    """The tools a workspace's MCP server lists, asked by the gateway itself with the server's
    credentials, each with what the workspace's tool lists say of it, its price and the rate limits
    that count its calls. Read-only: nothing is stored or audited."""
    from sluicegate.errors import SecretUnavailable
    from sluicegate.mcp.client import McpClientError

    workspace = await workspace_of(ctx, ctx.params["workspace_id"])
    name = _mcp_name(ctx.params["name"])
    if ctx.mcp_tools is None:
        raise ApiError(503, "mcp_disabled", "this gateway does not serve MCP ([mcp] enabled = false)")
    chain = [(lvl, eid, await ctx.store.policy(lvl, eid)) for lvl, eid in chain_of("workspace", workspace)]
    policy = effective(workspace["org_id"], chain, _operator(ctx))
    try:
        target, tools = await ctx.mcp_tools(workspace["id"], name)
    except LookupError:
        raise _not_found("MCP server") from None
    except McpClientError as exc:
        raise ApiError(502, "mcp_upstream_failed", exc.message) from None
    except SecretUnavailable as exc:
        raise ApiError(503, "secret_unavailable", exc.message) from None
    data = [_tool_view(policy, target, name, tool) for tool in tools]
    return json_response({"server": name, "url": target.url, "data": data})


def _tool_view(policy: Any, target: Any, server: str, tool: dict[str, Any]) -> dict[str, Any]:
    """One listed tool with the workspace's decision on `server/tool`, its price and its limits."""
    tool_name: str = tool["name"]
    full = f"{server}/{tool_name}"
    out: dict[str, Any] = {
        "name": tool_name,
        "title": tool.get("title") if isinstance(tool.get("title"), str) else None,
        "description": tool.get("description") if isinstance(tool.get("description"), str) else "",
        "access": "allowed",
        "reason": None,
        "rule": None,
    }
    for rules in policy.tools.sets:
        found = rules.refusal(full)
        if found is None:
            continue
        enforced = rules.mode == "enforce" and rules.rollout_percent >= 100
        if out["access"] == "allowed" or enforced:
            out.update(access="denied" if enforced else "monitored", reason=found[0], rule=found[1])
        if enforced:
            break
    price = target.prices.of(tool_name)
    out["price_usd"] = format_usd(price).lstrip("$") if price else None
    out["limits"] = [
        {
            "level": e.rule.line.level,
            "entity_id": e.rule.line.entity_id,
            "kind": e.rule.line.kind,
            "limit": e.rule.line.limit,
            "window_s": None if e.rule.line.kind == "concurrent" else e.rule.line.window_s,
            "mode": e.rule.mode,
            "tools": list(e.rule.tools),
        }
        for e in policy.limit_origins
        if e.rule.tools_rx is not None and e.rule.tools is not None and e.rule.tools_rx.fullmatch(full)
    ]
    return out


def _mcp_name(value: str) -> str:
    if not re.fullmatch(MCP_SERVER_PATTERN, value):
        raise ApiError(422, "validation_error", "invalid path", [_field("name", "must match " + MCP_SERVER_PATTERN)])
    return value


def _provider(value: str) -> str:

    if not re.fullmatch(PROVIDER_PATTERN, value):
        raise ApiError(422, "validation_error", "invalid path", [_field("provider", "must match " + PROVIDER_PATTERN)])
    return value


async def list_audit(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    limit, cursor = _page_query(ctx.request, audit_log)
    # `after_seq` (a seq seen before) still works; a cursor carries the same thing.
    after = cursor[0] if cursor is not None else _int_query(ctx.request, "after_seq", 0, 0, 2**62)
    return _paged(audit_log, await ctx.store.audit_page(org["id"], after, limit))


_ANCHOR_REASON = re.compile(r"anchor .* line (\d+ \(row \d+\): .*)", re.S)


async def verify_audit(ctx: Ctx) -> Response:
    """The verdict on the whole chain (it is one chain for every organization): any token that may
    read this organization's audit log may ask; the answer holds no row of any organization, and a
    reason that names an anchor file names none of its paths."""
    await org_of(ctx, ctx.params["org_id"])
    result = await ctx.store.verify_audit()
    body: dict[str, Any] = {"ok": result.ok, "rows": result.rows}
    if not result.ok:
        # `anchor <path> line <n> (row <seq>): why`: the anchor file's path is the operator's, not told.
        anchor = _ANCHOR_REASON.fullmatch(result.reason)
        reason = f"anchor line {anchor.group(1)}" if anchor is not None else result.reason
        body |= {"first_bad_seq": result.broken_seq, "reason": reason}
    return json_response(body)


_EVENT_FILTERS = {"policy": "policy", "action": "action", "entity": "entity", "trace_id": "trace_id", "route": "route"}
_EVENT_FILTERS |= {"workspace": "workspace_id", "user": "user_id", "key": "key_id", "request_id": "request_id"}
_SPEND_FILTERS = {"workspace": "workspace_id", "user": "user_id", "key": "key_id", "model": "model"}
_GROUPS = {"workspace": "workspace_id", "user": "user_id", "key": "key_id", "model": "model", "provider": "provider"}
_FAR_PAST, _FAR_FUTURE = "0000", "9999"


def _time_query(request: Request, name: str, default: str) -> str:
    """An ISO-8601 time from the query, as the UTC text the records store (`2026-11-27T09:00:00+00:00`)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "validation_error", "invalid query", [_field(name, "an ISO-8601 time")]) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _text_filters(request: Request, names: dict[str, str], fixed: dict[str, str]) -> dict[str, str]:
    out = dict(fixed)
    for name, column in names.items():
        value = request.query_params.get(name)
        if value is not None:
            if not 1 <= len(value) <= 200:
                raise ApiError(422, "validation_error", "invalid query", [_field(name, "1 to 200 characters")])
            out.setdefault(column, value)
    return out


async def _events(ctx: Ctx, org_id: str, fixed: dict[str, str]) -> Response:
    r = ctx.request
    filters = _text_filters(r, _EVENT_FILTERS, fixed)
    since, until = _time_query(r, "since", _FAR_PAST), _time_query(r, "until", _FAR_FUTURE)
    limit, after = _page_query(r, policy_events)
    page = await ctx.store.events_page(org_id, filters, since, until, after, limit)
    if ctx.run_url:
        for row in page.rows:
            if row["run_id"]:
                row["run_url"] = ctx.run_url.format(run_id=row["run_id"], trace_id=row["trace_id"] or "")
    return _paged(policy_events, page)


async def org_events(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    return await _events(ctx, org["id"], {})


async def ws_events(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    return await _events(ctx, ws["org_id"], {"workspace_id": ws["id"]})


async def _ledger(ctx: Ctx, org_id: str, fixed: dict[str, str]) -> Response:
    r = ctx.request
    filters = _text_filters(r, _SPEND_FILTERS, fixed)
    since, until = _time_query(r, "since", _FAR_PAST), _time_query(r, "until", _FAR_FUTURE)
    limit, after = _page_query(r, spend_ledger)
    return _paged(
        spend_ledger,
        await ctx.store.page(spend_ledger, record_where(spend_ledger, org_id, filters, since, until), after, limit),
    )


async def org_ledger(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    return await _ledger(ctx, org["id"], {})


async def ws_ledger(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    return await _ledger(ctx, ws["org_id"], {"workspace_id": ws["id"]})


async def _spend(ctx: Ctx, org_id: str, fixed: dict[str, str]) -> Response:
    r = ctx.request
    groups = [g for g in (r.query_params.get("group_by") or "").split(",") if g]
    if any(g not in _GROUPS for g in groups) or len(set(groups)) != len(groups):
        raise ApiError(422, "validation_error", "invalid query", [_field("group_by", f"some of {', '.join(_GROUPS)}")])
    bucket = r.query_params.get("bucket")
    if bucket not in (None, "hour", "day"):
        raise ApiError(422, "validation_error", "invalid query", [_field("bucket", "hour or day")])
    filters = _text_filters(r, _SPEND_FILTERS, fixed)
    since, until = _time_query(r, "since", _FAR_PAST), _time_query(r, "until", _FAR_FUTURE)
    rows = await ctx.store.spend_rollup(org_id, filters, [_GROUPS[g] for g in groups], bucket, since, until)
    total = sum(row["cost_nusd"] for row in rows)
    return json_response({"data": rows, "total_cost_nusd": total, "caps": await _caps(ctx, org_id, fixed)})


async def _caps(ctx: Ctx, org_id: str, fixed: dict[str, str]) -> list[dict[str, Any]]:
    """The caps on the organization and its workspaces (or on one workspace and its organization),
    each with what its current window has settled and what calls still in flight have reserved."""
    operator = _operator(ctx)
    org: Chain = [("org", org_id, await ctx.store.policy("org", org_id))]
    lines = list(effective(org_id, org, operator).caps)
    spaces = (
        [fixed["workspace_id"]]
        if "workspace_id" in fixed
        else [w["id"] for w in await ctx.store.many(workspaces, org_id=org_id)]
    )
    for ws in spaces:  # the workspace's own caps, as the org's locks leave them
        chain: Chain = [*org, ("workspace", ws, await ctx.store.policy("workspace", ws))]
        lines += [c for c in effective(org_id, chain, operator).caps if c.level == "workspace"]
    status = ctx.caps_status
    out = []
    for line in lines:
        spent, reserved = await status(line) if status is not None else (None, None)
        out.append(
            {
                "level": line.level,
                "id": line.entity_id,
                "window": line.window,
                "limit_nusd": line.limit_nusd,
                "spent_nusd": spent,
                "reserved_nusd": reserved,
                "mode": line.mode,
            }
        )
    return out


_MONITOR_FILTERS = {"policy": "policy", "workspace": "workspace_id", "key": "key_id"}


async def _monitoring(ctx: Ctx, org_id: str, fixed: dict[str, str]) -> Response:
    r = ctx.request
    filters = _text_filters(r, _MONITOR_FILTERS, fixed)
    since, until = _time_query(r, "since", _FAR_PAST), _time_query(r, "until", _FAR_FUTURE)
    rows = await ctx.store.monitoring(org_id, filters, since, until)
    return json_response({"data": rows, "total_events": sum(row["events"] for row in rows)})


async def org_monitoring(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    return await _monitoring(ctx, org["id"], {})


async def ws_monitoring(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    return await _monitoring(ctx, ws["org_id"], {"workspace_id": ws["id"]})


async def org_spend(ctx: Ctx) -> Response:
    org = await org_of(ctx, ctx.params["org_id"])
    return await _spend(ctx, org["id"], {})


async def ws_spend(ctx: Ctx) -> Response:
    ws = await workspace_of(ctx, ctx.params["workspace_id"])
    return await _spend(ctx, ws["org_id"], {"workspace_id": ws["id"]})


_CURSOR_ERROR = "not a cursor of this list (pass next_cursor back as it came)"


def _page_query(request: Request, table: Table) -> tuple[int, tuple[Any, ...] | None]:
    """`limit` (1 to 1000, default 100) and the sort key a `cursor` names (None: from the start).

    A cursor is opaque to clients: URL-safe base64 of the list's table and the sort key of the last
    row returned. One that does not decode, names another list, or holds values of the wrong kind
    is a 422 naming `cursor`.
    """
    limit = _int_query(request, "limit", 100, 1, 1000)
    raw = request.query_params.get("cursor")
    if raw is None:
        return limit, None
    refused = ApiError(422, "validation_error", "invalid query", [_field("cursor", _CURSOR_ERROR)])
    if not 1 <= len(raw) <= 1000 or not raw.isascii():
        raise refused
    try:
        decoded = orjson.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError):
        raise refused from None
    names, _ = page_order(table)
    if not isinstance(decoded, list) or len(decoded) != len(names) + 1 or decoded[0] != table.name:
        raise refused
    for name, value in zip(names, decoded[1:], strict=True):
        if name == "seq":
            fits = type(value) is int and 0 <= value <= 2**62
        else:
            fits = isinstance(value, str) and 1 <= len(value) <= 200 and "\x00" not in value
        if not fits:
            raise refused
    return limit, tuple(decoded[1:])


def _cursor(table: Table, key: tuple[Any, ...] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(orjson.dumps([table.name, *key])).rstrip(b"=").decode()


def _paged(table: Table, page: Page, shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Response:
    rows = [shape(r) for r in page.rows] if shape is not None else page.rows
    return json_response(
        {"data": rows, "has_more": page.next_key is not None, "next_cursor": _cursor(table, page.next_key)}
    )


async def _list(
    ctx: Ctx, table: Table, where: list[Any], shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> Response:
    """A page of an entity list (`?limit`, `?cursor`), oldest first."""
    limit, after = _page_query(ctx.request, table)
    return _paged(table, await ctx.store.page(table, where, after, limit), shape)


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(422, "validation_error", "invalid query", [_field(name, f"an integer from {low} to {high}")])
    return int(raw)


def _field(loc: str, msg: str) -> dict[str, str]:
    return {"loc": loc, "msg": msg}


org_pol, org_put, org_pol_del = _policy_handlers("org", "org_id")
ws_pol, ws_put, ws_pol_del = _policy_handlers("workspace", "workspace_id")
user_pol, user_put, user_pol_del = _policy_handlers("user", "user_id")
key_pol, key_put, key_pol_del = _policy_handlers("key", "key_id")
update_org, delete_org = _entity_handlers("org", "org_id")
update_workspace, delete_workspace = _entity_handlers("workspace", "workspace_id")
update_user, delete_user = _entity_handlers("user", "user_id")
update_key, delete_key = _entity_handlers("key", "key_id")
org_secrets, org_secret_put, org_secret_del = _secret_handlers("org", "org_id")
ws_secrets, ws_secret_put, ws_secret_del = _secret_handlers("workspace", "workspace_id")
_TIMES = (
    ("since", {"type": "string", "format": "date-time"}),
    ("until", {"type": "string", "format": "date-time"}),
)
_LIST: tuple[tuple[str, dict[str, Any]], ...] = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    ("cursor", {"type": "string", "minLength": 1, "maxLength": 1000, "description": "a next_cursor, as it came"}),
)
_EVENTS_QUERY: tuple[tuple[str, dict[str, Any]], ...] = (
    *_TIMES,
    *((name, {"type": "string", "minLength": 1, "maxLength": 200}) for name in _EVENT_FILTERS),
    *_LIST,
)
_LEDGER_QUERY: tuple[tuple[str, dict[str, Any]], ...] = (
    *_TIMES,
    *((name, {"type": "string", "minLength": 1, "maxLength": 200}) for name in _SPEND_FILTERS),
    *_LIST,
)
_MONITOR_QUERY = (
    *_TIMES,
    *((name, {"type": "string", "minLength": 1, "maxLength": 200}) for name in _MONITOR_FILTERS),
)
_SPEND_QUERY = (
    *_TIMES,
    *((name, {"type": "string", "minLength": 1, "maxLength": 200}) for name in _SPEND_FILTERS),
    (
        "group_by",
        {"type": "string", "pattern": "^(workspace|user|key|model|provider)(,(workspace|user|key|model|provider))*$"},
    ),
    ("bucket", {"type": "string", "enum": ["hour", "day"]}),
)
_PAGE = (("after_seq", {"type": "integer", "minimum": 0}), *_LIST)

CONSOLE_DIR = Path(__file__).parent / "static" / "console"
_CONSOLE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONSOLE_HEADERS = {
    # Scripts and styles from the gateway only: no inline script, no other origin, no framing.
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def console_files(root: Path = CONSOLE_DIR) -> dict[str, tuple[bytes, str]]:
    """The console's files by path under `root` (`pages/spend.js`), with their media types."""
    out: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.rglob("*")):
        media_type = _CONSOLE_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            out[path.relative_to(root).as_posix()] = (path.read_bytes(), media_type)
    return out


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/whoami", whoami, "The calling token's scope", response=res.Whoami),
    Endpoint(
        "GET",
        "/routes",
        routes_status,
        "The routes of several deployments and their circuit breakers (this instance)",
        response=res.Routes,
    ),
    Endpoint("GET", "/orgs", list_orgs, "Organizations the token sees", query=_LIST, response=res.OrgList),
    Endpoint(
        "POST", "/orgs", create_org, "Create an organization (operator tokens)", OrgIn, 201, True, response=res.Org
    ),
    Endpoint("GET", "/orgs/{org_id}", get_org, "An organization", response=res.Org),
    Endpoint(
        "PATCH", "/orgs/{org_id}", update_org, "Change an organization's fields", OrgPatch, 200, True, response=res.Org
    ),
    Endpoint(
        "DELETE",
        "/orgs/{org_id}",
        delete_org,
        "Delete an empty organization (operators)",
        None,
        204,
        True,
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/orgs/{org_id}/workspaces",
        list_workspaces,
        "An organization's workspaces",
        query=_LIST,
        response=res.WorkspaceList,
    ),
    Endpoint(
        "POST",
        "/orgs/{org_id}/workspaces",
        create_workspace,
        "Create a workspace",
        WorkspaceIn,
        201,
        True,
        response=res.Workspace,
    ),
    Endpoint(
        "POST",
        "/orgs/{org_id}/admin-tokens",
        create_admin_token,
        "Create an admin token (shown once)",
        AdminTokenIn,
        201,
        True,
        response=res.AdminTokenCreated,
    ),
    Endpoint(
        "GET",
        "/orgs/{org_id}/admin-tokens",
        list_admin_tokens,
        "The organization's admin tokens (no values)",
        query=_LIST,
        response=res.AdminTokenList,
    ),
    Endpoint(
        "POST",
        "/orgs/{org_id}/admin-tokens/{token_id}/revoke",
        revoke_admin_token,
        "Revoke an admin token",
        None,
        200,
        True,
        response=res.AdminToken,
    ),
    Endpoint("GET", "/orgs/{org_id}/policy", org_pol, "The organization's policy", response=PolicyIn),
    Endpoint(
        "PUT",
        "/orgs/{org_id}/policy",
        org_put,
        "Replace the organization's policy",
        PolicyIn,
        200,
        True,
        response=PolicyIn,
        errors=(409,),
    ),
    Endpoint("DELETE", "/orgs/{org_id}/policy", org_pol_del, "Remove the organization's policy", None, 204, True),
    Endpoint(
        "GET",
        "/orgs/{org_id}/secrets",
        org_secrets,
        "Org-default provider secrets (names only)",
        response=res.SecretList,
    ),
    Endpoint(
        "PUT",
        "/orgs/{org_id}/secrets/{provider}",
        org_secret_put,
        "Set an org default",
        SecretIn,
        200,
        True,
        response=res.Secret,
        errors=(400, 409),
    ),
    Endpoint("DELETE", "/orgs/{org_id}/secrets/{provider}", org_secret_del, "Delete an org default", None, 204, True),
    Endpoint(
        "GET", "/orgs/{org_id}/audit", list_audit, "The organization's audit log", query=_PAGE, response=res.AuditList
    ),
    Endpoint(
        "GET",
        "/orgs/{org_id}/audit/verify",
        verify_audit,
        "Whether the audit chain holds (the whole chain's verdict, no rows)",
        response=res.AuditVerdict,
    ),
    Endpoint(
        "GET",
        "/orgs/{org_id}/events",
        org_events,
        "Policy events, newest first",
        query=_EVENTS_QUERY,
        response=res.EventList,
    ),
    Endpoint("GET", "/orgs/{org_id}/spend", org_spend, "Settled spend, summed", query=_SPEND_QUERY, response=res.Spend),
    Endpoint(
        "GET",
        "/orgs/{org_id}/monitoring",
        org_monitoring,
        "What monitor-mode and rolled-out rules would have done, by policy, workspace and key",
        query=_MONITOR_QUERY,
        response=res.Monitoring,
    ),
    Endpoint(
        "GET",
        "/orgs/{org_id}/ledger",
        org_ledger,
        "Spend ledger rows, newest first",
        query=_LEDGER_QUERY,
        response=res.LedgerList,
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/events",
        ws_events,
        "A workspace's policy events",
        query=_EVENTS_QUERY,
        response=res.EventList,
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/spend",
        ws_spend,
        "A workspace's settled spend",
        query=_SPEND_QUERY,
        response=res.Spend,
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/monitoring",
        ws_monitoring,
        "What monitor-mode and rolled-out rules would have done in a workspace",
        query=_MONITOR_QUERY,
        response=res.Monitoring,
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/ledger",
        ws_ledger,
        "A workspace's spend ledger rows",
        query=_LEDGER_QUERY,
        response=res.LedgerList,
    ),
    Endpoint("GET", "/workspaces/{workspace_id}", get_workspace, "A workspace", response=res.Workspace),
    Endpoint(
        "PATCH",
        "/workspaces/{workspace_id}",
        update_workspace,
        "Change a workspace",
        WorkspacePatch,
        200,
        True,
        response=res.Workspace,
    ),
    Endpoint(
        "GET", "/workspaces/{workspace_id}/users", list_users, "A workspace's users", query=_LIST, response=res.UserList
    ),
    Endpoint(
        "POST", "/workspaces/{workspace_id}/users", create_user, "Create a user", UserIn, 201, True, response=res.User
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/keys",
        list_keys,
        "A workspace's gateway keys (no key values)",
        query=_LIST,
        response=res.KeyList,
    ),
    Endpoint(
        "POST",
        "/workspaces/{workspace_id}/keys",
        create_key,
        "Create a key (shown once)",
        KeyIn,
        201,
        True,
        response=res.KeyCreated,
    ),
    Endpoint("GET", "/workspaces/{workspace_id}/policy", ws_pol, "The workspace's policy", response=PolicyIn),
    Endpoint(
        "PUT",
        "/workspaces/{workspace_id}/policy",
        ws_put,
        "Replace the workspace's policy",
        PolicyIn,
        200,
        True,
        response=PolicyIn,
        errors=(409,),
    ),
    Endpoint(
        "DELETE", "/workspaces/{workspace_id}/policy", ws_pol_del, "Remove the workspace's policy", None, 204, True
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/secrets",
        ws_secrets,
        "Provider secrets (names only)",
        response=res.SecretList,
    ),
    Endpoint(
        "PUT",
        "/workspaces/{workspace_id}/secrets/{provider}",
        ws_secret_put,
        "Set",
        SecretIn,
        200,
        True,
        response=res.Secret,
        errors=(400, 409),
    ),
    Endpoint("DELETE", "/workspaces/{workspace_id}/secrets/{provider}", ws_secret_del, "Delete", None, 204, True),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/mcp-servers",
        list_mcp_servers,
        "Upstream MCP servers (header names only)",
        response=res.McpServerList,
    ),
    Endpoint(
        "PUT",
        "/workspaces/{workspace_id}/mcp-servers/{name}",
        put_mcp_server,
        "Register or replace an upstream MCP server",
        McpServerIn,
        200,
        True,
        response=res.McpServer,
        errors=(400, 409),
    ),
    Endpoint(
        "GET",
        "/workspaces/{workspace_id}/mcp-servers/{name}/tools",
        mcp_server_tools,
        "The server's tools as the gateway lists them, with the workspace's access, prices and limits",
        response=res.McpToolList,
        errors=(502, 503),
    ),
    Endpoint(
        "DELETE",
        "/workspaces/{workspace_id}/mcp-servers/{name}",
        delete_mcp_server,
        "Remove an upstream MCP server and its headers",
        None,
        204,
        True,
    ),
    Endpoint("GET", "/users/{user_id}", get_user, "A user", response=res.User),
    Endpoint("PATCH", "/users/{user_id}", update_user, "Change a user", UserPatch, 200, True, response=res.User),
    Endpoint("GET", "/users/{user_id}/policy", user_pol, "The user's policy", response=PolicyIn),
    Endpoint(
        "PUT",
        "/users/{user_id}/policy",
        user_put,
        "Replace the user's policy",
        PolicyIn,
        200,
        True,
        response=PolicyIn,
        errors=(409,),
    ),
    Endpoint("DELETE", "/users/{user_id}/policy", user_pol_del, "Remove the user's policy", None, 204, True),
    Endpoint("GET", "/keys/{key_id}", get_key, "A gateway key (no key value)", response=res.Key),
    Endpoint(
        "PATCH", "/keys/{key_id}", update_key, "Change a key (also its expiry)", KeyPatch, 200, True, response=res.Key
    ),
    Endpoint(
        "POST",
        "/keys/{key_id}/rotate",
        rotate_key,
        "Replace a key with a new one (shown once); the old one works until the overlap ends",
        KeyRotateIn,
        201,
        True,
        response=res.KeyRotated,
        errors=(409,),
    ),
    Endpoint("POST", "/keys/{key_id}/revoke", revoke_key, "Revoke a key", None, 200, True, response=res.Key),
    Endpoint(
        "GET",
        "/keys/{key_id}/effective-policy",
        effective_policy,
        "The policy that applies to a key",
        response=res.EffectivePolicy,
    ),
    Endpoint(
        "POST",
        "/keys/{key_id}/redaction/try",
        try_redaction,
        "Run a key's redaction rules on a text (nothing is kept)",
        RedactionTryIn,
        response=res.RedactionTry,
        errors=(409, 413),
    ),
    Endpoint("GET", "/keys/{key_id}/policy", key_pol, "The key's own policy", response=PolicyIn),
    Endpoint(
        "PUT",
        "/keys/{key_id}/policy",
        key_put,
        "Replace the key's own policy",
        PolicyIn,
        200,
        True,
        response=PolicyIn,
        errors=(409,),
    ),
    Endpoint("DELETE", "/keys/{key_id}/policy", key_pol_del, "Remove the key's own policy", None, 204, True),
    Endpoint("DELETE", "/keys/{key_id}", delete_key, "Delete a key", None, 204, True),
    Endpoint("DELETE", "/users/{user_id}", delete_user, "Delete a user (its keys are revoked)", None, 204, True),
    Endpoint(
        "DELETE", "/workspaces/{workspace_id}", delete_workspace, "Delete a workspace and all in it", None, 204, True
    ),
)
assert {lvl for lvl in LEVELS} == {"org", "workspace", "user", "key"}


class AdminApi:
    """The admin ASGI app (mounted by the gateway for paths under `/admin/`).

    Arguments:
        store: the opened control store.
        view: this instance's view, refreshed right after each change so this instance sees it at once.
        trusted_proxies: the reverse proxies whose `x-forwarded-for` names the client
            (`server.trusted_proxies`), for the audit rows' client address.
        redaction: the configuration's `[redaction]`, which a key's rules are added to (the redaction
            try endpoint compiles them as the gateway does); None: nothing is redacted.
    """

    def __init__(
        self,
        store: ControlStore,
        view: ControlView | None = None,
        run_url: str = "",
        trusted_proxies: TrustedProxies | None = None,
        redaction: RedactionSettings | None = None,
    ) -> None:
        from sluicegate.control.openapi import openapi_document

        self.store = store
        self.redaction = redaction
        self.view = view
        self.caps_status: CapsStatus | None = None  # set by the gateway, which holds the spend store
        self.base_url_refusal: BaseUrlRefusal | None = None  # set by the gateway; unset, no base_url is taken
        self.mcp_url_refusal: McpUrlRefusal | None = None  # likewise for MCP servers: unset, none is registered
        self.routes_status: RoutesStatus | None = None  # set by the gateway, which holds the routes
        self.mcp_tools: McpTools | None = None  # set by the gateway when it serves MCP
        self.run_url = run_url
        self.auth_failures = AuthFailures(store)  # failed sign-ins in the audit log, rate-limited
        self.denials = AccessDenials(store)  # valid tokens asking outside their scope, likewise
        self.proxies = trusted_proxies or TrustedProxies()
        self.console = console_files()
        self._touched: dict[str, float] = {}  # admin token id -> when its last use was last written
        self.openapi = orjson.dumps(openapi_document(ENDPOINTS))
        routes = [Route(PREFIX + "/openapi.json", self._openapi, methods=["GET"])]
        oidc = store.settings.oidc
        self.sso: Sso | None = Sso(oidc) if oidc is not None else None
        if self.sso is not None:  # single sign-on (`[control.oidc]`): the console's session cookie
            routes.append(Route("/admin/ui/sso/login", self._sso_login, methods=["GET"]))
            routes.append(Route("/admin/ui/sso/callback", self._sso_callback, methods=["GET"]))
            routes.append(Route("/admin/ui/sso/session", self._sso_session, methods=["GET"]))
            routes.append(Route("/admin/ui/sso/logout", self._sso_logout, methods=["POST"]))
        routes.append(Route("/admin/ui", self._ui, methods=["GET", "HEAD"]))
        routes.append(Route("/admin/ui/{path:path}", self._ui, methods=["GET", "HEAD"]))
        routes += [Route(PREFIX + e.path, self._wrap(e), methods=[e.method]) for e in ENDPOINTS]
        self.app = Starlette(routes=routes)
        self.app.add_exception_handler(404, self._http_error)
        self.app.add_exception_handler(405, self._http_error)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def close(self) -> None:
        """Write the failed sign-ins and denials still counted (at shutdown)."""
        await self.auth_failures.close()
        await self.denials.close()

    def _client(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        return self.proxies.client(peer, request.headers.getlist("x-forwarded-for"))

    async def _denied(
        self, request: Request, endpoint: Endpoint, p: Principal, status: int, client: str, rid: str
    ) -> None:
        """Record an answer outside the token's scope: the token's id and scope, and what it asked."""
        tried = {"operation": f"{endpoint.method} {endpoint.path}", "status": status}
        tried["params"] = {k: str(v)[:100] for k, v in request.path_params.items()}
        scope = {"org_id": p.org_id, "workspace_id": p.workspace_id}
        await self.denials.note(client, p.token_id, scope, tried, rid, p.actor)

    async def _ui(self, request: Request) -> Response:
        """The console: static files, read once from `static/console/`; a path that is not one of
        them is a 404 (request paths never reach the file system). Every figure and every action
        on its pages is a call to the admin API with the admin token the page holds in
        sessionStorage."""
        found = self.console.get(request.path_params.get("path") or "index.html")
        if found is None:
            return json_response({"error": {"code": "not_found", "message": "no such console file"}}, 404)
        body, media_type = found
        return Response(body, 200, headers=CONSOLE_HEADERS, media_type=media_type)

    async def _openapi(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    @staticmethod
    async def _http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "not_found" if status == 404 else "method_not_allowed"
        return json_response({"error": {"code": code, "message": f"{request.method} {request.url.path}"}}, status)

    # ── single sign-on (`control.oidc`) ───────────────────────────────────────────────────────

    def _tls(self, request: Request) -> bool:
        """Whether the browser reached us over TLS: directly, or through a trusted proxy saying so."""
        if request.url.scheme == "https":
            return True
        peer = parse_address(request.client.host) if request.client else None
        proto = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        return peer is not None and self.proxies.trusts(peer) and proto == "https"

    def _session_principal(self, request: Request) -> Principal:
        assert self.sso is not None
        session = self.sso.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise ApiError(401, "unauthenticated", "the console session is not valid (sign in again)")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # A change made with a cookie must prove it comes from the console's page.
            origin, referer = request.headers.get("origin"), request.headers.get("referer")
            if not csrf_ok(session, request.headers.get("x-csrf-token")) or not self.sso.same_origin(origin, referer):
                raise ApiError(403, "csrf", "a change made with the console session needs x-csrf-token and its origin")
        return Principal(session.subject, session.org_id, session.workspace_id, session.role, session.subject)

    async def _sso_login(self, request: Request) -> Response:
        assert self.sso is not None
        rid = os.urandom(12).hex()
        try:
            url, browser = await self.sso.begin()
        except (SignInError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("single sign-on could not start (%s)", type(exc).__name__)
            return json_response({"error": {"code": "sso_unavailable", "message": "the issuer is unavailable"}}, 502)
        response = Response(status_code=302, headers={"location": url, "cache-control": "no-store"})
        # Lax: the issuer's redirect back is a cross-site navigation that must carry it.
        response.set_cookie(
            STATE_COOKIE, browser, max_age=600, path="/admin/ui/sso", secure=self._tls(request),
            httponly=True, samesite="lax",
        )  # fmt: skip
        response.headers["x-request-id"] = rid
        return response

    async def _sso_callback(self, request: Request) -> Response:
        assert self.sso is not None
        rid, client = os.urandom(12).hex(), self._client(request)
        try:
            session_id, session = await self.sso.finish(dict(request.query_params), request.cookies.get(STATE_COOKIE))
            org = await self.store.one(orgs, session.org_id)
            ws = await self.store.one(workspaces, session.workspace_id) if session.workspace_id else None
            if org is None or (session.workspace_id and (ws is None or ws["org_id"] != org["id"])):
                raise SignInError("the rule's organization or workspace does not exist")
        except (SignInError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("single sign-on refused: %s", exc if isinstance(exc, SignInError) else type(exc).__name__)
            await self.auth_failures.note(client, rid)
            response = json_response({"error": {"code": "sso_refused", "message": "sign-in refused"}}, 403, rid)
            response.delete_cookie(STATE_COOKIE, path="/admin/ui/sso")
            return response
        self.sso.open(session_id, session)
        scope = {"org_id": session.org_id, "workspace_id": session.workspace_id, "role": session.role}
        try:
            await self.store.record_system(
                "admin.sso_signed_in", "admin/v1", _fixed(scope), Actor(session.subject, rid, client)
            )
        except Exception as exc:  # the sign-in stands; the kind only, as everywhere
            log.warning("admin.sso_signed_in not recorded in the audit log (%s)", type(exc).__name__)
        response = Response(status_code=302, headers={"location": "/admin/ui", "cache-control": "no-store"})
        response.delete_cookie(STATE_COOKIE, path="/admin/ui/sso")
        response.set_cookie(
            SESSION_COOKIE, session_id, max_age=int(self.sso.settings.session_ttl_s), path="/admin",
            secure=self._tls(request), httponly=True, samesite="strict",
        )  # fmt: skip
        response.headers["x-request-id"] = rid
        return response

    async def _sso_session(self, request: Request) -> Response:
        """Who the session is, and the CSRF token its page sends with every change."""
        assert self.sso is not None
        session = self.sso.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if SESSION_COOKIE in request.cookies:  # a stale or forged cookie; no cookie is no attempt
                await self.auth_failures.note(self._client(request), os.urandom(12).hex())
            return json_response({"error": {"code": "unauthenticated", "message": "not signed in"}}, 401)
        body = {"token_id": session.subject, "org_id": session.org_id, "workspace_id": session.workspace_id}
        body |= {"role": session.role, "subject": session.subject, "email": session.email}
        body |= {"csrf_token": session.csrf, "expires_at": datetime.fromtimestamp(session.expires, UTC).isoformat()}
        response = json_response(body)
        response.headers["cache-control"] = "no-store"
        return response

    async def _sso_logout(self, request: Request) -> Response:
        assert self.sso is not None
        try:
            principal = self._session_principal(request)  # the CSRF check of any change
        except ApiError as err:
            return json_response({"error": {"code": err.code, "message": err.message}}, err.status)
        self.sso.close(request.cookies.get(SESSION_COOKIE))
        try:
            await self.store.record_system(
                "admin.sso_signed_out", "admin/v1", _fixed({"org_id": principal.org_id}),
                Actor(principal.actor, os.urandom(12).hex(), self._client(request)),
            )  # fmt: skip
        except Exception as exc:
            log.warning("admin.sso_signed_out not recorded in the audit log (%s)", type(exc).__name__)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/admin", secure=self._tls(request), httponly=True)
        return response

    async def _principal(self, request: Request) -> Principal:
        if self.sso is not None and "authorization" not in request.headers and SESSION_COOKIE in request.cookies:
            return self._session_principal(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "send an admin token as 'Authorization: Bearer <token>'")
        row = await self.store.token_by_hash(hash_key(token))
        if row is None or not same_hash(row["token_hash"], token) or row["revoked_at"] is not None:
            raise ApiError(401, "unauthenticated", "the admin token is not valid")
        now = datetime.now(UTC)
        if row["expires_at"] is not None and datetime.fromisoformat(row["expires_at"]) <= now:
            raise ApiError(401, "unauthenticated", "the admin token has expired")
        await self._touch(row["id"], now)
        return Principal(row["id"], row["org_id"], row["workspace_id"], row["role"])

    async def _touch(self, token_id: str, now: datetime) -> None:
        """Record the token's last use, at most once a minute per token (not a write per request)."""
        clock = time.monotonic()
        last = self._touched.get(token_id)
        if last is not None and clock - last < TOUCH_INTERVAL_S:
            return
        self._touched[token_id] = clock
        if len(self._touched) > 10_000:  # tokens are few; bound the memory anyway
            self._touched = {token_id: clock}
        try:
            await self.store.touch_admin_token(token_id, now.isoformat(timespec="microseconds"))
        except Exception as exc:  # bookkeeping: never the reason a request fails
            log.warning("admin token last use not recorded (%s)", type(exc).__name__)

    def _wrap(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            rid = request.headers.get("x-request-id", "")[:64] or os.urandom(12).hex()
            client = self._client(request)
            principal: Principal | None = None
            try:
                principal = await self._principal(request)
                if endpoint.mutates and principal.role != "admin":
                    raise _read_only()
                actor = Actor(principal.actor, rid, client)
                ctx = Ctx(
                    request,
                    principal,
                    actor,
                    self.store,
                    self.view,
                    {},
                    caps_status=self.caps_status,
                    run_url=self.run_url,
                    base_url_refusal=self.base_url_refusal,
                    redaction=self.redaction,
                    mcp_url_refusal=self.mcp_url_refusal,
                    routes_status=self.routes_status,
                    mcp_tools=self.mcp_tools,
                )
                ctx.params = dict(request.path_params)
                if endpoint.body is not None:
                    ctx.body = await _parse(request, endpoint.body)
                response = await endpoint.handler(ctx)
                if endpoint.mutates and self.view is not None:
                    await self.view.refresh()
            except ApiError as err:
                if err.status == 401:
                    await self.auth_failures.note(client, rid)
                elif err.denied and principal is not None:
                    await self._denied(request, endpoint, principal, err.status, client, rid)
                body: dict[str, Any] = {"code": err.code, "message": err.message}
                if err.fields is not None:
                    body["fields"] = err.fields
                return json_response({"error": body}, err.status, rid)
            except Exception:
                log.exception("admin request failed")  # the kind only: bodies are never logged
                return json_response({"error": {"code": "internal_error", "message": "internal error"}}, 500, rid)
            response.headers["x-request-id"] = rid
            return response

        return handle


def _fixed(after: dict[str, Any]) -> Callable[[Any], Awaitable[tuple[Any, Any]]]:
    async def diff(conn: Any) -> tuple[Any, Any]:
        return None, after

    return diff


async def _parse(request: Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.body()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ApiError(
            422, "validation_error", "the body is not valid JSON", [_field("body", "invalid JSON")]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [
            _field(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors(include_input=False)
        ]
        raise ApiError(422, "validation_error", "invalid body", fields) from None
