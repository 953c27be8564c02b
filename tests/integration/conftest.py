"""Fixtures shared by the integration tests of the control plane in a running gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration.test_control_gateway import _env, _seed
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.settings import ControlSettings

# Prices for the mock's model so every call is priced; no estimate padding, so a call reserves its cost.
SPEND = """
[spend]
estimate = { per_message_tokens = 0, per_request_tokens = 0 }
[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
"""


@pytest.fixture
def control_gateway(
    mock_server: Server,
    tmp_path: Path,
    control_settings: ControlSettings,  # noqa: F811
) -> Iterator[tuple[Server, dict[str, Any]]]:
    """A gateway with the control plane on (SQLite and PostgreSQL), an org, workspace, key and
    admin token seeded, and priced mock models; yields (server, seed)."""
    seed = _seed(control_settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{control_settings.database_url}"\npoll_interval_s = 0.25\n'
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND), _env()) as server:
        yield server, seed
