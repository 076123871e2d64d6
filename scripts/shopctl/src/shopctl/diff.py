"""`shopctl diff`: what merging this change would make Argo CD apply, per environment."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shopctl.render import Progress, environments, render_environment
from shopctl.toolchain import require_helm

Key = tuple[str, str, str, str]  # application, kind, namespace, name


class DiffError(RuntimeError):
    pass


@dataclass
class EnvironmentDiff:
    environment: str
    added: list[Key] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)
    changed: dict[Key, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _label(key: Key) -> str:
    app, kind, namespace, name = key
    return f"{kind} {namespace}/{name} ({app})"


def _objects(root: Path, env: str, progress: Progress | None) -> dict[Key, str]:
    result = asyncio.run(render_environment(root, env, progress=progress))
    objects = {}
    for app in result.applications:
        for doc in app.documents:
            meta = doc.get("metadata") or {}
            key = (
                app.name,
                str(doc.get("kind")),
                str(meta.get("namespace", "")),
                str(meta.get("name")),
            )
            objects[key] = yaml.safe_dump(doc, sort_keys=True)
    return objects


@contextlib.contextmanager
def worktree(root: Path, rev: str) -> Iterator[Path]:
    """A temporary checkout of ``rev``, removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="shopctl-diff-"))
    target = folder / "tree"
    result = subprocess.run(  # noqa: S603 (git with fixed arguments)
        ["git", "-C", str(root), "worktree", "add", "--detach", str(target), rev],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise DiffError(f"cannot check out {rev!r}: {result.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(  # noqa: S603
            ["git", "-C", str(root), "worktree", "remove", "--force", str(target)],  # noqa: S607
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


def diff_objects(env: str, before: dict[Key, str], after: dict[Key, str]) -> EnvironmentDiff:
    result = EnvironmentDiff(env)
    result.added = sorted(set(after) - set(before))
    result.removed = sorted(set(before) - set(after))
    for key in sorted(set(before) & set(after)):
        if before[key] != after[key]:
            lines = difflib.unified_diff(
                before[key].splitlines(),
                after[key].splitlines(),
                f"a/{_label(key)}",
                f"b/{_label(key)}",
                lineterm="",
                n=3,
            )
            result.changed[key] = "\n".join(lines)
    return result


def diff(
    root: Path, base: str, envs: list[str], progress: Progress | None = None
) -> list[EnvironmentDiff]:
    # The base checkout has no .tools of its own: both sides use this checkout's Helm.
    os.environ.setdefault("SHOPFLOW_HELM", str(require_helm(root)))
    with worktree(root, base) as old_root:
        old_envs = set(environments(old_root))
        results = []
        for env in envs:
            before: dict[Key, Any] = _objects(old_root, env, progress) if env in old_envs else {}
            after = _objects(root, env, progress)
            results.append(diff_objects(env, before, after))
    return results


def format_text(results: list[EnvironmentDiff]) -> str:
    out = []
    for r in results:
        out.append(f"== {r.environment}")
        if r.empty:
            out.append("no changes")
            continue
        out.append(f"{len(r.added)} added, {len(r.removed)} removed, {len(r.changed)} changed")
        out += [f"+ {_label(k)}" for k in r.added] + [f"- {_label(k)}" for k in r.removed]
        out += list(r.changed.values())
    return "\n".join(out) + "\n"


def format_markdown(results: list[EnvironmentDiff], base: str) -> str:
    out = [f"### Rendered changes against `{base}`", ""]
    out += ["| Environment | Added | Removed | Changed |", "|---|---|---|---|"]
    out += [
        f"| {r.environment} | {len(r.added)} | {len(r.removed)} | {len(r.changed)} |"
        for r in results
    ]
    for r in results:
        out += ["", f"#### {r.environment}", ""]
        if r.empty:
            out.append("no changes")
            continue
        out += [f"- added: `{_label(k)}`" for k in r.added]
        out += [f"- removed: `{_label(k)}`" for k in r.removed]
        for key, text in r.changed.items():
            out += [
                "",
                f"<details><summary>{_label(key)}</summary>",
                "",
                "```diff",
                text,
                "```",
                "",
                "</details>",
            ]
    return "\n".join(out) + "\n"
