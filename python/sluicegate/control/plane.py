"""The control plane inside one gateway process: the store, the fast view and the admin API, started
and stopped with the app's lifespan."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import BaseModel

from sluicegate.config import RedactionSettings
from sluicegate.control.admin_api import AdminApi
from sluicegate.control.policies import OperatorPolicy
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.system_events import on_open, record_config
from sluicegate.control.view import ControlView
from sluicegate.forwarded import TrustedProxies
from sluicegate.policy.auth import KeyStore

if TYPE_CHECKING:
    from sluicegate.control.bootstrap import Bootstrapped


class ControlPlane:
    """Store, view and admin API of one process.

    Arguments:
        settings: the `[control]` section.
        fallback: the config file's keys, accepted alongside the database's.
        run_url: the template of a link to a LangSmith run (`{run_id}`, `{trace_id}`).
        operator: the configuration's redaction rules and caps (their locks are floors for every policy).
        trusted_proxies: the reverse proxies whose `x-forwarded-for` names an admin request's client.
        redaction: the configuration's `[redaction]` (the base of every key's redaction rules).
    """

    def __init__(
        self,
        settings: ControlSettings,
        fallback: KeyStore | None = None,
        run_url: str = "",
        operator: OperatorPolicy | None = None,
        trusted_proxies: TrustedProxies | None = None,
        redaction: RedactionSettings | None = None,
    ) -> None:
        self.store = ControlStore(settings)
        self.view = ControlView(self.store, fallback, operator)
        self.admin = AdminApi(self.store, self.view, run_url, trusted_proxies, redaction)

    async def start(self, config: BaseModel | None = None) -> None:
        """Open the store, record what the audit log keeps of a start, and start the view.

        Arguments:
            config: the effective settings, recorded (as a digest) when they differ from the last
                ones recorded.
        """
        await on_open(self.store, await self.store.open(migrate_schema=self.store.settings.migrate_on_start))
        if config is not None:
            await record_config(self.store, config)
        await self.view.start()

    async def stop(self) -> None:
        await self.view.stop()
        await self.admin.close()
        await self.store.close()


def prepare(settings: ControlSettings) -> Bootstrapped | None:
    """Before serving: migrate, create the master key file if needed, bootstrap; what the first
    start created (its key and token are shown once), or None."""
    from sluicegate.control.bootstrap import bootstrap_if_empty

    async def run() -> Bootstrapped | None:
        store = ControlStore(settings)
        try:
            await on_open(store, await store.open(create_master_key=True, migrate_schema=settings.migrate_on_start))
            return await bootstrap_if_empty(store) if settings.bootstrap else None
        finally:
            await store.close()

    return asyncio.run(run())
