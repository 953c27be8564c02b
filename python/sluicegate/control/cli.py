"""`sluicegate admin …`: a thin client of the admin API; `admin migrate`, `admin bootstrap` and
`sluicegate audit verify` open the database themselves.

```
sluicegate admin [--url URL] [--token-file FILE] [--ca-file FILE] [--timeout S] [--json] RESOURCE VERB ...
sluicegate admin org list|get|create|update|delete
sluicegate admin workspace list|get|create|update|delete        [--org ORG_ID]
sluicegate admin user list|get|create|update|delete             --workspace WS_ID (list, create)
sluicegate admin key list|get|create|update|delete|revoke|rotate [--overlap 1h|30m|86400s]
sluicegate admin token list|create|revoke                       [--org ORG_ID] [--role admin|viewer] [--expires-at T]
sluicegate admin secret list|set|delete (--org ORG_ID | --workspace WS_ID) [PROVIDER]
sluicegate admin mcp-server list|set|delete|tools --workspace WS_ID [NAME] [--server-url URL] [--headers-stdin]
                            [--token-url URL --client-id ID [--scope S]]
sluicegate admin policy get|set|delete --level org|workspace|user|key --id ID; policy effective KEY_ID
sluicegate admin events list [--since T] [--until T] [--policy P] [--action A] [--entity E] [--workspace W]
                             [--route mcp|openai_chat|…] [--key K] [--user U] [--trace-id T] [--request-id R]
sluicegate admin audit list | ledger list | spend [--group-by workspace,model] | whoami
sluicegate admin monitoring [--since T] [--until T] [--policy P] [--workspace W] [--key K]
sluicegate admin migrate
sluicegate admin reseal
sluicegate admin bootstrap [--org NAME] [--workspace NAME] [--user NAME] [--key-name NAME] [--expires-at TIME]
sluicegate admin bootstrap --token-only
sluicegate audit verify [--anchors FILE]...
```

The API commands talk to `--url` (`SLUICEGATE_ADMIN_URL`, default `http://127.0.0.1:8080`) with the
admin token from `SLUICEGATE_ADMIN_TOKEN` or `--token-file` (never an argument, so it stays out of
shell history and `ps`; a file open to group or others is refused). TLS is verified (`--ca-file` for
a private CA). Their output is an aligned table (money in USD, exact); `--json` prints the API's JSON.
Lists follow the API's cursor up to `--limit`. An API error prints its code, message and the fields
at fault on stderr and exits 1; a usage error exits 2. `--org` defaults to the token's own org.

The secret of `secret set` is read from `SLUICEGATE_SECRET_VALUE` or stdin, never from an argument;
so are an MCP server's headers (`mcp-server set`: a JSON object in `SLUICEGATE_MCP_HEADERS`, or on
stdin with `--headers-stdin`) and its OAuth client secret (`SLUICEGATE_MCP_CLIENT_SECRET`).
Neither that value nor the admin token is printed, in output or in errors.

`migrate`, `reseal` (every provider secret sealed again under the current master key, after a
rotation), `bootstrap` (the first run: an org, a workspace, optionally a user, a key, and an operator
admin token for the API, each shown once; `--token-only`: just an operator token, the only way to
make one) and `audit verify` take `--config FILE` (the `[control]` section) and act on the database
as the local operator (`cli/<user>` in the audit log).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import os
import re
import stat
import string
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlsplit

from sluicegate.config import ADMIN_TOKEN_ENV, ADMIN_URL_ENV, MCP_CLIENT_SECRET_ENV, MCP_HEADERS_ENV, SECRET_VALUE_ENV
from sluicegate.spend.money import format_usd

if TYPE_CHECKING:
    import httpx

    from sluicegate.control.audit import Actor
    from sluicegate.control.settings import ControlSettings
    from sluicegate.control.store import ControlStore

DEFAULT_URL = "http://127.0.0.1:8080"
DATABASE_COMMANDS = ("migrate", "reseal", "bootstrap")  # the only `admin` commands that open the database
MAX_PAGE = 1000
SUPPRESS = argparse.SUPPRESS


# ── the table of commands ─────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Opt:
    """An argparse argument: its flags and keywords."""

    flags: tuple[str, ...]
    kw: dict[str, Any]


def opt(*flags: str, **kw: Any) -> Opt:
    return Opt(flags, kw)


@dataclass(frozen=True, slots=True)
class Verb:
    """One command: an API call. Path placeholders come from the arguments (`{org}` defaults to the
    token's org; `{scope}` is `workspaces/W` with `--workspace`, else `orgs/O`; `{target}` is the
    `--level`/`--id` entity). Arguments named in `body` or `query` are sent when given (their
    argparse default is SUPPRESS, so a missing one is not sent)."""

    method: str
    path: str
    opts: tuple[Opt, ...] = ()
    body: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # a list's table; a response's other lists show all their fields
    paged: bool = False
    shown_once: str | None = None  # the response field holding a value shown only now
    extra: Callable[[argparse.Namespace], dict[str, Any]] | None = None  # body fields read elsewhere
    help: str = ""


def _duration(text: str) -> int:
    """`86400`, `86400s`, `30m`, `1h`, `7d` as seconds."""
    found = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (86400s, 30m, 1h, 7d)")
    return int(found[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[found[2]]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _nullable(text: str) -> str | None:
    return None if text.lower() in ("", "none", "null") else text


def _policy_body(args: argparse.Namespace) -> dict[str, Any]:
    if bool(args.file) == bool(args.body):
        _usage("policy set takes one of --file FILE and --body JSON")
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text() if args.file else args.body
    except OSError as exc:
        _usage(f"cannot read the policy file {args.file}: {exc.strerror}")
    try:
        value = json.loads(text)
    except ValueError:
        _usage("the policy is not valid JSON")
    if not isinstance(value, dict):
        _usage("the policy must be a JSON object")
    return value


def _secret_value(args: argparse.Namespace) -> dict[str, Any]:
    value = os.environ.get(SECRET_VALUE_ENV) or sys.stdin.readline().rstrip("\n")
    if not value:
        _usage(f"no secret value: set {SECRET_VALUE_ENV} or write it to stdin")
    return {"value": value}


def _mcp_server(args: argparse.Namespace) -> dict[str, Any]:
    """The server's URL (`--server-url`: `--url` is the admin API's), its OAuth client credentials
    (`--token-url`, `--client-id`, `--scope`, the secret from `SLUICEGATE_MCP_CLIENT_SECRET`) and its
    headers, read from `SLUICEGATE_MCP_HEADERS` or stdin: secrets never from an argument."""
    body: dict[str, Any] = {"url": args.server_url}
    token_url = getattr(args, "token_url", None)
    if token_url is not None:
        secret = os.environ.get(MCP_CLIENT_SECRET_ENV)
        if not getattr(args, "client_id", None) or not secret:
            _usage(f"--token-url needs --client-id and the client secret in {MCP_CLIENT_SECRET_ENV}")
        body["oauth"] = {"token_url": token_url, "client_id": args.client_id, "client_secret": secret}
        if getattr(args, "scope", None):
            body["oauth"]["scope"] = args.scope
    text = os.environ.get(MCP_HEADERS_ENV)
    if text is None and not getattr(args, "headers_stdin", False):
        return body
    if text is None:
        text = sys.stdin.read()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        _usage('the headers must be a JSON object of strings ({"Authorization": "Bearer …"})')
    return {**body, "headers": value}


LIMIT = opt("--limit", type=int, default=100, help="at most this many rows (pages are followed)")
ORG = opt("--org", help="the organization (default: the token's own)")
SCOPE = (ORG, opt("--workspace", help="a workspace instead of the organization"))
ID = opt("id")
NAME = opt("name")
ENTITY = (
    opt("--description", default=SUPPRESS),
    opt("--tags", type=_csv, default=SUPPRESS, help="comma-separated; '' clears them"),
)
ENTITY_BODY = ("name", "description", "tags")
RENAME = opt("--name", default=SUPPRESS)
TIMES = (opt("--since", default=SUPPRESS), opt("--until", default=SUPPRESS))
EVENT_FILTERS = ("policy", "action", "entity", "route", "user", "key", "trace_id", "request_id")
LEDGER_FILTERS = ("user", "key", "model")
ROW = ("id", "name", "description", "tags", "created_at")
KEY_ROW = ("id", "name", "prefix", "user_id", "expires_at", "revoked_at", "last_used_at", "tags")


def _filters(names: tuple[str, ...]) -> tuple[Opt, ...]:
    return tuple(opt("--" + n.replace("_", "-"), default=SUPPRESS) for n in names)


def _entity(plural: str, parent: str, parent_opt: Opt | None, columns: tuple[str, ...]) -> dict[str, Verb]:
    """list/get/create/update/delete of an org, workspace, user or key (`parent`: where the list is)."""
    one = f"/{plural}/{{id}}"
    above = (parent_opt,) if parent_opt is not None else ()
    return {
        "list": Verb("GET", parent, (*above, LIMIT), columns=columns, paged=True),
        "get": Verb("GET", one, (ID,)),
        "create": Verb("POST", parent, (*above, NAME, *ENTITY), ENTITY_BODY),
        "update": Verb("PATCH", one, (ID, RENAME, *ENTITY), ENTITY_BODY),
        "delete": Verb("DELETE", one, (ID,)),
    }


_WS_REQUIRED = opt("--workspace", required=True)
_KEY_ENTITY = (*ENTITY, opt("--expires-at", type=_nullable, default=SUPPRESS, help="ISO time with zone; none clears"))
_LEVEL = (opt("--level", choices=["org", "workspace", "user", "key"], required=True), opt("--id", required=True))

COMMANDS: dict[str, dict[str, Verb] | Verb] = {
    "org": _entity("orgs", "/orgs", None, ROW),
    "workspace": _entity("workspaces", "/orgs/{org}/workspaces", ORG, ROW),
    "user": _entity("users", "/workspaces/{workspace}/users", _WS_REQUIRED, ROW),
    "key": {
        **_entity("keys", "/workspaces/{workspace}/keys", _WS_REQUIRED, KEY_ROW),
        "create": Verb(
            "POST",
            "/workspaces/{workspace}/keys",
            (
                _WS_REQUIRED,
                opt("--name", default="default"),
                opt("--user", dest="user_id", default=SUPPRESS),
                *_KEY_ENTITY,
            ),
            ("name", "user_id", "expires_at", "description", "tags"),
            shown_once="key",
        ),
        "update": Verb("PATCH", "/keys/{id}", (ID, RENAME, *_KEY_ENTITY), (*ENTITY_BODY, "expires_at")),
        "revoke": Verb("POST", "/keys/{id}/revoke", (ID,)),
        "rotate": Verb(
            "POST",
            "/keys/{id}/rotate",
            (ID, opt("--overlap", dest="overlap_s", type=_duration, default=SUPPRESS, help="1h, 30m, 86400s"), RENAME),
            ("overlap_s", "name"),
            shown_once="key",
            help="a new key; the old one keeps working for --overlap (default 1 day)",
        ),
    },
    "token": {
        "list": Verb(
            "GET",
            "/orgs/{org}/admin-tokens",
            (ORG, LIMIT),
            columns=("id", "name", "workspace_id", "role", "created_at", "expires_at", "revoked_at", "last_used_at"),
            paged=True,
        ),
        "create": Verb(
            "POST",
            "/orgs/{org}/admin-tokens",
            (
                ORG,
                opt("--workspace", dest="workspace_id", default=SUPPRESS, help="a workspace admin token"),
                opt("--name", default="cli"),
                opt("--role", choices=["admin", "viewer"], default=SUPPRESS),
                opt("--expires-at", default=SUPPRESS),
            ),
            ("name", "workspace_id", "role", "expires_at"),
            shown_once="token",
        ),
        "revoke": Verb("POST", "/orgs/{org}/admin-tokens/{id}/revoke", (ORG, ID)),
    },
    "secret": {
        "list": Verb("GET", "/{scope}/secrets", SCOPE, columns=("provider", "base_url", "project", "updated_at")),
        "set": Verb(
            "PUT",
            "/{scope}/secrets/{provider}",
            (*SCOPE, opt("provider"), opt("--base-url", default=SUPPRESS), opt("--project", default=SUPPRESS)),
            ("base_url", "project"),
            extra=_secret_value,
            help=f"the value from {SECRET_VALUE_ENV} or stdin",
        ),
        "delete": Verb("DELETE", "/{scope}/secrets/{provider}", (*SCOPE, opt("provider"))),
    },
    "mcp-server": {
        "list": Verb(
            "GET",
            "/workspaces/{workspace}/mcp-servers",
            (_WS_REQUIRED,),
            columns=("name", "url", "header_names", "oauth", "updated_at"),
        ),
        "set": Verb(
            "PUT",
            "/workspaces/{workspace}/mcp-servers/{name}",
            (
                _WS_REQUIRED,
                NAME,
                opt("--server-url", required=True, help="the server's Streamable HTTP URL"),
                opt("--description", default=SUPPRESS),
                opt("--headers-stdin", action="store_true", help="read the headers (a JSON object) from stdin"),
                opt("--token-url", default=None, help="OAuth client credentials: the token endpoint"),
                opt("--client-id", default=None, help="OAuth client id (the secret from the environment)"),
                opt("--scope", default=None, help="OAuth scope"),
            ),
            ("description",),
            extra=_mcp_server,
            help=f"register or replace; headers from {MCP_HEADERS_ENV} or --headers-stdin",
        ),
        "delete": Verb("DELETE", "/workspaces/{workspace}/mcp-servers/{name}", (_WS_REQUIRED, NAME)),
        "tools": Verb(
            "GET",
            "/workspaces/{workspace}/mcp-servers/{name}/tools",
            (_WS_REQUIRED, NAME),
            columns=("name", "access", "price_usd", "reason"),
            help="the server's tools as the gateway lists them, with the workspace's access and prices",
        ),
    },
    "policy": {
        "get": Verb("GET", "/{target}/policy", _LEVEL),
        "set": Verb(
            "PUT",
            "/{target}/policy",
            (*_LEVEL, opt("--file", help="a JSON file ('-': stdin)"), opt("--body", help="JSON text")),
            extra=_policy_body,
            help="replace a policy (refused below a lock)",
        ),
        "delete": Verb("DELETE", "/{target}/policy", _LEVEL),
        "effective": Verb("GET", "/keys/{id}/effective-policy", (ID,), help="the policy that applies to a key"),
    },
    "events": {
        "list": Verb(
            "GET",
            "/{scope}/events",
            (*SCOPE, *TIMES, *_filters(EVENT_FILTERS), LIMIT),
            query=("since", "until", *EVENT_FILTERS),
            columns=(
                *("at", "policy", "action", "direction", "entity", "count"),
                *("route", "workspace_id", "key_id", "trace_id"),
            ),
            paged=True,
        )
    },
    "audit": {
        "list": Verb(
            "GET",
            "/orgs/{org}/audit",
            (ORG, LIMIT),
            columns=("seq", "at", "actor", "action", "target", "client"),
            paged=True,
        )
    },
    "ledger": {
        "list": Verb(
            "GET",
            "/{scope}/ledger",
            (*SCOPE, *TIMES, *_filters(LEDGER_FILTERS), LIMIT),
            query=("since", "until", *LEDGER_FILTERS),
            columns=(
                "at",
                "workspace_id",
                "user_id",
                "key_id",
                "model",
                "input_tokens",
                "output_tokens",
                "cost_nusd",
            ),
            paged=True,
        )
    },
    "spend": Verb(
        "GET",
        "/{scope}/spend",
        (
            *SCOPE,
            *TIMES,
            opt("--group-by", dest="group_by", type=_csv, default=SUPPRESS, help="workspace,user,key,model,provider"),
            opt("--bucket", choices=["hour", "day"], default=SUPPRESS),
            *_filters(("user", "key", "model")),
        ),
        query=("since", "until", "group_by", "bucket", "user", "key", "model"),
        help="settled spend, summed, and the caps' windows",
    ),
    "monitoring": Verb(
        "GET",
        "/{scope}/monitoring",
        (*SCOPE, *TIMES, *_filters(("policy", "key"))),
        query=("since", "until", "policy", "key"),
        columns=("policy", "action", "entity", "workspace_id", "key_id", "events", "count"),
        help="what monitor-mode and rolled-out rules would have done",
    ),
    "whoami": Verb("GET", "/whoami", help="the admin token's scope"),
}


# ── the argument parser ───────────────────────────────────────────────────────────────────────


def register(sub: Any) -> None:
    """Add the `admin` and `audit` commands to the top-level subparsers."""
    admin = sub.add_parser("admin", help="the control plane: orgs, workspaces, users, keys, secrets, policies")
    admin.add_argument("--config", help="a TOML or YAML file (SLUICEGATE_CONFIG), for migrate and bootstrap")
    admin.add_argument("--url", help=f"the gateway's address ({ADMIN_URL_ENV}, default {DEFAULT_URL})")
    admin.add_argument("--token-file", help=f"a file holding the admin token (else {ADMIN_TOKEN_ENV})")
    admin.add_argument("--ca-file", help="a CA bundle to verify the gateway's TLS certificate")
    admin.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    admin.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    cmds.add_parser("migrate", help="apply pending schema migrations (prints the revisions applied and the head)")
    cmds.add_parser("reseal", help="seal every provider secret under the current master key (after a rotation)")
    boot = cmds.add_parser("bootstrap", help="first run: an org, a workspace, a key and an operator admin token")
    boot.add_argument("--org", default="default")
    boot.add_argument("--workspace", default="default")
    boot.add_argument("--user")
    boot.add_argument("--key-name", default="default")
    boot.add_argument("--expires-at")
    boot.add_argument(
        "--token-only", action="store_true", help="only an operator admin token (another one, or after a first start)"
    )
    # `--json` after the verb too (SUPPRESS: absent there, the admin-level flag stands)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=SUPPRESS, help="print the API's JSON")

    def add(parsers: Any, name: str, verb: Verb) -> None:
        parser = parsers.add_parser(name, help=verb.help or None, parents=[common])
        for o in verb.opts:
            parser.add_argument(*o.flags, **o.kw)
        parser.set_defaults(verb=verb)

    for name, entry in COMMANDS.items():
        if isinstance(entry, Verb):
            add(cmds, name, entry)
            continue
        group = cmds.add_parser(name, help=f"{name}: {', '.join(entry)}")
        verbs = group.add_subparsers(dest="admin_verb", required=True)
        for action, verb in entry.items():
            add(verbs, action, verb)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="check the keyed chain against its anchors; name the first bad row")
    verify.add_argument("--config", help="a TOML or YAML file (SLUICEGATE_CONFIG)")
    verify.add_argument(
        "--anchors",
        action="append",
        metavar="FILE",
        help="an anchor file to check against (repeatable; default control.audit_anchor_file)",
    )


def _usage(message: str) -> NoReturn:
    print(f"sluicegate: {message}", file=sys.stderr)
    raise SystemExit(2)


def _fail(message: str) -> NoReturn:
    print(f"sluicegate: {message}", file=sys.stderr)
    raise SystemExit(1)


# ── the API client ────────────────────────────────────────────────────────────────────────────


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        path = Path(args.token_file)
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as exc:
            _usage(f"cannot read the token file {path}: {exc.strerror}")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            _usage(f"the token file {path} is open to group or others: chmod 600 it")
        token = text.strip()
    else:
        token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if not token:
        _usage(f"no admin token: set {ADMIN_TOKEN_ENV} or pass --token-file FILE")
    if any(c.isspace() for c in token) or not token.isprintable():
        _usage("the admin token holds whitespace or control characters")
    return token


def _base_url(args: argparse.Namespace) -> str:
    url = (args.url or os.environ.get(ADMIN_URL_ENV) or DEFAULT_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.username or parts.password:
        _usage("--url must not hold credentials (the admin token is the only one sent)")  # nor repeat them
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _usage(f"--url must be an http(s) address, not {url!r}")
    if not args.timeout > 0:
        _usage("--timeout must be more than 0 seconds")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        print(f"sluicegate: warning: {url} is plain http; the admin token travels unencrypted", file=sys.stderr)
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class Api:
    """One admin API: every command's request goes through `call` (errors end the command)."""

    url: str
    client: httpx.Client
    token: str = field(repr=False)
    _whoami: dict[str, Any] | None = None

    @classmethod
    def open(cls, args: argparse.Namespace) -> Api:
        import httpx

        url, token = _base_url(args), _token(args)
        verify: Any = True
        if args.ca_file:
            import ssl

            try:
                verify = ssl.create_default_context(cafile=args.ca_file)
            except (OSError, ssl.SSLError) as exc:
                _usage(f"cannot load the CA file {args.ca_file}: {exc}")
        client = httpx.Client(
            base_url=url + "/admin/v1",
            headers={"authorization": f"Bearer {token}", "user-agent": "sluicegate-cli"},
            timeout=args.timeout,
            verify=verify,
            follow_redirects=False,
        )
        return cls(url, client, token)

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """The JSON answer (None for 204); an error answer or no answer ends the command."""
        import httpx

        try:
            resp = self.client.request(method, path, params=params, json=body)
        except httpx.TimeoutException:
            _fail(f"the admin API at {self.url} did not answer in time")
        except httpx.HTTPError as exc:
            reason = str(exc).replace(self.token, "*****") or type(exc).__name__
            _fail(f"cannot reach the admin API at {self.url}: {reason}")
        if resp.status_code == 204:
            return None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.is_success and data is not None:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            _fail(f"HTTP {resp.status_code} from {self.url}{resp.request.url.path} (not an admin API answer)")
        lines = [f"{error.get('code', 'error')}: {error.get('message', '')} (HTTP {resp.status_code})"]
        for f in error.get("fields") or []:
            lines.append(f"  {f.get('loc', '?')}: {f.get('msg', '')}")
        _fail("\n".join(lines).replace(self.token, "*****"))

    def whoami(self) -> dict[str, Any]:
        if self._whoami is None:
            self._whoami = self.call("GET", "/whoami")
        return self._whoami

    def pages(self, path: str, params: dict[str, Any], limit: int) -> dict[str, Any]:
        """A list's rows up to `limit`, following `next_cursor`; an answer without `has_more` is one page."""
        rows: list[Any] = []
        last: dict[str, Any] = {}
        cursor: str | None = None
        while len(rows) < limit:
            page = {**params, "limit": min(limit - len(rows), MAX_PAGE)}
            if cursor:
                page["cursor"] = cursor
            last = self.call("GET", path, page)
            rows += last.get("data", [])
            cursor = last.get("next_cursor")
            if not last.get("has_more") or not cursor:
                break
        more = len(rows) > limit or bool(last.get("has_more"))
        return {**last, "data": rows[:limit], "has_more": more, "next_cursor": cursor if more else None}


