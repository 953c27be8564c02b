import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sluicegate.config import ConfigError, Settings, env_overrides, load_settings
from sluicegate.secrets import Secret

TOML = """
[server]
port = 9000
max_body_bytes = 4096

[providers.oa]
kind = "openai"
api_key_env = "OA_KEY"

[providers.local]
kind = "openai_compatible"
base_url = "http://127.0.0.1:8000/v1/"

[routing]
default_openai = "local"
models = { "gpt-4o" = "oa" }

[[keys]]
name = "ci"
sha256 = "%s"
""" % ("a" * 64)


def test_embedded_default_routes_everything_to_the_mock() -> None:
    s = load_settings(environ={})
    assert s.providers["mock"].kind == "mock"
    assert s.routing.default_openai == s.routing.default_anthropic == "mock"
    assert s.server.port == 8080 and s.keys == []


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_file_then_environment(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    if suffix == ".toml":
        path.write_text(TOML)
    else:
        import tomllib

        import yaml

        path.write_text(yaml.safe_dump(tomllib.loads(TOML)))
    env = {"SLUICEGATE_SERVER__PORT": "9100", "SLUICEGATE_UPSTREAM__CHUNK_TIMEOUT_S": "2.5"}
    s = load_settings(path, environ=env)
    assert s.server.port == 9100  # the environment wins over the file
    assert s.server.max_body_bytes == 4096
    assert s.upstream.chunk_timeout_s == 2.5
    assert s.providers["local"].base_url == "http://127.0.0.1:8000/v1"  # trailing slash dropped
    assert s.providers["oa"].resolved_api_key({"OA_KEY": "k"}) == Secret("k")
    assert s.providers["oa"].resolved_base_url() == "https://api.openai.com/v1"


def test_config_env_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    assert load_settings(environ={"SLUICEGATE_CONFIG": str(path)}).server.port == 9000


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[server]\nport = 'x'", {}, "server.port"),
        ("[server]\nprot = 1", {}, "server.prot"),
        ("[routing]\ndefault_openai = 'nope'", {}, "routing.default_openai names provider 'nope'"),
        ("[providers.x]\nkind = 'openai_compatible'", {}, "needs base_url"),
        ("[providers.x]\nkind = 'vertex'", {}, "providers.x.kind"),
        ("[providers.x]\nkind = 'openai'\nbase_url = 'ftp://h'", {}, "providers.x.base_url"),
        ("[[keys]]\nname = 'k'\nsha256 = 'short'", {}, "keys.0.sha256"),
        ("", {"SLUICEGATE_SERVER__WORKERS": "0"}, "server.workers"),
        ("server = [", {}, "does not parse"),
        ("[server]\ntrusted_proxies = ['10.0.0.1/8']", {}, "server.trusted_proxies"),
        ("", {"SLUICEGATE_SERVER__TRUSTED_PROXIES": '["proxy.internal"]'}, "server.trusted_proxies"),
        # a misspelt type would exempt nothing, silently
        ("[[redaction.allow_terms]]\nentities = ['PERSONS']\nterms = ['x']", {}, "allow_terms.0 names PERSONS"),
        ("[[redaction.allow_terms]]\nentities = ['PERSON']\nterms = ['  ']", {}, "redaction.allow_terms.0.terms"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ=env)


def test_allowed_terms_may_name_the_configurations_own_types(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[redaction]\ncustom_patterns = [{ entity = 'TICKET', pattern = 'TCK-[0-9]{6}' }]\n"
        "[[redaction.allow_terms]]\nentities = ['TICKET', 'PERSON']\nterms = ['TCK-000000']\n"
    )
    assert load_settings(path, environ={}).redaction.allow_terms[0].entities == ["TICKET", "PERSON"]


def test_trusted_proxies_default_to_none_and_take_addresses_and_networks() -> None:
    assert load_settings(environ={}).server.trusted_proxies == []  # x-forwarded-for is believed from no one
    env = {"SLUICEGATE_SERVER__TRUSTED_PROXIES": '["10.0.0.0/8", "fd00::/8", "192.0.2.7"]'}
    assert load_settings(environ=env).server.trusted_proxies == ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_env_values_are_typed_by_their_setting() -> None:
    env = {
        "SLUICEGATE_SERVER__PORT": "1",
        "SLUICEGATE_SERVER__HOST": "0.0.0.0",
        "SLUICEGATE_SERVER__DRAIN_SECONDS": "2.5",
        "SLUICEGATE_LOG__ACCESS": "true",
        "SLUICEGATE_KEYS": '[{"name": "a"}]',
        "OTHER": "x",
    }
    assert env_overrides(env) == {
        "server": {"port": 1, "host": "0.0.0.0", "drain_seconds": 2.5},
        "log": {"access": True},
        "keys": [{"name": "a"}],
    }


@pytest.mark.parametrize(
    ("name", "value", "where"),
    [
        ("SLUICEGATE_LANGSMITH__PROJECT", "2026", ("langsmith", "project")),  # all digits, a string setting
        ("SLUICEGATE_LANGSMITH__PROJECT", "true", ("langsmith", "project")),  # a JSON literal, a string setting
        ("SLUICEGATE_LANGSMITH__PROJECT", '["a"]', ("langsmith", "project")),
        ("SLUICEGATE_LANGSMITH__API_KEY_ENV", "null", ("langsmith", "api_key_env")),  # optional string: verbatim
        ("SLUICEGATE_SERVER__HOST", "1.5", ("server", "host")),
        ("SLUICEGATE_LOG__LEVEL", "info", ("log", "level")),  # a choice of strings
    ],
)
def test_a_string_setting_takes_the_value_verbatim(name: str, value: str, where: tuple[str, str]) -> None:
    section, key = where
    assert getattr(getattr(load_settings(environ={name: value}), section), key) == value


def test_all_digit_secrets_and_nested_tables_from_the_environment() -> None:
    env = {
        "SLUICEGATE_WEBHOOK__SECRET": "123456",
        "SLUICEGATE_REDACTION__PSEUDONYM_SECRET": "000777",
        "SLUICEGATE_PROVIDERS__OA__KIND": "openai",
        "SLUICEGATE_PROVIDERS__OA__API_KEY": "4242",
        "SLUICEGATE_PROVIDERS__OA__MODELS": '["gpt-4o", "o3"]',  # JSON into a list
        "SLUICEGATE_ROUTING__MODELS__LATEST": "oa",
        "SLUICEGATE_SPEND__DEFAULT_PRICE__INPUT_USD_PER_MTOK": "0.1",  # a decimal, exactly
        "SLUICEGATE_SPEND__DEFAULT_PRICE__OUTPUT_USD_PER_MTOK": "3",
        "SLUICEGATE_SPEND__OUTPUT_LIMITS__OA": "2048",  # an int inside a table of ints
    }
    s = load_settings(environ=env)
    assert s.webhook.secret == Secret("123456")
    assert s.redaction.pseudonym_secret == Secret("000777")
    assert s.providers["oa"].api_key == Secret("4242")
    assert s.providers["oa"].models == ["gpt-4o", "o3"]
    assert s.routing.models == {"latest": "oa"}
    assert s.spend.default_price is not None and str(s.spend.default_price.input_usd_per_mtok) == "0.1"
    assert s.spend.output_limits == {"oa": 2048}


def test_optional_and_list_settings_from_json() -> None:
    s = load_settings(environ={"SLUICEGATE_REDACTION__ENTITIES": '["US_SSN", "EMAIL_ADDRESS"]'})
    assert s.redaction.entities == ["US_SSN", "EMAIL_ADDRESS"]
    assert load_settings(environ={"SLUICEGATE_REDACTION__ENTITIES": "null"}).redaction.entities is None
    s = load_settings(environ={"SLUICEGATE_SERVER": '{"port": 9001, "host": "::"}'})  # a whole section
    assert (s.server.port, s.server.host) == (9001, "::")
    s = load_settings(environ={"SLUICEGATE_SERVER__GC_THRESHOLDS": "[1000, 5, 5]"})
    assert s.server.gc_thresholds == (1000, 5, 5)


@pytest.mark.parametrize("text", ["true", "TRUE", "1", "yes", "on", "false", "0", "no", "Off"])
def test_booleans_from_the_environment(text: str) -> None:
    expected = text.lower() in ("true", "1", "yes", "on")
    assert load_settings(environ={"SLUICEGATE_LOG__ACCESS": text}).log.access is expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SLUICEGATE_SERVER__PORT", "80x", "SLUICEGATE_SERVER__PORT must be a whole number"),
        ("SLUICEGATE_SERVER__PORT", "8.5", "SLUICEGATE_SERVER__PORT must be a whole number"),
        ("SLUICEGATE_SERVER__DRAIN_SECONDS", "soon", "SLUICEGATE_SERVER__DRAIN_SECONDS must be a number"),
        ("SLUICEGATE_SERVER__DRAIN_SECONDS", "nan", "SLUICEGATE_SERVER__DRAIN_SECONDS must be a finite number"),
        ("SLUICEGATE_LOG__ACCESS", "maybe", "SLUICEGATE_LOG__ACCESS must be true or false"),
        ("SLUICEGATE_METRICS__MODELS", "qq,zz", "SLUICEGATE_METRICS__MODELS must be JSON"),
        ("SLUICEGATE_SERVER__PROT", "77", r"SLUICEGATE_SERVER__PROT names no setting \(server.prot\)"),
        ("SLUICEGATE_SEVER__PORT", "77", "SLUICEGATE_SEVER__PORT names no setting"),
        ("SLUICEGATE_KEYS__0__NAME", "qq", "SLUICEGATE_KEYS__0__NAME names no setting"),
        ("SLUICEGATE_SERVER__PORT", "-1", "server.port"),  # parsed, then validated: the setting named
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(environ={name: value})
    assert value not in str(caught.value).replace(name, "")  # the value itself is never echoed


def test_a_misplaced_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"SLUICEGATE_SERVER__PORT": "sk-live-abcdef123"})
    assert "sk-live-abcdef123" not in str(caught.value)


