from pathlib import Path

import pytest

from sluicegate.config import ConfigError, env_overrides, load_settings

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
    assert s.providers["oa"].resolved_api_key({"OA_KEY": "k"}) == "k"
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
        ("[providers.x]\nkind = 'bedrock'", {}, "providers.x.kind"),
        ("[providers.x]\nkind = 'openai'\nbase_url = 'ftp://h'", {}, "providers.x.base_url"),
        ("[[keys]]\nname = 'k'\nsha256 = 'short'", {}, "keys.0.sha256"),
        ("", {"SLUICEGATE_SERVER__WORKERS": "0"}, "server.workers"),
        ("server = [", {}, "does not parse"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ=env)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_env_values_are_json_when_they_parse() -> None:
    env = {
        "SLUICEGATE_SERVER__PORT": "1",
        "SLUICEGATE_SERVER__HOST": "0.0.0.0",
        "SLUICEGATE_KEYS": '[{"name": "a"}]',
        "OTHER": "x",
    }
    assert env_overrides(env) == {"server": {"port": 1, "host": "0.0.0.0"}, "keys": [{"name": "a"}]}


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