def _path(api: Api, template: str, args: argparse.Namespace) -> str:
    def org() -> str:
        if getattr(args, "org", None):
            return str(args.org)
        own = api.whoami().get("org_id")
        if not own:
            _usage("this token is an operator's: name the organization with --org")
        return str(own)

    values: dict[str, str] = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None or name in values:
            continue
        if name == "org":
            values[name] = org()
        elif name == "scope":
            ws = getattr(args, "workspace", None)
            values[name] = f"workspaces/{quote(ws, safe='')}" if ws else f"orgs/{quote(org(), safe='')}"
            continue
        elif name == "target":
            values[name] = f"{args.level}s/{quote(args.id, safe='')}"
            continue
        else:
            values[name] = str(getattr(args, name))
        values[name] = quote(values[name], safe="")
    return template.format_map(values)


def _request(api: Api, verb: Verb, args: argparse.Namespace) -> Any:
    path = _path(api, verb.path, args)
    params = {}
    for name in verb.query:
        if hasattr(args, name):
            value = getattr(args, name)
            params[name] = ",".join(value) if isinstance(value, list) else value
    if verb.paged:
        if args.limit < 1:
            _usage("--limit must be at least 1")
        return api.pages(path, params, args.limit)
    body: dict[str, Any] | None = None
    if verb.method in ("POST", "PUT", "PATCH"):
        body = {name: getattr(args, name) for name in verb.body if hasattr(args, name)}
        if verb.extra is not None:
            body |= verb.extra(args)
    return api.call(verb.method, path, params or None, body)


