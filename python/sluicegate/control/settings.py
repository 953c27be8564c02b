"""The `[control]` section: where the control plane keeps its data and how instances see changes.

```toml
[control]
enabled = true
database_url = "sqlite:///sluicegate-control.db"     # or "postgresql://user@host:5432/db"
master_key_file = "/run/secrets/sluicegate-master"   # or master_key / SLUICEGATE_CONTROL__MASTER_KEY
master_retired_keys = []                              # master keys of before a rotation (they still open)
poll_interval_s = 0.25
bootstrap = true
redis_url = "redis://127.0.0.1:6379/0"                # optional: announce changes at once
audit_anchor_file = "/var/lib/sluicegate/audit.anchors" # the audit chain's head, pinned outside the database
```
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.control.oidc import OidcSettings
from sluicegate.secrets import Secret, SecretUrl

DEFAULT_DATABASE_URL = "sqlite:///sluicegate-control.db"


class ControlSettings(BaseModel):
    """The control plane's settings.

    Attributes:
        enabled: serve `/admin/v1/…` and accept the database's keys (config `[[keys]]` keep working).
        database_url: `sqlite:///path` (a file; created on first start) or `postgresql://…`.
        master_key: the key that encrypts provider secrets at rest: 32 bytes, URL-safe base64.
        master_key_file: a file holding the master key. When neither is set and the database is
            SQLite, a key file is created beside the database (mode 0600) on first start.
        master_retired_keys: master keys used before a rotation: secrets sealed under them still
            open (nothing new is sealed with them) until `sluicegate admin reseal` seals them under
            the current key. A secret sealed under a key in neither place stops the start.
        poll_interval_s: how often each instance checks the change counter (≤ 0.5 s keeps a
            change within one second of every instance).
        last_used_flush_s: how often key last-use times are written (batched, off the request path).
        migrate_on_start: bring the schema to the newest revision when the gateway starts. False
            when migrations run apart (the Helm chart's migration Job, `sluicegate admin migrate`):
            a start then only checks the schema is current, and refuses to serve an older one.
        bootstrap: on first start (no organization yet), create one with a workspace, a key and
            an org admin token, and print the key and token once.
        redis_url: when set, every change is also announced on the Redis channel
            `sluicegate:control:changed` and instances reload at once (polling stays as the fallback).
        audit_key: the key of the audit chain's HMACs (32 bytes, URL-safe base64). Without it (and
            without `audit_key_file`) the audit key is derived from the master key.
        audit_key_file: a file holding `audit_key`.
        audit_retired_keys: audit keys or master keys used before a rotation, so that
            `sluicegate audit verify` can check the rows they signed (never used to sign).
        audit_anchor_file: the append-only file where the chain's head is pinned (JSON lines).
            Default: beside the SQLite database, or beside `master_key_file`.
        audit_anchor_interval_s: an anchor is written at most this often (and at shutdown).
        max_body_bytes: admin API request bodies larger than this are refused (413); they must also
            arrive within `server.body_timeout_s` (408).
        oidc: single sign-on to the console with an OpenID provider (`[control.oidc]`, see
            `control.oidc.OidcSettings`); unset, the console signs in with admin tokens only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # A password in a URL prints as ***** (`SecretUrl`); the master key prints as ***** (`Secret`).
    database_url: SecretUrl = SecretUrl(DEFAULT_DATABASE_URL)
    master_key: Secret | None = None
    master_key_file: str | None = None
    master_retired_keys: list[Secret] = Field(default_factory=list)
    poll_interval_s: float = Field(0.25, gt=0, le=0.5)
    last_used_flush_s: float = Field(1.0, gt=0, le=60)
    migrate_on_start: bool = True
    bootstrap: bool = True
    redis_url: SecretUrl | None = None
    audit_key: Secret | None = None
    audit_key_file: str | None = None
    audit_retired_keys: list[Secret] = Field(default_factory=list)
    audit_anchor_file: str | None = None
    audit_anchor_interval_s: float = Field(5.0, ge=0, le=3600)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    oidc: OidcSettings | None = None

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: SecretUrl) -> SecretUrl:
        schemes = ("sqlite://", "sqlite+aiosqlite://", "postgresql://", "postgresql+asyncpg://")
        if not value.reveal().startswith(schemes):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @model_validator(mode="after")
    def _one_audit_key(self) -> ControlSettings:
        if self.audit_key and self.audit_key_file:
            raise ValueError("set control.audit_key or control.audit_key_file, not both")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.reveal().startswith("sqlite")

    def async_url(self) -> str:
        """The SQLAlchemy URL with its async driver (aiosqlite or asyncpg), password included."""
        scheme, rest = self.database_url.reveal().split("://", 1)
        driver = "sqlite+aiosqlite" if scheme.startswith("sqlite") else "postgresql+asyncpg"
        return f"{driver}://{rest}"

    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL or an in-memory database."""
        if not self.is_sqlite:
            return None
        path = self.database_url.reveal().split("://", 1)[1][1:]
        return Path(path) if path and path != ":memory:" else None

    def audit_anchor_path(self) -> tuple[Path | None, bool]:
        """Where the audit anchors go, and whether the operator named the place.

        Returns:
            (`audit_anchor_file`, True) when set; else (the SQLite file's or `master_key_file`'s
            name with `.anchors` appended, False); else (None, False): no anchors.
        """
        if self.audit_anchor_file:
            return Path(self.audit_anchor_file), True
        beside = self.sqlite_path() or (Path(self.master_key_file) if self.master_key_file else None)
        return (beside.with_name(beside.name + ".anchors") if beside is not None else None), False
