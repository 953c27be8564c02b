"""The records sink: policy events and spend-ledger rows written to the control plane's database in
batches (see `sinks.BatchSink`). The admin API reads them back (`/admin/v1/orgs/{org}/events`,
`/admin/v1/orgs/{org}/spend`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.observe.ids import new_uuid
from sluicegate.observe.sinks import BatchSink, event_records
from sluicegate.proxy.relay import Outcome

if TYPE_CHECKING:
    from sluicegate.control.store import ControlStore

Record = dict[str, Any]


def rows_of(outcome: Outcome) -> tuple[list[Record], Record | None]:
    """The policy-event rows and the ledger row of a finished call (ids, counts, amounts only)."""
    info = outcome.info
    if info is None or info.org is None:
        return [], None
    events = [{**r, "id": new_uuid().hex, "detail": orjson.dumps(r["detail"]).decode()} for r in event_records(outcome)]
    ledger = None
    if outcome.cost_nusd is not None or outcome.usage is not None:
        usage = outcome.usage
        ledger = {
            "id": new_uuid().hex,
            "at": datetime.fromtimestamp(info.started_at, UTC).isoformat(),
            "org_id": info.org,
            "workspace_id": info.workspace,
            "user_id": info.user,
            "key_id": info.key,
            "model": info.model,
            "provider": info.provider,
            "request_id": info.request_id,
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "cost_nusd": outcome.cost_nusd or 0,
        }
    return events, ledger


class RecordSink(BatchSink[Outcome]):
    """Writes each call's policy events and ledger row to the control plane's database.

    Arguments:
        store: the control plane's store.
    """

    def __init__(self, store: ControlStore, max_queue: int = 10_000, batch: int = 500, interval_s: float = 0.5) -> None:
        super().__init__("records", max_queue, batch, interval_s)
        self.store = store

    async def write(self, outcomes: list[Outcome]) -> None:
        events: list[Record] = []
        ledger: list[Record] = []
        for outcome in outcomes:
            rows, row = rows_of(outcome)
            events += rows
            if row is not None:
                ledger.append(row)
        if events or ledger:
            await self.store.insert_records(events, ledger)