# ── output ────────────────────────────────────────────────────────────────────────────────────


def _cell(name: str, value: Any) -> str:
    if value is None or value == "":
        return "-"  # never an empty cell: the columns stay readable (and parseable)
    if name.endswith("_nusd") and isinstance(value, int) and not isinstance(value, bool):
        return format_usd(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value) or "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _heading(name: str) -> str:
    return name[: -len("_nusd")] + "_usd" if name.endswith("_nusd") else name


def table(rows: list[dict[str, Any]], columns: tuple[str, ...] = ()) -> list[str]:
    """Rows as aligned text: the named columns that any row has (else every field of the rows)."""
    if not rows:
        return ["(none)"]
    if columns:
        names = [c for c in columns if any(c in r for r in rows)]
    else:
        names = list(dict.fromkeys(k for r in rows for k in r))
    # `limit_nusd` is shown in USD as `limit_usd`, unless the rows carry a `limit_usd` of their own
    names = [n for n in names if n == _heading(n) or _heading(n) not in names]
    cells = [[_heading(n) for n in names]] + [[_cell(n, r.get(n)) for n in names] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(names))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]


def document(value: dict[str, Any], columns: tuple[str, ...] = ()) -> list[str]:
    """A response object: its plain fields as `name  value` lines, each list of objects as a table."""
    plain = {k: v for k, v in value.items() if not (isinstance(v, list) and v and isinstance(v[0], dict))}
    width = max((len(_heading(k)) for k in plain), default=0)
    lines = [f"{_heading(k).ljust(width)}  {_cell(k, v)}" for k, v in plain.items() if k not in ("has_more",)]
    for k, v in value.items():
        if k not in plain:
            lines += ["", f"{k}:", *table(v, columns if k == "data" else ())]
    return lines


