"""Audit rows for what no admin request changes: the migrations applied, the first use of a master
key and of an audit key, the effective configuration at start (when it differs from the last one
recorded), and failed admin sign-ins, rate-limited so that a flood of bad tokens cannot flood the
log. Each is one row by actor `system` (`unauthenticated` for sign-ins) in the same keyed chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
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

__all__ = ["AuthFailures", "config_digest", "on_open", "record_config"]

log = logging.getLogger("sluicegate.control.audit")
_SECRET_MAPS = frozenset({"headers"})  # values may carry credentials
OTHERS = "*"


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


class AuthFailures:
    """Failed admin sign-ins as audit rows, rate-limited.

    The first failure from an address is written at once. Later ones within `window_s` of that
    row are counted and written as one row when the window has passed (or at shutdown), so an
    address makes at most one row per window, and each row says how many failures it stands for.
    Past `max_clients` addresses in a window, the rest share one row (client `*`): many addresses
    cannot flood the log either.

    Arguments:
        store: the control store.
        window_s: the least time between two rows of one address.
        max_clients: addresses tracked at once.
        clock: monotonic seconds.
    """

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
        self._last: dict[str, float] = {}  # address -> when its last row was written
        self._pending: dict[str, tuple[int, str]] = {}  # address -> (failures not yet written, a request id)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def note(self, client: str, request_id: str) -> None:
        """One failed sign-in from `client` (never raises: a failed audit write is logged)."""
        now = self._clock()
        for gone in [c for c, t in self._last.items() if now - t >= self.window_s and c not in self._pending]:
            del self._last[gone]
        if client not in self._last and len(self._last) >= self.max_clients:
            client = OTHERS
        count = self._pending.pop(client, (0, ""))[0] + 1
        last = self._last.get(client)
        if last is None or now - last >= self.window_s:
            self._last[client] = now
            await self._write(client, count, request_id)
            return
        self._pending[client] = (count, request_id)
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        if self._timer is not None or not self._pending:
            return
        due = min(self._last[c] for c in self._pending) + self.window_s
        self._timer = asyncio.get_running_loop().call_later(max(due - now, 0), self._due)

    def _due(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._flush(everything=False))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, everything: bool) -> None:
        now = self._clock()
        for client in list(self._pending):
            if everything or now - self._last[client] >= self.window_s:
                count, request_id = self._pending.pop(client)
                self._last[client] = now
                await self._write(client, count, request_id)
        if not everything:
            self._schedule(now)

    async def close(self) -> None:
        """Write what is pending (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush(everything=True)

    async def _write(self, client: str, count: int, request_id: str) -> None:
        after = {"failures": count, "window_s": self.window_s}
        try:
            await self.store.record_system(
                "admin.auth_failed", "admin/v1", _constant(None, after), Actor("unauthenticated", request_id, client)
            )
        except Exception as exc:  # the 401 still goes out; the kind only, as everywhere
            log.warning("failed admin sign-in not recorded in the audit log (%s)", type(exc).__name__)
