"""SECURITY.md stays checkable where that is cheap: every file it names exists (and a test named
as `file.py::test_name` is defined there), every link and anchor resolves, every setting
(`section.key`, `[section]`), `SLUICEGATE_*` variable and Helm value (`secrets.masterKey`,
`config.control.…`) it names exists in the settings model or the chart's values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from sluicegate.config import NOT_SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "SECURITY.md"
VALUES = ROOT / "deploy" / "helm" / "sluicegate" / "values.yaml"
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_SOURCE_EXT = (".py", ".pyi", ".md", ".rs", ".lua", ".yaml", ".yml", ".toml", ".json", ".tpl", ".txt", ".html")
# `section.key`, `[section]`, `[[section.key]]`, optionally followed by ` = value` or `: value`.
_DOTTED = re.compile(r"(\[{1,2})?([a-z][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_]+|<[a-z_]+>))*)(\]{1,2})?(?:\s*[=:]\s.*)?")
_VARIABLE = re.compile(r"SLUICEGATE_[A-Z0-9_]+")


def _text(path: Path) -> str:
    """The Markdown of `path` without its fenced code blocks."""
    return _FENCE.sub("", path.read_text())


def _code_spans(text: str) -> list[str]:
    return [span.strip() for span in _CODE.findall(text)]


# ── what names what ─────────────────────────────────────────────────────────────────────────────


def _is_path(token: str) -> bool:
    """A repository path: it starts with a top-level entry of the repository, or it is a relative
    path to a source or document file."""
    if " " in token or "://" in token or token.startswith(("/", "<")):
        return False
    first = token.split("/", 1)[0].split("::", 1)[0]
    top = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
    return first in top or ("/" in token and token.split("::", 1)[0].endswith(_SOURCE_EXT))


def _kinds(annotation: Any) -> list[Any]:
    """The types an annotation allows, without `Annotated`, unions and None."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        return [k for a in get_args(annotation) if a is not type(None) for k in _kinds(a)]
    return [annotation]


def _resolves(annotation: Any, parts: list[str]) -> bool:
    """Whether `parts` names a setting under `annotation`: a model descends by field name, a table
    (`providers`, `routing.models`) by any entry name (`<name>` too), a list into its entries."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    for kind in _kinds(annotation):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(head)
            if field is not None and _resolves(field.annotation, rest):
                return True
        origin = get_origin(kind)
        if origin in (dict, Mapping) and _resolves(get_args(kind)[1], rest):
            return True
        if origin in (list, tuple) and _resolves(get_args(kind)[0], parts):
            return True
    return False


def setting_exists(name: str) -> bool:
    """Whether the dotted `name` (`upstream.tenant_base_urls`, `providers.<name>.headers`) is a setting."""
    return _resolves(Settings, name.split("."))


def helm_value_exists(name: str, values: Mapping[str, Any]) -> bool:
    """Whether `name` is in the chart's values: `config.…` is a sluicegate setting, the rest is
    looked up in `values.yaml` (a list or an empty map there ends the lookup)."""
    parts = name.split(".")
    if parts[0] == "config":
        return setting_exists(".".join(parts[1:]))
    node: Any = values
    for part in parts:
        if isinstance(node, list) or node == {}:
            return True
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _references(text: str, values: Mapping[str, Any]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(paths, settings, variables, Helm values) that the code spans of `text` name."""
    paths, settings, variables, helm = [], [], [], []
    for token in _code_spans(text):
        if _is_path(token):
            paths.append(token)
            continue
        variables += _VARIABLE.findall(token)
        m = _DOTTED.fullmatch(token)
        if m is None:
            continue
        name, bracketed = m.group(2), m.group(1) is not None
        first = name.split(".", 1)[0]
        if first in Settings.model_fields and ("." in name or bracketed):
            settings.append(name)
        elif (
            first in values
            and first not in Settings.model_fields
            and "." in name
            # `config.<section>.…` is the chart's copy of a setting; `config.effective` and the like
            # (audit actions) name no value.
            and (first != "config" or name.split(".")[1] in Settings.model_fields)
        ):
            helm.append(name)
    return paths, settings, variables, helm


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _text(path).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m is None:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


# ── the checks ──────────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def refs() -> tuple[list[str], list[str], list[str], list[str]]:
    values = yaml.safe_load(VALUES.read_text())
    return _references(_text(DOC), values)