def _show(verb: Verb, answer: Any, args: argparse.Namespace, what: str) -> None:
    if getattr(args, "json", False):
        if answer is not None:
            print(json.dumps(answer, indent=2))
        return
    if answer is None:
        print(f"{what}: done")
        return
    if isinstance(answer, dict) and isinstance(answer.get("data"), list):
        lines = table(answer["data"], verb.columns)
        if answer.get("has_more"):
            lines.append(f"(more rows: raise --limit above {len(answer['data'])})")
        rest = {k: v for k, v in answer.items() if k not in ("data", "has_more", "next_cursor")}
        if rest:
            lines += ["", *document(rest)]
        print("\n".join(lines))
        return
    secret = answer.pop(verb.shown_once, None) if verb.shown_once and isinstance(answer, dict) else None
    print("\n".join(document(answer) if isinstance(answer, dict) else [str(answer)]))
    if secret is not None:
        print(f"\n{verb.shown_once} (shown once): {secret}")


def _run_api(args: argparse.Namespace) -> None:
    verb: Verb = args.verb
    what = " ".join(x for x in (args.admin_command, getattr(args, "admin_verb", None)) if x)
    api = Api.open(args)
    try:
        _show(verb, _request(api, verb, args), args, what)
    finally:
        api.client.close()


