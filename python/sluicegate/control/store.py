"""The control plane's storage: SQLAlchemy Core on an async engine, one code path for SQLite
(aiosqlite, a file) and PostgreSQL (asyncpg).

Every change runs in one transaction that first bumps `control_state.version` (which also takes
the write lock, serializing changes on both databases), then changes the rows, then appends
exactly one audit row. Instances watch `version` to know when to reload their view.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Table, and_, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sluicegate.control import anchors, audit
from sluicegate.control.anchors import AnchorWriter
from sluicegate.control.audit import SYSTEM, Actor, Keyring
from sluicegate.control.crypto import MasterKeyError, MasterKeyring, load_master_key, sealed_key_id
from sluicegate.control.keys import (
    display_prefix,
    generate_admin_token,
    generate_key,
    hash_key,
    is_live,
    new_id,
    now_iso,
)
from sluicegate.control.migrations import BEGIN_IMMEDIATE, MigrationError, migrate, pending
from sluicegate.control.models import (
    admin_tokens,
    api_keys,
    mcp_servers,
    orgs,
    policies,
    policy_events,
    secrets,
    spend_ledger,
    state,
    users,
    workspaces,
)
from sluicegate.control.schemas import KeyIn, Level, McpServerIn, PolicyIn, SecretIn, iso
from sluicegate.control.settings import ControlSettings
from sluicegate.mcp.servers import ToolPrices

log = logging.getLogger("sluicegate.control")
CHANNEL = "sluicegate:control:changed"
T = TypeVar("T")
Record = dict[str, Any]

_PUBLIC_KEY: tuple[str, ...] = ("id", "org_id", "workspace_id", "user_id", "name", "prefix", "created_at")
_PUBLIC_KEY += ("expires_at", "revoked_at", "last_used_at", "description", "tags")
# The tables of the entities the admin API names by kind (`PATCH`, `DELETE`).
ENTITY_TABLES: dict[str, Any] = {"org": orgs, "workspace": workspaces, "user": users, "key": api_keys}


# How each listed table pages: its sort key (unique, stable) and whether newest come first. Every
# list of the admin API is a keyset page over one of these (`ControlStore.page`).
PAGE_ORDER: dict[str, tuple[tuple[str, ...], bool]] = {
    "audit_log": (("seq",), False),
    "policy_events": (("at", "id"), True),
    "spend_ledger": (("at", "id"), True),
}
ENTITY_ORDER: tuple[tuple[str, ...], bool] = (("created_at", "id"), False)


def page_order(table: Table) -> tuple[tuple[str, ...], bool]:
    """(sort key columns, newest first) of a table's pages."""
    return PAGE_ORDER.get(table.name, ENTITY_ORDER)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its rows, and the sort key of its last row when more follow (else None)."""

    rows: list[Record]
    next_key: tuple[Any, ...] | None


def _past(columns: Sequence[Any], values: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """Rows after `values` in the order of `columns` (lexicographic: the first column, then the next…)."""
    beyond = (lambda c, v: c < v) if descending else (lambda c, v: c > v)
    clause: ColumnElement[bool] = beyond(columns[-1], values[-1])
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        clause = or_(beyond(column, value), and_(column == value, clause))
    return clause


def record_where(table: Table, org_id: str, filters: dict[str, str], since: str, until: str) -> list[Any]:
    """The conditions on data-plane records (events, ledger) of an organization in [since, until)."""
    where = [table.c.org_id == org_id, table.c.at >= since, table.c.at < until]
    return where + [table.c[column] == value for column, value in filters.items()]


class Conflict(ValueError):
    """The change contradicts what is stored (an unknown parent, a missing master key)."""


class Gone(LookupError):
    """The entity a change names was deleted meanwhile (by a request that won the write lock)."""


def row_dict(row: Row[Any]) -> Record:
    # Plain str keys: SQLAlchemy may hand back `quoted_name` keys, which orjson refuses. Tags are
    # stored as a JSON array and read back as a list.
    return {str(k): orjson.loads(v) if k == "tags" else v for k, v in row._mapping.items()}


def _stored(row: Record) -> Record:
    """A row as the table holds it (tags as JSON text)."""
    return {k: orjson.dumps(v).decode() if k == "tags" else v for k, v in row.items()}


def _rec(row: Row[Any] | None) -> Record | None:
    return row_dict(row) if row is not None else None


def public_key(row: Record) -> Record:
    """A key row without its hash."""
    return {k: row[k] for k in _PUBLIC_KEY}


FINGERPRINT_LABEL = b"sluicegate provider secret fingerprint v1"


def secret_fingerprint(key: bytes, value: str) -> str:
    """`fp_` and 12 hex digits of HMAC-SHA256(key, value): the same value gives the same
    fingerprint under one master key; the value cannot be recovered or tested without the key."""
    return "fp_" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:12]


def secret_context(level: str, scope_id: str, provider: str) -> str:
    return f"{level}:{scope_id}:{provider}"


def mcp_secret_name(server: str) -> str:
    """The secret that holds an MCP server's headers: `mcp.<name>`, which no provider name can be
    (so the secrets API, which takes provider names, can neither set nor remove it)."""
    return f"mcp.{server}"


def mcp_oauth_secret_name(server: str) -> str:
    """The secret that holds an MCP server's OAuth client secret: `mcp-oauth.<name>` (no provider's)."""
    return f"mcp-oauth.{server}"


def server_oauth(row: Record) -> dict[str, Any] | None:
    """A stored server's OAuth client credentials without the secret (`token_url`, `client_id`, `scope`)."""
    value = row.get("oauth")
    return orjson.loads(value) if value else None


