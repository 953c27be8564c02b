"""The mock provider: a deterministic fake upstream for tests, benchmarks, load tests and `make run`.

`respond()` answers in process; `create_app()` serves the same over ASGI. Knobs (`x-mock-*`
headers or `model@knob=value`) shape the answer and inject faults; see `sluicegate.mock.knobs`.
"""

from sluicegate.mock.app import MockBody, MockDisconnect, MockResponse, create_app, respond
from sluicegate.mock.knobs import DEFAULT_KNOBS, KnobError, Knobs, parse_knobs
from sluicegate.mock.stats import STATS, Stats

__all__ = [
    "DEFAULT_KNOBS",
    "STATS",
    "KnobError",
    "Knobs",
    "MockBody",
    "MockDisconnect",
    "MockResponse",
    "Stats",
    "create_app",
    "parse_knobs",
    "respond",
]
