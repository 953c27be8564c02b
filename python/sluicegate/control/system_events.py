"""Audit rows for what no admin request changes: the migrations applied, the first use of a master
key and of an audit key, the effective configuration at start (when it differs from the last one
recorded), failed admin sign-ins, and valid admin tokens asking outside their scope, the last two
rate-limited so that a flood of requests cannot flood the log. Each is one row by actor `system`
(`unauthenticated` for failed sign-ins, the token for denials) in the same keyed chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncConnection

from sluicegate.config import ConfigError
from sluicegate.control import audit
from sluicegate.control.audit import Actor, AuditKey
from sluicegate.control.store import ControlStore
from sluicegate.secrets import Secret

__all__ = ["AccessDenials", "AuthFailures", "config_digest", "on_open", "record_config"]

log = logging.getLogger("sluicegate.control.audit")
_SECRET_MAPS = frozenset({"headers"})  # values may carry credentials
OTHERS = "*"
MAX_DETAILS = 10  # scopes and attempts listed in one rate-limited row, at most


async def _once(store: ControlStore, action: str, target: str, after: dict[str, Any]) -> int | None:
    """Record `action` on `target` unless a row of it exists (checked again under the lock, so
    instances that start together write it once)."""
    async with store.read() as conn:
        if await audit.latest(conn, action, target) is not None:
            return None

    async def diff(conn: AsyncConnection) -> tuple[Any, Any] | None:
        return None if await audit.latest(conn, action, target) is not None else (None, after)

    return await store.record_system(action, target, diff)


async def on_open(store: ControlStore, applied: Sequence[int | str]) -> None:
    """After `store.open()` in a process that serves or changes the control plane (not in `audit
    verify`, which only reads): check where anchors go, then record the migrations just applied
    and the first use of the master key and of the audit key.

    Arguments:
        applied: the migrations `open()` applied now.

    Raises:
        AuditKeyError: a configured audit key is malformed, or the log is keyed and no key is set.
        ConfigError: the `audit_anchor_file` you named cannot be appended to.
    """
    keyring, writer = store.audit_keys()
    path, named = store.settings.audit_anchor_path()
    async with store.read() as conn:  # a keyed log without its key, or rotated without the old one: no start
        audit.need_key(await audit.read_head(conn), keyring.current, keyring)
    if keyring.current is None:
        log.warning(
            "the audit log is not keyed: set control.audit_key or a master key, or rows can be rewritten unnoticed"
        )
    elif path is None:
        log.warning("audit anchors are off: set control.audit_anchor_file, or deleted newest rows go unnoticed")
    else:
        try:
            writer.check()
        except OSError as exc:
            if named:
                raise ConfigError(f"control.audit_anchor_file {path} cannot be appended to: {exc.strerror}") from None
            writer.path = None
            log.warning("audit anchors are off: %s cannot be written (%s); set control.audit_anchor_file", path, exc)
    if applied:
        await store.record_system("migrations.apply", "schema", _constant(None, {"applied": list(applied)}))
    if store.master is not None:
        key_id = store.master.key_id
        await _once(store, "master_key.first_use", f"master_key/{key_id}", {"key_id": key_id})
    if keyring.current is not None:
        key = keyring.current
        await _once(
            store, "audit_key.first_use", f"audit_key/{key.key_id}", {"key_id": key.key_id, "source": key.source}
        )


def _constant(before: Any, after: Any) -> Callable[[AsyncConnection], Any]:
    async def diff(conn: AsyncConnection) -> tuple[Any, Any]:
        return before, after

    return diff


def _digest(key: AuditKey | None, text: str) -> str:
    if key is not None:
        return key.fingerprint(text)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _masked(value: Any, key: AuditKey | None, secret: bool = False) -> Any:
    """Settings as plain JSON with every secret replaced by its keyed fingerprint (`*****` without a
    key): a changed secret changes the digest, and the digest reveals no secret."""
    if isinstance(value, Secret):
        return _masked(value.reveal(), key, True)
    if secret:
        if value is None or value == [] or value == {}:
            return value
        text = orjson.dumps(to_jsonable_python(value), option=orjson.OPT_SORT_KEYS).decode()
        return key.fingerprint("secret\0" + text) if key is not None else audit.MASK
    if isinstance(value, BaseModel):
        return {name: _field(name, getattr(value, name), f, key) for name, f in type(value).model_fields.items()}
    if isinstance(value, dict):
        return {str(k): _masked(v, key) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, key) for v in value]
    return to_jsonable_python(value)


def _field(name: str, value: Any, info: Any, key: AuditKey | None) -> Any:
    # A field kept out of reprs (or of dumps) is a secret: the settings' own convention.
    if name in _SECRET_MAPS and isinstance(value, dict):
        return {str(k): _masked(v, key, True) for k, v in value.items()}
    return _masked(value, key, not info.repr or bool(info.exclude))


def config_digest(settings: BaseModel, key: AuditKey | None) -> dict[str, Any]:
    """The digest of the effective settings, whole and per section, with secrets masked.

    Returns:
        `{"digest": …, "sections": {name: …}}`: keyed (`hmac:…`) when there is an audit key, else
        plain SHA-256 of the settings with secrets as `*****`.
    """
    sections: dict[str, str] = {}
    for name, f in type(settings).model_fields.items():
        masked = _field(name, getattr(settings, name), f, key)
        sections[name] = _digest(key, "section\0" + orjson.dumps(masked, option=orjson.OPT_SORT_KEYS).decode())
    whole = _digest(key, "settings\0" + orjson.dumps(sections, option=orjson.OPT_SORT_KEYS).decode())
    return {"digest": whole, "sections": sections}


async def record_config(store: ControlStore, settings: BaseModel) -> int | None:
    """At start: record the digest of the effective settings when it differs from the last one
    recorded (so a restart with the same settings adds nothing).

    Returns:
        The row's seq, or None when the settings are as last recorded.
    """
    keyring, _ = store.audit_keys()
    now = config_digest(settings, keyring.current)

    async def diff(conn: AsyncConnection) -> tuple[Any, Any] | None:
        last = await audit.latest(conn, "config.effective", "config")
        before = last["diff"]["after"] if last is not None else None
        return None if before == now else (before, now)

    async with store.read() as conn:
        if await diff(conn) is None:
            return None
    return await store.record_system("config.effective", "config", diff)


class _Limited:
    """Events as audit rows, rate-limited per client address (and per actor).

    The first event of a (client, actor) is written at once. Later ones within `window_s` of that
    row are counted and written as one row when the window has passed (or at shutdown), so a pair
    makes at most one row per window, and each row says how many events it stands for. Past
    `max_clients` pairs in a window, the rest share one row (client `*`): many addresses (or
    tokens) cannot flood the log either.

    Arguments:
        store: the control store.
        window_s: the least time between two rows of one pair.
        max_clients: pairs tracked at once.
        clock: monotonic seconds.
    """

    action = ""
    counter = ""  # the diff's name for the count
    others = ""  # the actor of the shared row past `max_clients`
    background = False  # write off the request's path, so its answer takes no longer for a row

    def __init__(
        self,
        store: ControlStore,
        window_s: float = 60.0,
        max_clients: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}  # (client, actor) -> when its last row was written
        # (client, actor) -> (events not yet written, a request id, what they were about)
        self._pending: dict[tuple[str, str], tuple[int, str, dict[str, list[Any]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _note(self, client: str, actor: str, request_id: str, detail: dict[str, Any]) -> None:
        now = self._clock()
        for gone in [k for k, t in self._last.items() if now - t >= self.window_s and k not in self._pending]:
            del self._last[gone]
        key = (client, actor)
        if key not in self._last and len(self._last) >= self.max_clients:
            key = (OTHERS, self.others)
        count, _, seen = self._pending.pop(key, (0, "", {}))
        seen = _gather(seen, detail)
        last = self._last.get(key)
        if last is None or now - last >= self.window_s:
            self._last[key] = now
            if self.background:
                self._spawn(self._write(key, count + 1, request_id, seen))
            else:
                await self._write(key, count + 1, request_id, seen)
            return
        self._pending[key] = (count + 1, request_id, seen)
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        if self._timer is not None or not self._pending:
            return
        due = min(self._last[k] for k in self._pending) + self.window_s
        self._timer = asyncio.get_running_loop().call_later(max(due - now, 0), self._due)

    def _due(self) -> None:
        self._timer = None
        self._spawn(self._flush(everything=False))

    def _spawn(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the rows being written (not for the counted ones: `close` writes those)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flush(self, everything: bool) -> None:
        now = self._clock()
        for key in list(self._pending):
            if everything or now - self._last[key] >= self.window_s:
                count, request_id, seen = self._pending.pop(key)
                self._last[key] = now
                await self._write(key, count, request_id, seen)
        if not everything:
            self._schedule(now)

    async def close(self) -> None:
        """Write what is pending (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.settle()
        await self._flush(everything=True)

    async def _write(self, key: tuple[str, str], count: int, request_id: str, seen: dict[str, list[Any]]) -> None:
        client, actor = key
        after = {self.counter: count, "window_s": self.window_s, **seen}
        try:
            await self.store.record_system(
                self.action, "admin/v1", _constant(None, after), Actor(actor, request_id, client)
            )
        except Exception as exc:  # the answer still goes out; the kind only, as everywhere
            log.warning("%s not recorded in the audit log (%s)", self.action, type(exc).__name__)


def _gather(seen: dict[str, list[Any]], detail: dict[str, Any]) -> dict[str, list[Any]]:
    """`seen` with each of `detail`'s values added to its list, once, up to `MAX_DETAILS` a list."""
    out = {k: list(v) for k, v in seen.items()}
    for name, value in detail.items():
        values = out.setdefault(name, [])
        if value not in values and len(values) < MAX_DETAILS:
            values.append(value)
    return out


class AuthFailures(_Limited):
    """Failed admin sign-ins (401: no token, an unknown one or a revoked one), rate-limited per
    client address (actor `unauthenticated`; `{"failures": N}`)."""

    action = "admin.auth_failed"
    counter = "failures"
    others = "unauthenticated"

    async def note(self, client: str, request_id: str) -> None:
        """One failed sign-in from `client` (never raises: a failed audit write is logged)."""
        await self._note(client, "unauthenticated", request_id, {})


class AccessDenials(_Limited):
    """A valid admin token asking outside its scope (a 403, or a 404 that hides another tenant's
    entity), rate-limited per client address and token. The row's actor is the token
    (`admin_token/<id>`, never its value); its diff counts the denials (`{"denials": N}`) and lists
    the token's scope and what it tried (operation and path ids), at most `MAX_DETAILS` of each.
    """

    action = "admin.access_denied"
    counter = "denials"
    others = "admin_token/*"
    # A hidden entity's 404 must take as long as a missing one's: the row is written in the background.
    background = True

    async def note(
        self,
        client: str,
        token_id: str,
        scope: dict[str, str | None],
        tried: dict[str, Any],
        request_id: str,
        actor: str | None = None,
    ) -> None:
        """One denial (never raises: a failed audit write is logged).

        Arguments:
            client: the client address.
            token_id: the token's id.
            scope: the token's own scope (`org_id`, `workspace_id`; None for an operator's).
            tried: what it asked: `{"operation": "GET /orgs/{org_id}", "params": {...}, "status": 404}`.
            request_id: the request's id.
            actor: the row's actor when it is not the token (`sso/<issuer host>/<sub>`: a console session).
        """
        detail = {"scopes": {"token_id": token_id, **scope}, "tried": tried}
        await self._note(client, actor or f"admin_token/{token_id}", request_id, detail)
