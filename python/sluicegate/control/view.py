"""The data plane's fast view of the control plane: keys, effective policies and provider secrets
held in memory, so no request waits for the database.

A background task reads `control_state.version` every `poll_interval_s` (≤ 0.5 s) and, when it
changed, reloads a whole snapshot in one transaction and swaps it in at once: a revoked key, a new
cap or a rotated secret reaches every instance sharing the database within a second. Key last-use
times are collected in memory and written in batches, off the request path.

Effective policies are computed here with the floors (`control.policies`): whatever the rows say,
a rule locked by the operator's configuration or a level above is never weaker for a key.

Wiring (one step): `Gateway.keys = view` (same `authenticate` contract as `policy.auth.KeyStore`),
`view.cap_lines(identity)` for spend, `view.limit_lines(identity)` for rate limits,
`view.redaction_rules(identity)` for redaction, `view.model_rules(identity)` for model access rules,
`view.loop_rules(identity)` for loop rules, and
`view.provider_secret(identity.workspace, provider_name)` for upstream credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from sluicegate.config import CustomPattern, RedactionRule, RedactionSettings
from sluicegate.control.crypto import MasterKeyError
from sluicegate.control.keys import now_iso
from sluicegate.control.policies import EffectivePolicy, OperatorPolicy, chain_of, effective
from sluicegate.control.store import (
    CHANNEL,
    ControlStore,
    Snapshot,
    mcp_oauth_secret_name,
    mcp_secret_name,
    secret_context,
    server_oauth,
    server_prices,
)
from sluicegate.errors import SecretUnavailable, Unauthenticated
from sluicegate.mcp.oauth import ClientCredentials
from sluicegate.mcp.servers import McpTarget, ToolPrices
from sluicegate.policy.auth import Identity, KeyStore, presented_keys
from sluicegate.policy.limits import LimitRule
from sluicegate.policy.loop_rules import LoopLine
from sluicegate.policy.models import EMPTY, ModelRules, operator_rules
from sluicegate.policy.tools import EMPTY_TOOLS, ToolRules, tool_rule_set
from sluicegate.secrets import Secret, hash_key
from sluicegate.spend.caps import CapLine

log = logging.getLogger("sluicegate.control.view")

__all__ = ["ControlView", "KeyEntry", "ProviderCredential"]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_id: str
    identity: Identity
    expires_at: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class ProviderCredential:
    """A provider secret, opened: the value stays a `Secret`; `base_url` and `project` are plain."""

    secret: Secret
    base_url: str | None = None
    project: str | None = None


@dataclass(slots=True)
class _State:
    version: int = -1
    keys: dict[str, KeyEntry] = field(default_factory=dict)
    policies: dict[str, EffectivePolicy] = field(default_factory=dict)  # key id -> effective
    secrets: dict[tuple[str, str, str], ProviderCredential] = field(default_factory=dict)
    # Sealed secrets this instance cannot open, with why: their calls fail closed (503).
    unopened: dict[tuple[str, str, str], str] = field(default_factory=dict)
    workspace_org: dict[str, str] = field(default_factory=dict)
    redaction: dict[tuple[str, int], RedactionSettings] = field(default_factory=dict)
    # url, header names, prices, OAuth client credentials without the secret (token URL, client id, scope)
    mcp_servers: dict[tuple[str, str], tuple[str, tuple[str, ...], ToolPrices, dict[str, Any] | None]] = field(
        default_factory=dict
    )
    all_caps: tuple[CapLine, ...] | None = None  # every policy's caps, made on first use


class ControlView:
    """In-memory keys, policies and secrets, refreshed when the database's version changes.

    Arguments:
        store: the control store (opened by the caller).
        fallback: keys from the config file (`[[keys]]`), accepted alongside the database's.
        operator: the configuration's rules and caps, whose locked ones are floors for every policy.
    """

    def __init__(
        self, store: ControlStore, fallback: KeyStore | None = None, operator: OperatorPolicy | None = None
    ) -> None:
        self.store = store
        self.fallback = fallback
        self.operator = operator or OperatorPolicy()
        self._operator_models = operator_rules(self.operator.models) if self.operator.models else EMPTY
        tools = self.operator.tools
        self._operator_tools = ToolRules((tool_rule_set("operator", None, tools),)) if tools else EMPTY_TOOLS
        self._state = _State()
        self._used: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing = asyncio.Lock()

    @property
    def version(self) -> int:
        """The database version this view reflects (-1 before the first load)."""
        return self._state.version

    async def start(self, poll: bool = True) -> None:
        """Load the first snapshot, then watch for changes and flush last-use times in the background.

        Arguments:
            poll: watch the version counter (turn off only to test the Redis announcements alone).
        """
        await self.refresh()
        self._tasks = [asyncio.create_task(self._flush_loop())]
        if poll:
            self._tasks.append(asyncio.create_task(self._poll()))
        if self.store.settings.redis_url is not None:
            self._tasks.append(asyncio.create_task(self._listen(self.store.settings.redis_url.reveal())))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush_last_used()

    async def refresh(self) -> bool:
        """Reload if the database changed; returns whether it did."""
        async with self._refreshing:  # polling and announcements never swap in an older snapshot
            if await self.store.version() == self._state.version:
                return False
            snapshot = await self.store.snapshot()
            if snapshot.version < self._state.version:
                return False
            self._state = self._build(snapshot)
            return True

    def _build(self, snap: Snapshot) -> _State:
        st = _State(version=snap.version, workspace_org=dict(snap.workspaces))
        for row in snap.keys:
            identity = Identity(row["id"], row["workspace_id"], row["org_id"], row["user_id"])
            expires = datetime.fromisoformat(row["expires_at"]) if row["expires_at"] else None
            st.keys[row["key_hash"]] = KeyEntry(row["id"], identity, expires, row["revoked_at"] is not None)
            # Floors are applied here, whatever the rows hold: a weakening row written past the
            # admin API still yields the locked rule.
            st.policies[row["id"]] = effective(
                row["org_id"],
                [(lvl, eid, snap.policies.get((lvl, eid))) for lvl, eid in chain_of("key", row)],
                self.operator,
            )
        master = self.store.master
        for row in snap.secrets:
            where = (row["level"], row["scope_id"], row["provider"])
            if master is None:
                st.unopened[where] = "no master key is configured on this gateway"
                log.error("provider secret %s/%s/%s cannot be opened: no master key is configured", *where)
                continue
            try:
                value = master.open(row["ciphertext"], secret_context(*where))
            except MasterKeyError as exc:
                st.unopened[where] = "the gateway's master key does not open it"
                log.error("provider secret %s/%s/%s does not open: %s", *where, exc)
                continue
            meta = orjson.loads(row["meta"])
            st.secrets[where] = ProviderCredential(Secret(value), meta.get("base_url"), meta.get("project"))
        for row in snap.mcp_servers:
            names = tuple(orjson.loads(row["header_names"]))
            st.mcp_servers[(row["workspace_id"], row["name"])] = (
                row["url"],
                names,
                server_prices(row),
                server_oauth(row),
            )
        return st

    async def _poll(self) -> None:
        interval = self.store.settings.poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception as exc:  # the database is away: keep serving the last snapshot
                log.warning("control view refresh failed: %s", type(exc).__name__)

    async def _listen(self, url: str) -> None:
        from sluicegate.redis_scripts import announcer

        attempt = 0
        while True:
            client = announcer(url, timeout_s=None, attempt=attempt)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self.refresh()  # whatever changed while not subscribed
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("control announcements unavailable (%s); polling continues", type(exc).__name__)
                attempt += 1  # a cluster's next listed node
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.store.settings.last_used_flush_s)
            try:
                await self.flush_last_used()
            except Exception as exc:
                log.warning("key last-use flush failed: %s", type(exc).__name__)

    async def flush_last_used(self) -> None:
        """Write the last-use time of every key used since the previous flush (one statement)."""
        if not self._used:
            return
        used, self._used = sorted(self._used), set()
        await self.store.touch_keys(used, now_iso())

    # ── the request path: memory only ──────────────────────────────────────────────────────────

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Identity:
        """The identity behind the request's key (same contract as `KeyStore.authenticate`).

        Raises:
            Unauthenticated: no key, an unknown key, or a revoked or expired one (401).
        """
        tokens = presented_keys(authorization, x_api_key)
        keys = self._state.keys
        for token in tokens:
            entry = keys.get(hash_key(token))
            if entry is None:
                continue
            if entry.revoked:
                raise Unauthenticated("the gateway key has been revoked", code="revoked_api_key")
            if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
                raise Unauthenticated("the gateway key has expired", code="expired_api_key")
            self._used.add(entry.key_id)
            return entry.identity
        if self.fallback is not None:
            return self.fallback.authenticate(authorization, x_api_key)
        raise Unauthenticated("the gateway key is not valid")

    def effective_policy(self, identity: Identity) -> EffectivePolicy:
        return self._state.policies.get(identity.key_name) or EffectivePolicy()

    def all_cap_lines(self) -> tuple[CapLine, ...]:
        """Every cap the policies put in force (one per entity and window, as a lock above leaves
        it), ordered by organization, level, entity and window; remembered per snapshot."""
        st = self._state
        if st.all_caps is None:
            caps = {line.bucket_name: line for policy in st.policies.values() for line in policy.caps}
            st.all_caps = tuple(caps[name] for name in sorted(caps))
        return st.all_caps

    def cap_lines(self, identity: Identity) -> tuple[CapLine, ...]:
        """The spend caps on the caller's org, workspace, user and key (empty for config keys)."""
        return self.effective_policy(identity).caps

    def limit_lines(self, identity: Identity) -> tuple[LimitRule, ...]:
        """The rate limits on the caller's org, workspace, user and key (empty for config keys)."""
        return self.effective_policy(identity).limits

    def model_rules(self, identity: Identity) -> ModelRules:
        """The caller's model access rules: every level's from the operator's `[models]` down, and
        its aliases (the operator's alone for keys of the config file)."""
        policy = self._state.policies.get(identity.key_name)
        return policy.models if policy is not None else self._operator_models

    def tool_rules(self, identity: Identity) -> ToolRules:
        """The caller's tool lists: every level's from the operator's `[tools]` down (the operator's
        alone for keys of the config file)."""
        policy = self._state.policies.get(identity.key_name)
        return policy.tools if policy is not None else self._operator_tools

    def loop_rules(self, identity: Identity) -> tuple[LoopLine, ...] | None:
        """The loop rules in force for the caller (the configuration's included, the nearest
        level's of each kind, floors applied); None for a key the database does not hold (a
        configuration key: the configuration's rules apply alone)."""
        policy = self._state.policies.get(identity.key_name)
        return policy.loops if policy is not None else None

    def redaction_rules(self, identity: Identity) -> tuple[RedactionRule, ...]:
        """The caller's redaction rules, one per (entity, direction), the most specific level winning."""
        return self.effective_policy(identity).redaction

    def custom_patterns(self, identity: Identity) -> tuple[CustomPattern, ...]:
        return self.effective_policy(identity).custom_patterns

    def redaction_settings(self, identity: Identity, base: RedactionSettings) -> RedactionSettings:
        """`base` (the config's `[redaction]`) with the caller's rules and patterns added after its own,
        so they win. The same object comes back for a key until the next reload: a `Redactor` can be
        compiled once per returned object (cache it by `id()` together with `view.version`).
        """
        policy = self.effective_policy(identity)
        if not policy.adds_redaction:
            return base
        cache = self._state.redaction
        found = cache.get((identity.key_name, id(base)))
        if found is None:
            found = cache[(identity.key_name, id(base))] = policy.redaction_settings(base)
        return found

    def provider_credential(self, workspace: str, provider_name: str) -> ProviderCredential | None:
        """The workspace's credential for a provider, else its organization's default, else None
        (the operator's configured key applies).

        Raises:
            SecretUnavailable: the credential that applies is stored but this gateway cannot open
                it (no or another master key, a damaged value): fail closed, never fall back to the
                organization's or the operator's credential.
        """
        st = self._state
        scopes = [("workspace", workspace, provider_name)]
        if workspace in st.workspace_org:
            scopes.append(("org", st.workspace_org[workspace], provider_name))
        for where in scopes:
            found = st.secrets.get(where)
            if found is not None:
                return found
            reason = st.unopened.get(where)
            if reason is not None:
                raise SecretUnavailable(
                    f"the {where[0]}'s secret for provider {provider_name!r} cannot be used: {reason}; "
                    "the request was not sent (ask the gateway's operator)"
                )
        return None

    def mcp_server_names(self, workspace: str) -> list[str]:
        """The names of the workspace's registered MCP servers."""
        return [name for ws, name in self._state.mcp_servers if ws == workspace]

    def mcp_server(self, workspace: str, name: str) -> McpTarget | None:
        """The workspace's registered MCP server `name`, its headers opened; None when it has none.

        Raises:
            SecretUnavailable: its headers are stored but this gateway cannot open them (fail closed:
                never forwarded without them).
        """
        st = self._state
        found = st.mcp_servers.get((workspace, name))
        if found is None:
            return None
        url, header_names, prices, oauth = found
        headers: dict[str, Secret] = {}
        if header_names:
            sealed = self._mcp_secret(workspace, mcp_secret_name(name), f"the headers of the MCP server {name!r}")
            headers = {k: Secret(v) for k, v in orjson.loads(sealed.reveal()).items()}
        creds = None
        if oauth is not None:
            what = f"the OAuth client secret of the MCP server {name!r}"
            secret = self._mcp_secret(workspace, mcp_oauth_secret_name(name), what)
            creds = ClientCredentials(oauth["token_url"], oauth["client_id"], secret, oauth.get("scope"))
        return McpTarget(name, url, headers, tenant=True, prices=prices, oauth=creds)

    def _mcp_secret(self, workspace: str, secret_name: str, what: str) -> Secret:
        """A registered server's sealed secret, opened.

        Raises:
            SecretUnavailable: it is missing or cannot be opened (fail closed).
        """
        where = ("workspace", workspace, secret_name)
        sealed = self._state.secrets.get(where)
        if sealed is None:
            reason = self._state.unopened.get(where, "it is missing")
            raise SecretUnavailable(
                f"{what} cannot be used: {reason}; the request was not sent (ask the gateway's operator)"
            )
        return sealed.secret

    def provider_secret(self, workspace: str, provider_name: str) -> Secret | None:
        found = self.provider_credential(workspace, provider_name)
        return found.secret if found is not None else None
