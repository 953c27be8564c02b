"""The control plane: organizations ⊃ workspaces ⊃ users, gateway keys, provider secrets, policies,
the admin API, the keyed audit chain, and the data plane's in-memory view of it all.

Modules: `settings` (`[control]`), `models` (tables), `migrations/`, `store` (SQLite or PostgreSQL,
one code path), `crypto` (secrets at rest), `keys`, `audit` (the chain), `anchors` (its head, pinned
outside the database), `system_events` (the system's own audit rows), `schemas` and `policies` (policy
documents and inheritance), `admin_api`, `responses` (its answers) and `openapi`, `view` (the fast
view), `plane` (one process's store, view and admin API), `bootstrap`, `cli`. Nothing is imported
here, so reading the settings does not load the database drivers.
"""
