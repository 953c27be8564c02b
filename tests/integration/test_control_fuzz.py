"""Property-based fuzzing of the admin API from its own OpenAPI document (schemathesis): whatever
the input, no endpoint answers 500, and every answer is one the document declares (its status, and
the schema of that status). Examples are limited so the run stays within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration.test_control_gateway import _env, _seed
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.settings import ControlSettings

_state: dict[str, Any] = {}
# Every answer's status is one the document declares for the operation, and its body has that status's schema.
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def admin_gateway(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{tmp / 'c.db'}"
    seed = _seed(ControlSettings(enabled=True, database_url=url, master_key=MASTER_KEY))
    _state["token"] = seed["token"]
    config = gateway_config(tmp / "gw.toml", mock_server.url, f'\n[control]\nenabled = true\ndatabase_url = "{url}"\n')
    with start_gateway(config, _env()) as gw:
        yield gw


def test_no_input_makes_a_server_error(admin_gateway: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{admin_gateway.url}/admin/v1/openapi.json")
    headers = {"authorization": f"Bearer {_state['token']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    statuses: dict[int, int] = {}
    with requests.Session() as session:  # closed here: no socket is left for the garbage collector
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def fuzz(case: Any) -> None:
                response = case.call(base_url=admin_gateway.url, session=session, headers=headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
                case.validate_response(response, checks=CONFORMANCE, headers=headers)

            fuzz()
    assert sum(statuses.values()) >= 4 * len(operations)
    assert statuses.get(422, 0) > 0 and any(200 <= code < 300 for code in statuses), statuses
