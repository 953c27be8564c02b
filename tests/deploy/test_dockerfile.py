"""`deploy/Dockerfile`, read: no Docker engine runs here, so the image is checked by what it says.

Multi-stage (maturin builds the wheel in release mode; a slim Python 3.11 runtime installs it), a
numeric non-root user, a HEALTHCHECK on /healthz, `sluicegate serve` as the entrypoint, variables
that are sluicegate settings, and a build context (`deploy/Dockerfile.dockerignore`) that sends what
the wheel is built from and nothing else.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from sluicegate.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
CHART_VALUES = ROOT / "deploy" / "helm" / "sluicegate" / "values.yaml"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, each a list of (KEYWORD, arguments)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "a line continuation runs off the end"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
    return args, stages


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def runtime(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def test_multi_stage_build(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = dockerfile
    assert len(stages) >= 2
    builder = next(s for s in stages if s.name == "builder")
    build = " ".join(builder.all("RUN"))
    assert "maturin build --release" in build
    assert "--locked" in build
    final = stages[-1]
    assert final is not builder
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", expand(final.base, args))
    assert expand(builder.base, args) == expand(final.base, args), "the wheel's glibc tag must match the runtime"
    # The runtime installs the builder's wheel and carries no toolchain.
    install = " ".join(final.all("RUN"))
    assert "from=builder" in install
    assert ".whl" in install
    assert "cargo" not in install and "rustup" not in install


def test_every_package_comes_from_a_lock_file(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Two builds on two days install the same packages: every pip install is hash-checked against a
    lock file and resolves nothing (`--no-deps`), except the wheel just built, whose dependencies
    the lock already installed."""
    installs = [
        part.strip()
        for stage in dockerfile[1]
        for run in stage.all("RUN")
        for part in run.split("&&")
        if re.search(r"\bpip install\b", part)
    ]
    assert len(installs) >= 3
    for install in installs:
        assert "--no-deps" in install, install
        if ".whl" not in install:
            assert "--require-hashes" in install and re.search(r"-r /tmp/\w+\.lock", install), install
    copied = " ".join(args for stage in dockerfile[1] for args in stage.all("COPY"))
    for lock in ("requirements/build.lock", "requirements/runtime.lock"):
        assert lock in copied
        assert (ROOT / lock).read_text().count("--hash=sha256:") > 10


def test_runs_as_non_root(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    user = runtime(dockerfile).last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root uid, so runAsNonRoot can be checked"
    assert gid.isdigit() and int(gid) > 0
    chart = yaml.safe_load(CHART_VALUES.read_text())
    assert chart["podSecurityContext"]["runAsUser"] == int(uid)
    assert chart["podSecurityContext"]["runAsGroup"] == int(gid)


def test_read_only_root_filesystem(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    env = env_of(runtime(dockerfile))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    # Anything that writes to a home or cache directory writes under /tmp (a tmpfs or emptyDir).
    assert env["HOME"].startswith("/tmp")
    assert env["XDG_CACHE_HOME"].startswith("/tmp")
    assert "--compile" in " ".join(runtime(dockerfile).all("RUN")), "bytecode is compiled at install"


def test_entrypoint_and_healthcheck(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    final = runtime(dockerfile)
    assert json.loads(final.last("ENTRYPOINT")) == ["sluicegate"]
    assert json.loads(final.last("CMD")) == ["serve"]
    assert final.last("EXPOSE") == "8080"
    assert final.last("STOPSIGNAL") == "SIGTERM"
    healthcheck = final.last("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2]
    compile(argv[2], "HEALTHCHECK", "exec")  # valid Python


def test_variables_are_settings(dockerfile: tuple[dict[str, str], list[Stage]], tmp_path: Path) -> None:
    env = env_of(runtime(dockerfile))
    ours = {k: v for k, v in env.items() if k.startswith("SLUICEGATE_")}
    assert ours == {"SLUICEGATE_SERVER__HOST": "0.0.0.0", "SLUICEGATE_SERVER__PORT": "8080"}
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    settings = load_settings(config, environ=ours)
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8080)
    chart = yaml.safe_load(CHART_VALUES.read_text())
    assert chart["containerPort"] == settings.server.port


def test_labels(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    labels = " ".join(runtime(dockerfile).all("LABEL"))
    for name in ("title", "version", "revision", "licenses", "description"):
        assert f"org.opencontainers.image.{name}=" in labels


# --- the build context ------------------------------------------------------------------------------


def _pattern(glob: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, pattern in rules:
        if any(pattern.fullmatch(c) for c in candidates):
            result = not negated
    return result


@pytest.fixture(scope="module")
def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern(line.lstrip("!").rstrip("/"))))
    return rules


def test_context_sends_the_sources(
    dockerfile: tuple[dict[str, str], list[Stage]], ignore_rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    sources = []
    for stage in dockerfile[1]:
        for args in stage.all("COPY"):
            words = [w for w in args.split() if not w.startswith("--")]
            if "--from=" not in args:
                sources += words[:-1]
    assert {"Cargo.toml", "Cargo.lock", "pyproject.toml", "rust", "python"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source, ignore_rules), f"COPY {source}: excluded from the build context"
    for path in ("rust/src/lib.rs", "python/sluicegate/__init__.py", "python/sluicegate/_core.pyi"):
        assert not ignored(path, ignore_rules), path


LEFT_OUT = [".git/HEAD", ".venv/bin/python", "target/release/x", "python/sluicegate/_core.abi3.so", ".tools/helm/helm"]
LEFT_OUT += ["python/sluicegate/__pycache__/app.cpython-311.pyc", "tests/conftest.py", ".env", "deploy/Dockerfile"]


@pytest.mark.parametrize("path", LEFT_OUT)
def test_context_leaves_out(path: str, ignore_rules: list[tuple[bool, re.Pattern[str]]]) -> None:
    assert ignored(path, ignore_rules)