# ── the database commands: migrate, bootstrap, audit verify ───────────────────────────────────


def _settings(args: argparse.Namespace) -> ControlSettings:
    from sluicegate.config import load_settings

    if args.config:
        os.environ["SLUICEGATE_CONFIG"] = str(Path(args.config).resolve())
    return load_settings().control


async def _with_store(
    settings: ControlSettings, body: Callable[[ControlStore], Awaitable[None]], changes: bool = True
) -> list[str]:
    """Open the store (migrating it), run `body`, close; returns the revisions the opening applied.
    A command that `changes` things may create the master key file and records what opening did
    (migrations, a key's first use); `audit verify` only reads."""
    from sluicegate.control.migrations import MigrationError
    from sluicegate.control.store import ControlStore
    from sluicegate.control.system_events import on_open

    store = ControlStore(settings)
    try:
        try:
            applied = await store.open(create_master_key=changes)
            if changes:
                await on_open(store, applied)
        except MigrationError as exc:
            _fail(f"the control plane's database was not migrated: {exc}")
        # ConfigError (an audit key, an anchor file) and MasterKeyError go to the command line's own
        # handler: a configuration that cannot run exits 2, as `serve` does.
        await body(store)
        return applied
    finally:
        await store.close()


async def _nothing(_store: ControlStore) -> None:
    return None