def test_two_variables_for_one_setting_conflict_in_either_order() -> None:
    env = {"SLUICEGATE_SERVER": '{"port": 1}', "SLUICEGATE_SERVER__PORT": "2"}
    with pytest.raises(ConfigError, match="set the same setting"):
        env_overrides(env)
    with pytest.raises(ConfigError, match="set the same setting"):
        env_overrides(dict(reversed(env.items())))


def test_command_inputs_are_not_settings() -> None:
    env = {
        "SLUICEGATE_SECRET_VALUE": "123456",
        "SLUICEGATE_DRAIN_MARKER": "/tmp/x",
        "SLUICEGATE_ADMIN_URL": "https://gateway.example",
        "SLUICEGATE_ADMIN_TOKEN": "sga-xyz",
        "SLUICEGATE_SERVER__PORT": "9000",
    }
    assert env_overrides(env) == {"server": {"port": 9000}}
    assert load_settings(environ=env).server.port == 9000


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every setting (dotted name, annotation), nested sections and named entries included."""
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        annotation = field.annotation
        yield dotted, annotation
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        for kind in typing.get_args(annotation) if union else (annotation,):
            origin, args = typing.get_origin(kind), typing.get_args(kind)
            inner, below = (args[-1] if origin is dict else args[0], f"{dotted}.*.") if args else (kind, f"{dotted}.")
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _fields(inner, below)


def _holds_secret(annotation: Any) -> bool:
    kinds = [annotation, *typing.get_args(annotation)]
    kinds += [a for k in kinds for a in typing.get_args(k)]
    return any(isinstance(k, type) and issubclass(k, Secret) for k in kinds)


# Every setting that holds a credential, by name: a new one must be added here, as a `Secret`.
SECRET_SETTINGS = {
    "providers.*.api_key",
    "providers.*.headers",
    "redaction.pseudonym_secret",
    "spend.redis_url",
    "limits.redis_url",
    "loops.redis_url",
    "control.database_url",
    "control.master_key",
    "control.master_retired_keys",
    "control.audit_key",
    "control.audit_retired_keys",
    "control.redis_url",
    "control.oidc.client_secret",
    "langsmith.api_key",
    "metrics.token",
    "webhook.url",
    "webhook.secret",
}


def test_every_setting_that_holds_a_secret_is_a_secret_type() -> None:
    found = {name for name, annotation in _fields(Settings) if _holds_secret(annotation)}
    assert found == SECRET_SETTINGS
    # And nothing named like a credential is a plain string (`*_env` name variables, not values).
    word = re.compile(r"(secret|[._]token$|password|api_key$|master_key$|_url$)")
    plain = {
        name
        for name, a in _fields(Settings)
        if word.search(name) and not name.endswith("_env") and not _holds_secret(a)
    }
    assert plain == {
        "providers.*.base_url",
        "langsmith.run_url",
        "control.oidc.redirect_base_url",
        "mcp.public_url",
        "mcp.servers.*.oauth.token_url",  # an endpoint, as a server's url is; the client secret is `*_env`
    }


def test_no_printer_shows_a_secret_setting() -> None:
    values = {
        "SLUICEGATE_PROVIDERS__OA__KIND": "openai",
        "SLUICEGATE_PROVIDERS__OA__API_KEY": "sk-unit-provider-1",
        "SLUICEGATE_PROVIDERS__OA__HEADERS": '{"x-org-token": "hdr-unit-2"}',
        "SLUICEGATE_REDACTION__PSEUDONYM_SECRET": "pseudo-unit-3",
        "SLUICEGATE_SPEND__REDIS_URL": "redis://:redis-unit-4@h:6379/0",
        "SLUICEGATE_CONTROL__DATABASE_URL": "postgresql://u:db-unit-5@h/d",
        "SLUICEGATE_CONTROL__MASTER_KEY": "master-unit-6",
        "SLUICEGATE_CONTROL__REDIS_URL": "redis://:ctl-unit-7@h/0",
        "SLUICEGATE_LANGSMITH__API_KEY": "ls-unit-8",
        "SLUICEGATE_METRICS__TOKEN": "metrics-unit-token-9",
        "SLUICEGATE_WEBHOOK__URL": "https://u:hook-unit-10@h/x",
        "SLUICEGATE_WEBHOOK__SECRET": "whsec-unit-11",
        "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS": '["retired-unit-12"]',
        "SLUICEGATE_CONTROL__OIDC__ISSUER": "https://login.example.com",
        "SLUICEGATE_CONTROL__OIDC__CLIENT_ID": "sg",
        "SLUICEGATE_CONTROL__OIDC__CLIENT_SECRET": "oidc-unit-13",
        "SLUICEGATE_CONTROL__OIDC__REDIRECT_BASE_URL": "https://gw.example.com",
        "SLUICEGATE_CONTROL__OIDC__RULES": '[{"claim": "groups", "value": "a", "org_id": "o"}]',
    }
    s = load_settings(environ=values)
    printed = [repr(s), str(s), str(s.model_dump()), s.model_dump_json(), json.dumps(s.model_dump(mode="json"))]
    for secret in ("sk-unit-provider-1", "hdr-unit-2", "pseudo-unit-3", "redis-unit-4", "db-unit-5", "master-unit-6"):
        assert all(secret not in text for text in printed)
    for secret in (
        "ctl-unit-7",
        "ls-unit-8",
        "metrics-unit-token-9",
        "hook-unit-10",
        "whsec-unit-11",
        "retired-unit-12",
        "oidc-unit-13",
    ):
        assert all(secret not in text for text in printed)
    # The code that uses them asks explicitly.
    assert s.providers["oa"].headers["x-org-token"].reveal() == "hdr-unit-2"
    assert s.spend.redis_url.reveal() == "redis://:redis-unit-4@h:6379/0"
    assert str(s.spend.redis_url) == "redis://:*****@h:6379/0"


CAP = "[[spend.caps]]\nlevel = 'org'\nid = 'acme'\nlimit_usd = '5'\n"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        (CAP, {"SLUICEGATE_SERVER__WORKERS": "2"}),
        (CAP + "[spend]\nbackend = 'local'\n", {"SLUICEGATE_SERVER__WORKERS": "8"}),
        ("[control]\nenabled = true\n[server]\nworkers = 4\n", {}),
    ],
    ids=["file caps", "local stated", "control plane caps"],
)
def test_caps_on_the_local_backend_across_workers_are_refused(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=env)
    message = str(err.value)
    for named in ("spend.backend = 'local'", "server.workers = ", "spend.backend = 'redis'", "server.workers = 1"):
        assert named in message, message


@pytest.mark.parametrize(
    ("text", "env"),
    [
        (CAP, {"SLUICEGATE_SPEND__BACKEND": "redis", "SLUICEGATE_SERVER__WORKERS": "4"}),
        (CAP, {"SLUICEGATE_SERVER__WORKERS": "1"}),
        (CAP, {"SLUICEGATE_SPEND__ENABLED": "false", "SLUICEGATE_SERVER__WORKERS": "4"}),
        ("", {"SLUICEGATE_SERVER__WORKERS": "4"}),
    ],
    ids=["redis", "one worker", "spend off", "no caps"],
)
def test_caps_that_are_counted_once_start(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    load_settings(path, environ=env)


LANGSMITH_VARS = {
    "LANGSMITH_TRACING": "true",
    "LANGSMITH_ENDPOINT": "https://eu.api.smith.langchain.com",
    "LANGSMITH_PROJECT": "agents",
    "LANGSMITH_API_KEY": "lsv2_pt_" + "x" * 32,
}


def test_langsmith_own_variables_are_the_defaults_of_its_section() -> None:
    s = load_settings(environ=LANGSMITH_VARS)
    assert s.langsmith.enabled is True
    assert s.langsmith.endpoint == "https://eu.api.smith.langchain.com"
    assert s.langsmith.project == "agents"
    key = s.langsmith.resolved_api_key(LANGSMITH_VARS)
    assert key is not None and key.reveal() == LANGSMITH_VARS["LANGSMITH_API_KEY"]
    defaults = load_settings(environ={}).langsmith
    assert (defaults.enabled, defaults.endpoint, defaults.project) == (
        False,
        "https://api.smith.langchain.com",
        "sluicegate",
    )
    assert load_settings(environ={"LANGSMITH_PROJECT": "", "LANGSMITH_TRACING": " "}).langsmith == defaults


def test_the_file_and_sluicegate_variables_win_over_langsmith_variables(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[langsmith]\nenabled = false\nproject = "from-file"\n')
    s = load_settings(config, environ=LANGSMITH_VARS)
    assert (s.langsmith.enabled, s.langsmith.project) == (False, "from-file")
    assert s.langsmith.endpoint == "https://eu.api.smith.langchain.com"  # the file leaves it unset
    env = {**LANGSMITH_VARS, "SLUICEGATE_LANGSMITH__ENDPOINT": "http://127.0.0.1:1984"}
    s = load_settings(config, environ=env)
    assert s.langsmith.endpoint == "http://127.0.0.1:1984"
    s = load_settings(environ={**LANGSMITH_VARS, "SLUICEGATE_LANGSMITH": '{"project": "whole-section"}'})
    assert (s.langsmith.project, s.langsmith.enabled) == ("whole-section", True)


def test_a_bad_langsmith_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LANGSMITH_TRACING must be true or false"):
        load_settings(environ={"LANGSMITH_TRACING": "maybe"})