def _names(value: Any) -> list[str]:
    return orjson.loads(value) if isinstance(value, str) else list(value)


def server_prices(row: Record) -> ToolPrices:
    """A stored server's prices (its `prices` JSON; free when empty)."""
    raw = orjson.loads(row.get("prices") or "{}")
    return ToolPrices(int(raw.get("per_call_nusd", 0)), {k: int(v) for k, v in raw.get("tools_nusd", {}).items()})


def _shown_server(row: Record, meta: Record | None) -> Record:
    return {
        "name": row["name"],
        "url": row["url"],
        "header_names": _names(row["header_names"]),
        "description": row.get("description") or "",
        **server_prices(row).as_json(),
        "oauth": server_oauth(row),
        "fingerprint": (meta or {}).get("fingerprint"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _audited_server(row: Record) -> Record:
    out = {"name": row["name"], "url": row["url"], "header_names": _names(row["header_names"])}
    out |= server_prices(row).as_json()
    if "headers" in row:
        out["headers"] = row["headers"]
    oauth = server_oauth(row)
    if oauth is not None:
        out["oauth"] = {**oauth, "client_secret": "set"}
    return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the data plane's view needs, read in one transaction."""

    version: int
    workspaces: dict[str, str]  # workspace id -> org id
    keys: list[Record]
    policies: dict[tuple[str, str], PolicyIn]
    secrets: list[Record]
    mcp_servers: list[Record] = field(default_factory=list)


class ControlStore:
    """The database behind the control plane.

    Arguments:
        settings: the `[control]` section.
    """

    def __init__(self, settings: ControlSettings) -> None:
        self.settings = settings
        path = settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 15} if settings.is_sqlite else {}
        self.engine: AsyncEngine = create_async_engine(settings.async_url(), connect_args=connect_args)
        if settings.is_sqlite:
            _sqlite_transactions(self.engine)
        self.master: MasterKeyring | None = None
        self._redis: Any = None
        self._announce_tries = 0
        self._audit: tuple[MasterKeyring | None, Keyring, AnchorWriter] | None = None

    async def open(self, create_master_key: bool = False, migrate_schema: bool = True) -> list[str]:
        """Bring the schema to the newest revision (`migrations/`) and load the master key.

        Arguments:
            create_master_key: create the key file beside a SQLite database on a first start.
            migrate_schema: False: only check that the schema is at the newest revision (the
                migrations run apart, `control.migrate_on_start = false`).

        Returns:
            The Alembic revision ids applied now, oldest first (empty when the schema was current).

        Raises:
            MigrationError: a migration failed, or (`migrate_schema` False) some are pending.
        """
        if not migrate_schema:
            missing = await pending(self.engine)
            if missing:
                raise MigrationError(
                    f"the database lacks {len(missing)} schema revision(s) ({', '.join(missing)}) and "
                    "control.migrate_on_start is false: run `sluicegate admin migrate` first"
                )
            applied: list[str] = []
        else:
            applied = await migrate(self.engine)
        self.master = load_master_key(self.settings, create_master_key, await self.sealed_key_ids())
        return applied

    async def close(self) -> None:
        if self._audit is not None:
            self._audit[2].flush()  # the last head this process made, anchored at shutdown
        if self._redis is not None:
            await self._redis.aclose()
        await self.engine.dispose()

    async def announce(self, version: int) -> None:
        """Tell other instances at once (Redis pub/sub); a failure only costs them a poll interval."""
        if self.settings.redis_url is None:
            return
        try:
            if self._redis is None:
                from sluicegate.redis_scripts import announcer

                self._redis = announcer(self.settings.redis_url.reveal(), timeout_s=1, attempt=self._announce_tries)
            await self._redis.publish(CHANNEL, str(version))
        except Exception as exc:
            log.warning(
                "control change not announced on Redis (%s); instances will see it by polling", type(exc).__name__
            )
            client, self._redis = self._redis, None  # the next announcement connects again (a cluster's next node)
            self._announce_tries += 1
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    def audit_keys(self) -> tuple[Keyring, AnchorWriter]:
        """The audit keys and this process's anchor writer, made from the settings and the master key
        (after `open()`); made again if the master key changed.

        Raises:
            AuditKeyError: a configured audit key is malformed or unreadable.
        """
        if self._audit is None or self._audit[0] is not self.master:
            if self._audit is not None:
                self._audit[2].flush()
            keyring = audit.load_keyring(self.settings, self.master)
            path, _ = self.settings.audit_anchor_path()
            writer = AnchorWriter(path, keyring.current, self.settings.audit_anchor_interval_s)
            self._audit = (self.master, keyring, writer)
        return self._audit[1], self._audit[2]

    async def record_system(
        self,
        action: str,
        target: str,
        diff: Callable[[AsyncConnection], Awaitable[tuple[Any, Any] | None]],
        actor: Actor = SYSTEM,
    ) -> int | None:
        """Append one audit row for an event that changes no other table (and no version: views
        have nothing to reload).

        Arguments:
            diff: called under the chain's lock with the transaction: the row's (before, after), or
                None to write nothing (the event was already recorded, perhaps by another instance).

        Returns:
            The row's seq, or None when nothing was written.
        """
        keyring, writer = self.audit_keys()
        async with self.engine.begin() as conn:
            await audit.lock(conn)
            change = await diff(conn)
            if change is None:
                return None
            head = await audit.append(conn, keyring.current, actor, action, target, None, *change)
        writer.note(head)
        return head.seq

    async def _change(
        self,
        actor: Actor,
        action: str,
        target: str,
        org_id: str | None,
        body: Callable[[AsyncConnection], Awaitable[tuple[T, Any, Any]]],
    ) -> T:
        keyring, writer = self.audit_keys()
        async with self.engine.begin() as conn:
            await conn.execute(update(state).where(state.c.id == 1).values(version=state.c.version + 1))
            result, before, after = await body(conn)
            head = await audit.append(conn, keyring.current, actor, action, target, org_id, before, after)
            version = (await conn.execute(select(state.c.version).where(state.c.id == 1))).scalar_one()
        writer.note(head)
        await self.announce(int(version))
        return result

    # ── reads ──────────────────────────────────────────────────────────────────────────────────

    async def sealed_key_ids(self) -> list[str]:
        """The id of the master key each stored provider secret is sealed under (never a value)."""
        async with self.engine.connect() as conn:
            return [sealed_key_id(c) for c in (await conn.execute(select(secrets.c.ciphertext))).scalars()]

    async def version(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(state.c.version).where(state.c.id == 1))).scalar_one())

    async def one(self, table: Any, entity_id: str) -> Record | None:
        async with self.engine.connect() as conn:
            return _rec((await conn.execute(select(table).where(table.c.id == entity_id))).first())

    async def many(self, table: Any, **where: Any) -> list[Record]:
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with self.engine.connect() as conn:
            return [row_dict(r) for r in await conn.execute(query.order_by(table.c.created_at, table.c.id))]

    async def orgs_list(self, org_id: str | None) -> list[Record]:
        return await self.many(orgs, **({"id": org_id} if org_id else {}))

    async def page(self, table: Table, where: Sequence[Any], after: Sequence[Any] | None, limit: int) -> Page:
        """Up to `limit` rows of `table` matching `where`, in the table's page order (`page_order`),
        after the row whose sort key is `after` (from the start when None). A keyset page: rows
        added meanwhile never shift a later page, so walking the pages yields each row once."""
        names, descending = page_order(table)
        columns = [table.c[n] for n in names]
        query = select(table).where(*where)
        if after is not None:
            query = query.where(_past(columns, list(after), descending))
        query = query.order_by(*(c.desc() if descending else c for c in columns)).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = [row_dict(r) for r in await conn.execute(query)]
        if len(rows) <= limit:
            return Page(rows, None)
        rows = rows[:limit]
        return Page(rows, tuple(rows[-1][n] for n in names))

    async def token_by_hash(self, token_hash: str) -> Record | None:
        async with self.engine.connect() as conn:
            query = select(admin_tokens).where(admin_tokens.c.token_hash == token_hash)
            return _rec((await conn.execute(query)).first())

    async def policy(self, level: str, entity_id: str) -> PolicyIn | None:
        async with self.engine.connect() as conn:
            query = select(policies.c.body).where(policies.c.level == level, policies.c.entity_id == entity_id)
            body = (await conn.execute(query)).scalar_one_or_none()
        return PolicyIn.model_validate_json(body) if body is not None else None

    async def secrets_list(self, level: str, scope_id: str) -> list[Record]:
        """Which providers have a secret at this scope, with their non-secret fields (never a value)."""
        async with self.engine.connect() as conn:
            query = select(secrets.c.provider, secrets.c.meta, secrets.c.updated_at)
            query = query.where(secrets.c.level == level, secrets.c.scope_id == scope_id).order_by(secrets.c.provider)
            rows = await conn.execute(query)
            return [{"provider": r.provider, **orjson.loads(r.meta), "updated_at": r.updated_at} for r in rows]

    async def audit_rows(self, org_id: str | None, after_seq: int = 0, limit: int = 100) -> list[Record]:
        return (await self.audit_page(org_id, after_seq, limit)).rows

    async def audit_page(self, org_id: str | None, after_seq: int = 0, limit: int = 100) -> Page:
        """Audit rows after `after_seq`, oldest first (their diffs parsed)."""
        t = audit.audit_log
        found = await self.page(t, [t.c.org_id == org_id] if org_id is not None else [], (after_seq,), limit)
        return Page([{**r, "diff": orjson.loads(r["diff"])} for r in found.rows], found.next_key)

    # ── data-plane records (no audit rows: they are not administrative changes) ─────────────────

    async def insert_records(self, events: list[Record], ledger: list[Record]) -> None:
        """Write a batch of policy events and spend-ledger rows in one transaction."""
        async with self.engine.begin() as conn:
            if events:
                await conn.execute(insert(policy_events), events)
            if ledger:
                await conn.execute(insert(spend_ledger), ledger)

    async def events(self, org_id: str, filters: dict[str, str], since: str, until: str, limit: int) -> list[Record]:
        """Policy events of an organization in [since, until), newest first, filtered by column values."""
        return (await self.events_page(org_id, filters, since, until, None, limit)).rows

    async def events_page(
        self, org_id: str, filters: dict[str, str], since: str, until: str, after: Sequence[Any] | None, limit: int
    ) -> Page:
        """A page of `events` (their details parsed)."""
        found = await self.page(policy_events, record_where(policy_events, org_id, filters, since, until), after, limit)
        return Page([{**r, "detail": orjson.loads(r["detail"])} for r in found.rows], found.next_key)

    async def monitoring(self, org_id: str, filters: dict[str, str], since: str, until: str) -> list[Record]:
        """What monitoring saw in [since, until): the events of decisions a policy would have taken
        but did not (`would_*` actions of monitor-mode or rolled-out rules, and redaction's
        `monitor`), counted by policy, action, entity (the rule's level or entity type), workspace and
        key. `events` is how many calls, `count` the findings or requests they carried."""
        t = policy_events
        keys = [t.c.policy, t.c.action, t.c.entity, t.c.workspace_id, t.c.key_id]
        query = (
            select(*keys, func.count().label("events"), func.sum(t.c.count).label("count"))
            .where(*record_where(t, org_id, filters, since, until))
            .where(or_(t.c.action.like("would\\_%", escape="\\"), t.c.action == "monitor"))
            .group_by(*keys)
            .order_by(*keys)
        )
        async with self.engine.connect() as conn:
            out = []
            for r in await conn.execute(query):
                row = row_dict(r)
                row["events"], row["count"] = int(row["events"]), int(row["count"] or 0)
                out.append(row)
            return out

    async def spend_rollup(
        self, org_id: str, filters: dict[str, str], group_by: list[str], bucket: str | None, since: str, until: str
    ) -> list[Record]:
        """Settled spend of an organization in [since, until), summed by `group_by` columns and an
        hour or day bucket (`at` is ISO text: its first 13 or 10 characters name the bucket)."""
        t = spend_ledger
        keys = [t.c[g].label(g) for g in group_by]
        if bucket is not None:
            keys.append(func.substr(t.c.at, 1, 13 if bucket == "hour" else 10).label("bucket"))
        query = select(
            *keys,
            func.count().label("calls"),
            func.sum(t.c.input_tokens).label("input_tokens"),
            func.sum(t.c.output_tokens).label("output_tokens"),
            func.sum(t.c.cost_nusd).label("cost_nusd"),
        ).where(t.c.org_id == org_id, t.c.at >= since, t.c.at < until)
        for column, value in filters.items():
            query = query.where(t.c[column] == value)
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
            out = []
            for r in rows:
                row = row_dict(r)
                for n in ("calls", "input_tokens", "output_tokens", "cost_nusd"):
                    row[n] = int(row[n] or 0)  # PostgreSQL sums bigints as numeric
                if row["calls"]:
                    out.append(row)
            return out

    async def verify_audit(self, anchor_files: Sequence[Path] | None = None) -> audit.VerifyResult:
        """Check the audit chain with the configured keys against the anchors.

        Arguments:
            anchor_files: where to read anchors; default the configured anchor file.
        """
        keyring, _ = self.audit_keys()
        if anchor_files is None:
            path, _ = self.settings.audit_anchor_path()
            anchor_files = [path] if path is not None else []
        pinned = anchors.read(anchor_files, keyring)  # before the rows: every anchored row is committed
        async with self.engine.connect() as conn:
            if not self.settings.is_sqlite:
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():  # one snapshot for the rows and the head
                return await audit.verify(conn, keyring, pinned)

    async def snapshot(self) -> Snapshot:
        async with self.engine.begin() as conn:
            version = int((await conn.execute(select(state.c.version).where(state.c.id == 1))).scalar_one())
            ws = {r.id: r.org_id for r in await conn.execute(select(workspaces.c.id, workspaces.c.org_id))}
            keys = [row_dict(r) for r in await conn.execute(select(api_keys))]
            pols = {
                (r.level, r.entity_id): PolicyIn.model_validate_json(r.body)
                for r in await conn.execute(select(policies))
            }
            secs = [row_dict(r) for r in await conn.execute(select(secrets))]
            servers = [row_dict(r) for r in await conn.execute(select(mcp_servers))]
        return Snapshot(version, ws, keys, pols, secs, servers)

    async def touch_keys(self, key_ids: list[str], at: str) -> None:
        """Record last use (no version bump: it changes nothing the data plane reads)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(api_keys).where(api_keys.c.id.in_(key_ids)).values(last_used_at=at))

    # ── changes: each writes exactly one audit row ────────────────────────────────────────────

    async def create_org(self, actor: Actor, name: str, description: str = "", tags: Sequence[str] = ()) -> Record:
        row: Record = {"id": new_id("org"), "name": name, "created_at": now_iso(), "description": description}
        row["tags"] = list(tags)

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            await conn.execute(insert(orgs).values(**_stored(row)))
            return row, None, row

        return await self._change(actor, "org.create", f"org/{row['id']}", row["id"], body)

    async def create_workspace(
        self, actor: Actor, org_id: str, name: str, description: str = "", tags: Sequence[str] = ()
    ) -> Record:
        row: Record = {"id": new_id("ws"), "org_id": org_id, "name": name, "created_at": now_iso()}
        row |= {"description": description, "tags": list(tags)}

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            await conn.execute(insert(workspaces).values(**_stored(row)))
            return row, None, row

        return await self._change(actor, "workspace.create", f"workspace/{row['id']}", org_id, body)

    async def create_user(
        self, actor: Actor, workspace: Record, name: str, description: str = "", tags: Sequence[str] = ()
    ) -> Record:
        row = {"id": new_id("user"), "org_id": workspace["org_id"], "workspace_id": workspace["id"]}
        row |= {"name": name, "created_at": now_iso(), "description": description, "tags": list(tags)}

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            await conn.execute(insert(users).values(**_stored(row)))
            return row, None, row

        return await self._change(actor, "user.create", f"user/{row['id']}", row["org_id"], body)

    async def create_key(self, actor: Actor, workspace: Record, spec: KeyIn) -> tuple[Record, str]:
        """A new gateway key; returns its row and the key itself (shown once, never stored)."""
        if spec.user_id is not None:
            user = await self.one(users, spec.user_id)
            if user is None or user["workspace_id"] != workspace["id"]:
                raise Conflict("user_id names no user of this workspace")
        key = generate_key()
        row = {
            "id": new_id("key"),
            "org_id": workspace["org_id"],
            "workspace_id": workspace["id"],
            "user_id": spec.user_id,
            "name": spec.name,
            "key_hash": hash_key(key),
            "prefix": display_prefix(key),
            "created_at": now_iso(),
            "expires_at": iso(spec.expires_at),
            "revoked_at": None,
            "last_used_at": None,
            "description": spec.description,
            "tags": list(spec.tags),
        }

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            await conn.execute(insert(api_keys).values(**_stored(row)))
            return public_key(row), None, public_key(row)

        return await self._change(actor, "key.create", f"key/{row['id']}", row["org_id"], body), key

    async def revoke_key(self, actor: Actor, key: Record) -> Record:
        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            at = key["revoked_at"] or now_iso()
            await conn.execute(update(api_keys).where(api_keys.c.id == key["id"]).values(revoked_at=at))
            after = public_key({**key, "revoked_at": at})
            return after, {"revoked_at": key["revoked_at"]}, {"revoked_at": at}

        return await self._change(actor, "key.revoke", f"key/{key['id']}", key["org_id"], body)

    async def rotate_key(self, actor: Actor, key: Record, overlap_s: int, name: str | None) -> tuple[Record, str]:
        """A new key in the old one's workspace and user, and the old one kept until `overlap_s` from
        now (not later than an expiry it already had): one change, one audit row (ids and the end of
        the overlap, never a key value).

        Returns:
            The new key's row with `replaces` and `old_key_expires_at`, and the new key (shown once).

        Raises:
            Conflict: the old key is revoked or has expired.
        """
        key_value = generate_key()
        now = datetime.now(UTC)
        row = {
            "id": new_id("key"),
            "org_id": key["org_id"],
            "workspace_id": key["workspace_id"],
            "user_id": key["user_id"],
            "name": name if name is not None else key["name"],
            "key_hash": hash_key(key_value),
            "prefix": display_prefix(key_value),
            "created_at": now.isoformat(timespec="microseconds"),
            "expires_at": None,
            "revoked_at": None,
            "last_used_at": None,
            "description": key.get("description", ""),  # where it is used: the same place as the old one
            "tags": list(key.get("tags") or []),
        }

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            # Read under the write lock (taken by the version bump): a revocation just committed counts.
            old = row_dict((await conn.execute(select(api_keys).where(api_keys.c.id == key["id"]))).one())
            if not is_live(old["expires_at"], old["revoked_at"], now):
                raise Conflict("the key is " + ("revoked" if old["revoked_at"] is not None else "expired"))
            ends = now + timedelta(seconds=overlap_s)
            if old["expires_at"] is not None:
                ends = min(ends, datetime.fromisoformat(old["expires_at"]))
            until = ends.isoformat(timespec="microseconds")
            await conn.execute(update(api_keys).where(api_keys.c.id == old["id"]).values(expires_at=until))
            await conn.execute(insert(api_keys).values(**_stored(row)))
            shown = {**public_key(row), "replaces": old["id"], "old_key_expires_at": until}
            before = {"key_id": old["id"], "expires_at": old["expires_at"]}
            after = {"key_id": old["id"], "expires_at": until, "new_key_id": row["id"]}
            return shown, before, after

        return await self._change(actor, "key.rotate", f"key/{key['id']}", key["org_id"], body), key_value

    async def create_admin_token(
        self,
        actor: Actor,
        org_id: str | None,
        workspace_id: str | None,
        name: str,
        role: str = "admin",
        expires_at: str | None = None,
    ) -> tuple[Record, str]:
        """A new admin token (`role` admin or viewer; `expires_at` ISO text or None); returns its row
        (without the hash) and the token itself (shown once, never stored)."""
        token = generate_admin_token()
        row = {"id": new_id("tok"), "org_id": org_id, "workspace_id": workspace_id, "name": name}
        row |= {"token_hash": hash_key(token), "created_at": now_iso(), "revoked_at": None, "role": role}
        row |= {"expires_at": expires_at, "last_used_at": None}
        public = {k: v for k, v in row.items() if k != "token_hash"}

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            await conn.execute(insert(admin_tokens).values(**row))
            return public, None, public

        return await self._change(actor, "admin_token.create", f"admin_token/{row['id']}", org_id, body), token

    async def touch_admin_token(self, token_id: str, at: str) -> None:
        """Record an admin token's last use (no version bump, no audit row: sign-in bookkeeping)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(admin_tokens).where(admin_tokens.c.id == token_id).values(last_used_at=at))

    async def revoke_admin_token(self, actor: Actor, token: Record) -> Record:
        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            at = token["revoked_at"] or now_iso()
            await conn.execute(update(admin_tokens).where(admin_tokens.c.id == token["id"]).values(revoked_at=at))
            public = {k: v for k, v in token.items() if k != "token_hash"} | {"revoked_at": at}
            return public, {"revoked_at": token["revoked_at"]}, {"revoked_at": at}

        return await self._change(actor, "admin_token.revoke", f"admin_token/{token['id']}", token["org_id"], body)

    async def set_secret(
        self, actor: Actor, level: str, scope_id: str, org_id: str, provider: str, spec: SecretIn
    ) -> Record:
        if self.master is None:
            raise Conflict("no master key is configured (control.master_key or control.master_key_file)")
        meta: Record = {k: v for k, v in (("base_url", spec.base_url), ("project", spec.project)) if v is not None}
        try:
            sealed = self.master.seal(spec.value, secret_context(level, scope_id, provider))
        except MasterKeyError as exc:
            raise Conflict(str(exc)) from None
        # Who set it, and a fingerprint to tell two values apart (and match one an admin holds)
        # without showing either: keyed, so a guessable value cannot be checked from it.
        meta["fingerprint"] = secret_fingerprint(self.master.derive(FINGERPRINT_LABEL), spec.value)
        meta["set_by"] = actor.name
        now = now_iso()
        where = (secrets.c.level == level, secrets.c.scope_id == scope_id, secrets.c.provider == provider)
        shown = {"provider": provider, **meta, "updated_at": now}

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            old = (await conn.execute(select(secrets.c.meta).where(*where))).scalar_one_or_none()
            before = {"provider": provider, "value": "set", **orjson.loads(old)} if old is not None else None
            values = {"ciphertext": sealed, "meta": orjson.dumps(meta).decode(), "updated_at": now}
            if old is None:
                await conn.execute(
                    insert(secrets).values(level=level, scope_id=scope_id, provider=provider, org_id=org_id, **values)
                )
            else:
                await conn.execute(update(secrets).where(*where).values(**values))
            return shown, before, {**shown, "value": "set"}

        return await self._change(actor, "secret.set", f"{level}/{scope_id}/secrets/{provider}", org_id, body)

    # ── upstream MCP servers ───────────────────────────────────────────────────────────────────

    async def mcp_servers_list(self, workspace_id: str) -> list[Record]:
        """A workspace's MCP servers as they are shown (header names, never values)."""
        async with self.engine.connect() as conn:
            query = select(mcp_servers).where(mcp_servers.c.workspace_id == workspace_id).order_by(mcp_servers.c.name)
            rows = [row_dict(r) for r in await conn.execute(query)]
            where = (secrets.c.level == "workspace", secrets.c.scope_id == workspace_id)
            metas = {
                r.provider: orjson.loads(r.meta)
                for r in await conn.execute(select(secrets.c.provider, secrets.c.meta).where(*where))
            }
        return [_shown_server(r, metas.get(mcp_secret_name(r["name"]))) for r in rows]

    async def set_mcp_server(self, actor: Actor, workspace: Record, name: str, spec: McpServerIn) -> Record:
        """Register (or replace) a workspace's MCP server, with its headers sealed as the workspace's
        secret `mcp.<name>` (none: no secret) and its OAuth client secret as `mcp-oauth.<name>`, in
        one change with one audit row (the URL, the header names, the OAuth token URL, client id and
        scope; the values only as `set`).

        Raises:
            Conflict: headers or a client secret are given and no master key is configured.
        """
        ws_id, org_id = workspace["id"], workspace["org_id"]
        secret_name = mcp_secret_name(name)
        sealed = meta = None
        if spec.headers:
            sealed, meta = self._sealed(actor, ws_id, secret_name, orjson.dumps(spec.headers).decode())
        oauth_name = mcp_oauth_secret_name(name)
        oauth_sealed = oauth_meta = None
        if spec.oauth is not None:
            oauth_sealed, oauth_meta = self._sealed(actor, ws_id, oauth_name, spec.oauth.client_secret)
        now = now_iso()
        header_names = sorted(spec.headers)
        row = {"workspace_id": ws_id, "name": name, "org_id": org_id, "url": spec.url}
        row |= {"header_names": orjson.dumps(header_names).decode(), "description": spec.description}
        prices = ToolPrices.from_usd(spec.price_usd, spec.tool_price_usd)
        row["prices"] = orjson.dumps(
            {"per_call_nusd": prices.per_call_nusd, "tools_nusd": dict(prices.tools_nusd)}
        ).decode()
        oauth = spec.oauth
        row["oauth"] = (
            orjson.dumps({"token_url": oauth.token_url, "client_id": oauth.client_id, "scope": oauth.scope}).decode()
            if oauth is not None
            else None
        )
        where = (mcp_servers.c.workspace_id == ws_id, mcp_servers.c.name == name)
        swhere = (
            secrets.c.level == "workspace",
            secrets.c.scope_id == ws_id,
            secrets.c.provider.in_([secret_name, oauth_name]),
        )

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            old = _rec((await conn.execute(select(mcp_servers).where(*where))).first())
            if old is None:
                await conn.execute(insert(mcp_servers).values(**row, created_at=now, updated_at=now))
            else:
                await conn.execute(update(mcp_servers).where(*where).values(**row, updated_at=now))
            await conn.execute(delete(secrets).where(*swhere))
            for provider, ciphertext, info in ((secret_name, sealed, meta), (oauth_name, oauth_sealed, oauth_meta)):
                if ciphertext is None or info is None:
                    continue
                values = {"ciphertext": ciphertext, "meta": orjson.dumps(info).decode(), "updated_at": now}
                await conn.execute(
                    insert(secrets).values(
                        level="workspace", scope_id=ws_id, provider=provider, org_id=org_id, **values
                    )
                )
            created = old["created_at"] if old is not None else now
            shown = _shown_server({**row, "created_at": created, "updated_at": now}, meta)
            before = _audited_server(old) if old is not None else None
            return shown, before, _audited_server({**row, "headers": "set" if spec.headers else None})

        return await self._change(actor, "mcp_server.set", f"workspace/{ws_id}/mcp_servers/{name}", org_id, body)

    def _sealed(self, actor: Actor, ws_id: str, secret_name: str, value: str) -> tuple[str, Record]:
        """`value` sealed as the workspace's secret `secret_name`, and its meta (fingerprint, setter).

        Raises:
            Conflict: no master key is configured, or it cannot seal.
        """
        if self.master is None:
            raise Conflict("no master key is configured (control.master_key or control.master_key_file)")
        try:
            sealed = self.master.seal(value, secret_context("workspace", ws_id, secret_name))
        except MasterKeyError as exc:
            raise Conflict(str(exc)) from None
        meta = {"fingerprint": secret_fingerprint(self.master.derive(FINGERPRINT_LABEL), value), "set_by": actor.name}
        return sealed, meta

    async def delete_mcp_server(self, actor: Actor, workspace: Record, name: str) -> bool:
        """Remove a workspace's MCP server and its sealed headers and client secret (one change, one
        audit row)."""
        ws_id = workspace["id"]
        where = (mcp_servers.c.workspace_id == ws_id, mcp_servers.c.name == name)
        async with self.engine.connect() as conn:
            old = _rec((await conn.execute(select(mcp_servers).where(*where))).first())
        if old is None:
            return False
        swhere = (
            secrets.c.level == "workspace",
            secrets.c.scope_id == ws_id,
            secrets.c.provider.in_([mcp_secret_name(name), mcp_oauth_secret_name(name)]),
        )

        async def body(conn: AsyncConnection) -> tuple[bool, Any, Any]:
            await conn.execute(delete(mcp_servers).where(*where))
            await conn.execute(delete(secrets).where(*swhere))
            return True, _audited_server(old), None

        target = f"workspace/{ws_id}/mcp_servers/{name}"
        return await self._change(actor, "mcp_server.delete", target, workspace["org_id"], body)

    async def reseal(self, actor: Actor) -> Record:
        """Seal every provider secret under the current master key, in one change with one audit
        row (counts by key id only). A secret that opens under no key of the ring (damaged) is left
        as it is and counted as `unopened`. Run when every secret is current, it changes nothing
        but still records that it ran.

        Returns:
            `{"master_key_id", "resealed", "current", "unopened", "before"}`: the current key's id,
            how many secrets were sealed again, how many already were under it, how many do not
            open, and the count per key id before.

        Raises:
            Conflict: no master key is configured.
        """
        ring = self.master
        if ring is None:
            raise Conflict("no master key is configured (control.master_key or control.master_key_file)")
        current = ring.key_id

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            rows = (await conn.execute(select(secrets))).all()
            before = dict(Counter(sealed_key_id(r.ciphertext) for r in rows))
            resealed = unopened = 0
            for r in rows:
                if sealed_key_id(r.ciphertext) == current:
                    continue
                context = secret_context(r.level, r.scope_id, r.provider)
                try:
                    sealed = ring.seal(ring.open(r.ciphertext, context), context)
                except MasterKeyError:
                    unopened += 1
                    continue
                where = (secrets.c.level == r.level, secrets.c.scope_id == r.scope_id, secrets.c.provider == r.provider)
                await conn.execute(update(secrets).where(*where).values(ciphertext=sealed))
                resealed += 1
            result = {"master_key_id": current, "resealed": resealed, "unopened": unopened}
            result |= {"current": before.get(current, 0), "before": before}
            after = {"master_key_id": current, "resealed": resealed, "unopened": unopened}
            return result, {"sealed": before}, after

        return await self._change(actor, "secret.reseal", f"master_key/{current}", None, body)

    async def delete_secret(self, actor: Actor, level: str, scope_id: str, org_id: str, provider: str) -> bool:
        where = (secrets.c.level == level, secrets.c.scope_id == scope_id, secrets.c.provider == provider)
        async with self.engine.connect() as conn:
            old = (await conn.execute(select(secrets.c.meta).where(*where))).scalar_one_or_none()
        if old is None:
            return False

        async def body(conn: AsyncConnection) -> tuple[bool, Any, Any]:
            await conn.execute(delete(secrets).where(*where))
            return True, {"provider": provider, "value": "set", **orjson.loads(old)}, None

        return await self._change(actor, "secret.delete", f"{level}/{scope_id}/secrets/{provider}", org_id, body)

    async def set_policy(self, actor: Actor, level: Level, entity_id: str, org_id: str, policy: PolicyIn) -> PolicyIn:
        where = (policies.c.level == level, policies.c.entity_id == entity_id)
        text = policy.model_dump_json()

        async def body(conn: AsyncConnection) -> tuple[PolicyIn, Any, Any]:
            old = (await conn.execute(select(policies.c.body).where(*where))).scalar_one_or_none()
            if old is None:
                await conn.execute(
                    insert(policies).values(
                        level=level, entity_id=entity_id, org_id=org_id, body=text, updated_at=now_iso()
                    )
                )
            else:
                await conn.execute(update(policies).where(*where).values(body=text, updated_at=now_iso()))
            return policy, orjson.loads(old) if old else None, policy.model_dump(mode="json")

        return await self._change(actor, "policy.set", f"{level}/{entity_id}/policy", org_id, body)

    async def delete_policy(self, actor: Actor, level: Level, entity_id: str, org_id: str) -> bool:
        """Remove the policy at one level (the levels above, and their locks, still apply).

        Returns:
            False when there was none (nothing changed, nothing audited).
        """
        where = (policies.c.level == level, policies.c.entity_id == entity_id)
        async with self.engine.connect() as conn:
            if (await conn.execute(select(policies.c.level).where(*where))).first() is None:
                return False

        async def body(conn: AsyncConnection) -> tuple[bool, Any, Any]:
            old = (await conn.execute(select(policies.c.body).where(*where))).scalar_one_or_none()
            await conn.execute(delete(policies).where(*where))
            return old is not None, orjson.loads(old) if old else None, None

        return await self._change(actor, "policy.delete", f"{level}/{entity_id}/policy", org_id, body)

    # ── entity changes and deletions ──────────────────────────────────────────────────────────

    async def update_entity(self, actor: Actor, kind: str, row: Record, changes: Record) -> Record:
        """Change some fields of an org, workspace, user or key (`ENTITY_TABLES`); the audit row
        holds those fields before and after (a key's hash is never among them).

        Returns:
            The row after the change (a key without its hash).

        Raises:
            Gone: the entity was deleted meanwhile.
        """
        table, entity_id = ENTITY_TABLES[kind], row["id"]

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            old = _rec((await conn.execute(select(table).where(table.c.id == entity_id))).first())
            if old is None:
                raise Gone(kind)
            await conn.execute(update(table).where(table.c.id == entity_id).values(**_stored(changes)))
            new = old | changes
            return public_key(new) if kind == "key" else new, {k: old[k] for k in changes}, dict(changes)

        org_id = entity_id if kind == "org" else row["org_id"]
        return await self._change(actor, f"{kind}.update", f"{kind}/{entity_id}", org_id, body)

    async def delete_org(self, actor: Actor, org: Record) -> Record:
        """Delete an organization that has no workspaces, with its own policy, default secrets and
        admin tokens. The audit row holds the org and how many of each went (counts, never values).

        Raises:
            Conflict: the organization still has workspaces.
        """
        org_id = org["id"]

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            spaces = (
                await conn.execute(select(func.count()).select_from(workspaces).where(workspaces.c.org_id == org_id))
            ).scalar_one()
            if spaces:
                raise Conflict(f"the organization still has {spaces} workspace(s): delete them first")
            removed = {
                "policies": await _deleted(conn, policies, policies.c.level == "org", policies.c.entity_id == org_id),
                "secrets": await _deleted(conn, secrets, secrets.c.level == "org", secrets.c.scope_id == org_id),
                "admin_tokens": await _deleted(conn, admin_tokens, admin_tokens.c.org_id == org_id),
            }
            if not await _deleted(conn, orgs, orgs.c.id == org_id):
                raise Gone("org")
            return removed, {"org": {k: org[k] for k in ("id", "name")}, "removed": removed}, None

        return await self._change(actor, "org.delete", f"org/{org_id}", org_id, body)

    async def delete_workspace(self, actor: Actor, workspace: Record) -> Record:
        """Delete a workspace with everything in it, in one change: its users, keys (which stop
        working at the next view refresh), workspace-scoped admin tokens, provider secrets and the
        policies of the workspace, its users and its keys. Policy events and spend-ledger rows stay.
        The audit row holds the workspace and how many of each went (counts, never values)."""
        ws_id = workspace["id"]

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            user_ids = select(users.c.id).where(users.c.workspace_id == ws_id).scalar_subquery()
            key_ids = select(api_keys.c.id).where(api_keys.c.workspace_id == ws_id).scalar_subquery()
            own = (policies.c.level == "workspace") & (policies.c.entity_id == ws_id)
            of_users = (policies.c.level == "user") & policies.c.entity_id.in_(user_ids)
            of_keys = (policies.c.level == "key") & policies.c.entity_id.in_(key_ids)
            removed = {"policies": await _deleted(conn, policies, own | of_users | of_keys)}
            removed["secrets"] = await _deleted(
                conn, secrets, secrets.c.level == "workspace", secrets.c.scope_id == ws_id
            )
            removed["mcp_servers"] = await _deleted(conn, mcp_servers, mcp_servers.c.workspace_id == ws_id)
            removed["admin_tokens"] = await _deleted(conn, admin_tokens, admin_tokens.c.workspace_id == ws_id)
            removed["keys"] = await _deleted(conn, api_keys, api_keys.c.workspace_id == ws_id)
            removed["users"] = await _deleted(conn, users, users.c.workspace_id == ws_id)
            if not await _deleted(conn, workspaces, workspaces.c.id == ws_id):
                raise Gone("workspace")
            shown = {k: workspace[k] for k in ("id", "org_id", "name")}
            return removed, {"workspace": shown, "removed": removed}, None

        return await self._change(actor, "workspace.delete", f"workspace/{ws_id}", workspace["org_id"], body)

    async def delete_user(self, actor: Actor, user: Record) -> Record:
        """Delete a user and its policy. Its keys are revoked and kept (no longer naming the user),
        so what they did stays readable; the audit row counts them."""
        user_id = user["id"]

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            at = now_iso()
            owned = api_keys.c.user_id == user_id
            revoked = await conn.execute(
                update(api_keys).where(owned, api_keys.c.revoked_at.is_(None)).values(revoked_at=at)
            )
            detached = await conn.execute(update(api_keys).where(owned).values(user_id=None))
            removed = {
                "policies": await _deleted(conn, policies, policies.c.level == "user", policies.c.entity_id == user_id)
            }
            if not await _deleted(conn, users, users.c.id == user_id):
                raise Gone("user")
            counts = {"keys_revoked": revoked.rowcount, "keys_detached": detached.rowcount, **removed}
            shown = {k: user[k] for k in ("id", "workspace_id", "name")}
            return counts, {"user": shown, "removed": counts}, None

        return await self._change(actor, "user.delete", f"user/{user_id}", user["org_id"], body)

    async def delete_key(self, actor: Actor, key: Record) -> Record:
        """Delete a key and its own policy (it stops working at the next view refresh)."""
        key_id = key["id"]

        async def body(conn: AsyncConnection) -> tuple[Record, Any, Any]:
            removed = {
                "policies": await _deleted(conn, policies, policies.c.level == "key", policies.c.entity_id == key_id)
            }
            if not await _deleted(conn, api_keys, api_keys.c.id == key_id):
                raise Gone("key")
            return removed, {"key": public_key(key), "removed": removed}, None

        return await self._change(actor, "key.delete", f"key/{key_id}", key["org_id"], body)


async def _deleted(conn: AsyncConnection, table: Any, *where: Any) -> int:
    """Delete the rows that match; returns how many went."""
    return int((await conn.execute(delete(table).where(*where))).rowcount)


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the driver, begin transactions, so DDL and reads are transactional too."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=15000")  # first: the journal mode switch may wait for a lock
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":  # set once per database file; a no-op after
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # Migrations take the write lock at once, so instances that start together wait for each other.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(BEGIN_IMMEDIATE) else "BEGIN")
