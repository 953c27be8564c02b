"""Observability: policy events now; LangSmith runs, the spend ledger and metrics plug in here."""