def _local_actor() -> Actor:
    from sluicegate.control.audit import Actor

    return Actor(f"cli/{getpass.getuser()}", os.urandom(12).hex(), "local")


async def _bootstrap(args: argparse.Namespace, store: ControlStore) -> None:
    from pydantic import ValidationError

    from sluicegate.control.schemas import KeyIn

    actor = _local_actor()
    if args.token_only:
        token_row, token = await store.create_admin_token(actor, None, None, "bootstrap")
        if getattr(args, "json", False):
            print(json.dumps({"admin_token": token_row, "operator_admin_token": token}, indent=2))
        else:
            print(f"operator admin token {token_row['id']} (shown once): {token}")
        return
    try:
        spec = KeyIn.model_validate({"name": args.key_name, "expires_at": args.expires_at})
    except ValidationError as exc:
        _usage(f"invalid key: {exc.errors(include_input=False)[0]['msg']}")
    org = await store.create_org(actor, args.org)
    ws = await store.create_workspace(actor, org["id"], args.workspace)
    user = await store.create_user(actor, ws, args.user) if args.user else None
    if user is not None:
        spec = spec.model_copy(update={"user_id": user["id"]})
    row, key = await store.create_key(actor, ws, spec)
    token_row, token = await store.create_admin_token(actor, None, None, "bootstrap")
    made = {"org": org, "workspace": ws, "user": user, "key": row, "admin_token": token_row}
    if getattr(args, "json", False):
        print(json.dumps({**made, "gateway_key": key, "operator_admin_token": token}, indent=2))
        return
    for name, entity in made.items():
        if entity is not None:
            print(f"{name:<12} {entity['id']}  {entity['name']}")
    print(f"gateway key (shown once): {key}")
    print(f"operator admin token (shown once): {token}")
    print(f"then: export {ADMIN_TOKEN_ENV}=<the token>; sluicegate admin whoami")


