"""First start: when the database has no organization yet, create one with a workspace, a gateway
key and an org admin token, and return them to be printed once (only their hashes are stored)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluicegate.control.audit import Actor
from sluicegate.control.models import orgs
from sluicegate.control.schemas import KeyIn
from sluicegate.control.store import ControlStore

SYSTEM = Actor("system/bootstrap", "bootstrap", "local")


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    org_id: str
    workspace_id: str
    key_id: str
    key: str = field(repr=False)  # shown once, by `lines()`, and never in a repr
    admin_token: str = field(repr=False)

    def lines(self) -> list[str]:
        return [
            f"first start: created organization {self.org_id} and workspace {self.workspace_id}",
            f"gateway key (shown once, only its hash is stored): {self.key}",
            f"org admin token for /admin/v1 (shown once): {self.admin_token}",
        ]


async def bootstrap_if_empty(store: ControlStore) -> Bootstrapped | None:
    """Create the first organization, workspace, key and admin token, unless an organization exists."""
    if await store.many(orgs):
        return None
    org = await store.create_org(SYSTEM, "default")
    ws = await store.create_workspace(SYSTEM, org["id"], "default")
    key_row, key = await store.create_key(SYSTEM, ws, KeyIn(name="default", user_id=None, expires_at=None))
    _, token = await store.create_admin_token(SYSTEM, org["id"], None, "bootstrap")
    return Bootstrapped(org["id"], ws["id"], key_row["id"], key, token)
