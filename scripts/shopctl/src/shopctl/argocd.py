"""Argo CD as the harness sees it: ApplicationSets expanded into Applications.

Implements the generators the repo uses (git files, list, matrix) with
go-template semantics, then the template and ``templatePatch``. Any generator,
option or field it does not implement is refused by name: the harness must
render what Argo CD renders, or nothing.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from shopctl import gotemplate

APPLICATIONSET_FIELDS = {
    "goTemplate",
    "goTemplateOptions",
    "generators",
    "template",
    "templatePatch",
}
GENERATORS = {"git", "list", "matrix"}
GIT_FIELDS = {"repoURL", "revision", "files"}


class ApplicationSetError(ValueError):
    """An ApplicationSet uses something the harness does not implement, or is wrong."""


def _refuse_unknown(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ApplicationSetError(
            f"{where}.{unknown[0]} is not implemented by shopctl's ApplicationSet expansion "
            f"(it implements: {', '.join(sorted(allowed))})"
        )


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def application_sets(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((root / "argocd" / "applicationsets").glob("*.yaml")):
        for doc in load_yaml_documents(path):
            if doc.get("kind") == "ApplicationSet":
                found.append((path, doc))
    return found


def _git_files(root: Path, spec: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
    _refuse_unknown(spec, GIT_FIELDS, where)
    for i, entry in enumerate(spec.get("files") or []):
        _refuse_unknown(entry, {"path"}, f"{where}.files[{i}]")
        for match in sorted(root.glob(entry["path"])):
            content = yaml.safe_load(match.read_text()) or {}
            if not isinstance(content, dict):
                raise ApplicationSetError(f"{match.relative_to(root)} is not a YAML mapping")
            relative = match.relative_to(root)
            folder = relative.parent
            params = dict(content)
            params["path"] = {
                "path": str(folder),
                "basename": folder.name,
                "filename": relative.name,
                "basenameNormalized": folder.name.lower().replace("_", "-"),
                "filenameNormalized": relative.name.lower().replace("_", "-"),
                "segments": list(folder.parts),
            }
            yield params


def _expand(root: Path, generator: dict[str, Any], where: str) -> list[dict[str, Any]]:
    if len(generator) != 1:
        kinds = ", ".join(sorted(generator)) or "nothing"
        raise ApplicationSetError(f"{where} must hold exactly one generator, not {kinds}")
    kind, spec = next(iter(generator.items()))
    if kind not in GENERATORS:
        raise ApplicationSetError(
            f"{where}.{kind}: the {kind} generator is not implemented "
            f"(shopctl implements: {', '.join(sorted(GENERATORS))})"
        )
    here = f"{where}.{kind}"
    if kind == "git":
        return list(_git_files(root, spec, here))
    if kind == "list":
        _refuse_unknown(spec, {"elements"}, here)
        return [dict(e) for e in spec.get("elements") or []]
    _refuse_unknown(spec, {"generators"}, here)
    children = spec.get("generators") or []
    if len(children) != 2:
        raise ApplicationSetError(f"{here}.generators: a matrix combines exactly two generators")
    left = _expand(root, children[0], f"{here}.generators[0]")
    right = _expand(root, children[1], f"{here}.generators[1]")
    return [{**a, **b} for a, b in itertools.product(left, right)]


def _merge(base: Any, patch: Any) -> Any:
    """templatePatch semantics for our use: maps merge, everything else replaces."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(patch)


def expand(
    root: Path, appset: dict[str, Any], source: str = "ApplicationSet"
) -> list[dict[str, Any]]:
    """The Applications ``appset`` generates, as Argo CD would."""
    name = (appset.get("metadata") or {}).get("name", "?")
    where = f"{source} ApplicationSet {name}: spec"
    spec = appset.get("spec") or {}
    _refuse_unknown(spec, APPLICATIONSET_FIELDS, where)
    if spec.get("goTemplate") is not True:
        raise ApplicationSetError(
            f"{where}.goTemplate must be true (fasttemplate is not implemented)"
        )
    if spec.get("goTemplateOptions") != ["missingkey=error"]:
        raise ApplicationSetError(f'{where}.goTemplateOptions must be ["missingkey=error"]')
    applications = []
    for i, generator in enumerate(spec.get("generators") or []):
        for params in _expand(root, generator, f"{where}.generators[{i}]"):
            try:
                app = gotemplate.render_tree(copy.deepcopy(spec["template"]), params)
                if spec.get("templatePatch"):
                    patch = yaml.safe_load(gotemplate.render(spec["templatePatch"], params))
                    app = _merge(app, patch)
            except gotemplate.TemplateError as exc:
                raise ApplicationSetError(f"{where}.template: {exc}") from None
            metadata = app.setdefault("metadata", {})
            metadata.setdefault("namespace", (appset.get("metadata") or {}).get("namespace"))
            applications.append(
                {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **app}
            )
    names = [a["metadata"]["name"] for a in applications]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ApplicationSetError(f"{where}: generates duplicate Application names {duplicates}")
    return applications


def all_applications(root: Path) -> list[dict[str, Any]]:
    apps = []
    for path, appset in application_sets(root):
        apps.extend(expand(root, appset, str(path.relative_to(root))))
    return apps
