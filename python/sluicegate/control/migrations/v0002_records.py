"""Data-plane records: policy events and the spend ledger, written in batches off the request path."""

VERSION = 2

STATEMENTS = [
    """CREATE TABLE policy_events (
        id TEXT PRIMARY KEY, at TEXT NOT NULL, org_id TEXT NOT NULL, workspace_id TEXT, user_id TEXT,
        key_id TEXT, request_id TEXT NOT NULL, trace_id TEXT, run_id TEXT, policy TEXT NOT NULL,
        action TEXT NOT NULL, direction TEXT NOT NULL, entity TEXT NOT NULL, count INTEGER NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX policy_events_org_at ON policy_events (org_id, at)",
    """CREATE TABLE spend_ledger (
        id TEXT PRIMARY KEY, at TEXT NOT NULL, org_id TEXT NOT NULL, workspace_id TEXT, user_id TEXT,
        key_id TEXT, model TEXT, provider TEXT, request_id TEXT NOT NULL, input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL, cost_nusd BIGINT NOT NULL
    )""",
    "CREATE INDEX spend_ledger_org_at ON spend_ledger (org_id, at)",
]