def run(args: argparse.Namespace) -> None:
    """Run an `admin` or `audit` command (exit status 1 on failure, 2 on a usage error, 3 for a
    broken audit chain)."""
    if args.command == "admin" and args.admin_command not in DATABASE_COMMANDS:
        _run_api(args)
        return
    settings = _settings(args)
    if args.command == "admin" and args.admin_command == "migrate":
        from sluicegate.control.migrations import revisions

        applied = asyncio.run(_with_store(settings, _nothing))
        print(json.dumps({"applied": applied, "head": revisions()[-1]}, indent=2))
        return
    if args.command == "admin" and args.admin_command == "reseal":

        async def reseal(store: ControlStore) -> None:
            done = await store.reseal(_local_actor())
            print(json.dumps(done, indent=2))
            if done["unopened"]:
                _fail(f"{done['unopened']} provider secret(s) do not open (damaged) and were left as they were")

        asyncio.run(_with_store(settings, reseal))
        return
    if args.command == "admin":

        async def boot(store: ControlStore) -> None:
            await _bootstrap(args, store)

        asyncio.run(_with_store(settings, boot))
        return
    from sluicegate.control import audit as audit_log
    from sluicegate.control.audit import AuditKeyError

    outcome: list[Any] = []

    async def verify(store: ControlStore) -> None:
        try:
            outcome.append(await store.verify_audit([Path(p) for p in args.anchors] if args.anchors else None))
        except AuditKeyError as exc:
            _fail(str(exc))

    asyncio.run(_with_store(settings, verify, changes=False))
    result = outcome[0]
    lines = audit_log.describe(result)
    print("\n".join(lines), file=sys.stdout if result.ok else sys.stderr)
    if not result.ok:
        raise SystemExit(3)
