"""The first schema: entities, keys, admin tokens, secrets, policies, the audit log, the change counter."""

VERSION = 1

STATEMENTS = [
    """CREATE TABLE control_state (
        id INTEGER PRIMARY KEY,
        version BIGINT NOT NULL,
        audit_head_seq BIGINT NOT NULL,
        audit_head_hash TEXT NOT NULL
    )""",
    "INSERT INTO control_state (id, version, audit_head_seq, audit_head_hash) VALUES (1, 0, 0, '')",
    "CREATE TABLE orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL)",
    """CREATE TABLE workspaces (
        id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs (id),
        name TEXT NOT NULL, created_at TEXT NOT NULL
    )""",
    "CREATE INDEX workspaces_org ON workspaces (org_id)",
    """CREATE TABLE users (
        id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs (id),
        workspace_id TEXT NOT NULL REFERENCES workspaces (id), name TEXT NOT NULL, created_at TEXT NOT NULL
    )""",
    "CREATE INDEX users_workspace ON users (workspace_id)",
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs (id),
        workspace_id TEXT NOT NULL REFERENCES workspaces (id), user_id TEXT REFERENCES users (id),
        name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_at TEXT NOT NULL,
        expires_at TEXT, revoked_at TEXT, last_used_at TEXT
    )""",
    "CREATE INDEX api_keys_workspace ON api_keys (workspace_id)",
    """CREATE TABLE admin_tokens (
        id TEXT PRIMARY KEY, org_id TEXT REFERENCES orgs (id), workspace_id TEXT REFERENCES workspaces (id),
        name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT
    )""",
    """CREATE TABLE provider_secrets (
        level TEXT NOT NULL, scope_id TEXT NOT NULL, provider TEXT NOT NULL, org_id TEXT NOT NULL,
        ciphertext TEXT NOT NULL, meta TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (level, scope_id, provider)
    )""",
    """CREATE TABLE policies (
        level TEXT NOT NULL, entity_id TEXT NOT NULL, org_id TEXT NOT NULL, body TEXT NOT NULL,
        updated_at TEXT NOT NULL, PRIMARY KEY (level, entity_id)
    )""",
    """CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, org_id TEXT, request_id TEXT NOT NULL, client TEXT NOT NULL,
        diff TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
    )""",
    "CREATE INDEX audit_log_org ON audit_log (org_id, seq)",
]