def test_the_checker_tells_real_names_from_made_up_ones() -> None:
    values = yaml.safe_load(VALUES.read_text())
    for real in ("upstream.tenant_base_urls", "providers.<name>.headers", "spend.caps.locked", "spend.lease.enabled"):
        assert setting_exists(real), real
    for made_up in ("upstream.tenant_base_url", "control.master", "providers.<name>.header", "spend.caps.lock"):
        assert not setting_exists(made_up), made_up
    assert helm_value_exists("secrets.masterKey", values)
    assert helm_value_exists("config.control.audit_anchor_file", values)
    assert not helm_value_exists("secrets.masterkey", values)
    assert not helm_value_exists("config.control.audit_anchor", values)
    assert _is_path("python/sluicegate/app.py") and _is_path("docs/nope.md") and _is_path("x/y.py::test_z")
    assert not _is_path("text/event-stream") and not _is_path("/admin/v1/whoami")
    paths, settings, variables, helm = _references(
        '`python/x.py` `[redaction]` `spend.backend = "redis"` `SLUICEGATE_SPEND__BACKEND` `secrets.redisUrl` '
        "`block` `sluicegate audit verify`",
        values,
    )
    assert (paths, settings, variables, helm) == (
        ["python/x.py"],
        ["redaction", "spend.backend"],
        ["SLUICEGATE_SPEND__BACKEND"],
        ["secrets.redisUrl"],
    )


def test_every_file_it_names_exists(refs: tuple[list[str], list[str], list[str], list[str]]) -> None:
    paths = refs[0]
    assert len(paths) >= 20  # the document names its code; a reader that finds none is broken
    missing = [p for p in paths if not list(ROOT.glob(p.split("::", 1)[0]))]
    assert missing == []


def test_every_test_it_names_is_defined(refs: tuple[list[str], list[str], list[str], list[str]]) -> None:
    named = [p for p in refs[0] if "::" in p]
    assert named
    undefined = [
        p
        for p in named
        if not re.search(rf"^(async )?def {re.escape(p.split('::')[1])}\(", (ROOT / p.split("::")[0]).read_text(), re.M)
    ]
    assert undefined == []


def test_every_setting_it_names_exists(refs: tuple[list[str], list[str], list[str], list[str]]) -> None:
    settings = refs[1]
    assert len(settings) >= 20
    assert [s for s in settings if not setting_exists(s)] == []


def test_every_variable_it_names_is_a_setting(refs: tuple[list[str], list[str], list[str], list[str]]) -> None:
    variables = refs[2]
    assert variables
    unknown = [
        v
        for v in variables
        if v not in NOT_SETTINGS
        and not setting_exists(".".join(p.lower() for p in v[len("SLUICEGATE_") :].split("__")))
    ]
    assert unknown == []


def test_every_helm_value_it_names_exists(refs: tuple[list[str], list[str], list[str], list[str]]) -> None:
    values = yaml.safe_load(VALUES.read_text())
    helm = refs[3]
    assert helm
    assert [h for h in helm if not helm_value_exists(h, values)] == []


def test_every_link_and_anchor_resolves() -> None:
    broken = []
    for target in _LINK.findall(_text(DOC)):
        if "://" in target:
            continue
        path_part, _, anchor = target.partition("#")
        path = ROOT / path_part if path_part else DOC
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(target)
    assert broken == []


def test_every_class_member_it_names_is_defined() -> None:
    """`Gateway._exchange`, `ControlStore.audit_rows`: a module of the package defines the class and the member
    (the Rust extension's classes by their stub, `_core.pyi`)."""
    named = [s for s in _code_spans(_text(DOC)) if re.fullmatch(r"[A-Z][A-Za-z0-9]*\.[a-z_][a-z0-9_]*", s)]
    assert len(named) >= 5
    package = ROOT / "python" / "sluicegate"
    sources = [f.read_text() for pattern in ("*.py", "*.pyi") for f in package.rglob(pattern)]
    undefined = []
    for name in named:
        cls, member = name.split(".")
        if not any(re.search(rf"^class {cls}\b", src, re.M) and re.search(rf"\b{member}\b", src) for src in sources):
            undefined.append(name)
    assert undefined == []


@pytest.mark.parametrize(("page", "link"), [("README.md", "(SECURITY.md)"), ("docs/deploy.md", "(../SECURITY.md)")])
def test_it_is_linked_from_the_readme_and_the_deploy_guide(page: str, link: str) -> None:
    assert link in (ROOT / page).read_text()
