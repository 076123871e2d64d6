"""`shopctl promote`: copy image tags from one environment's version.yaml files to another's."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from shopctl.services import SERVICES

#: A release tag (1.4.2, v1.4.2, 1.4.2-rc.1) or a commit sha: what CI pushes to ECR.
RELEASE_TAG = re.compile(r"^(v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?|[0-9a-f]{7,40})$")
#: What the release workflow runs on (`on.push.tags: v*`) and pushes as the image tag.
GIT_RELEASE_TAG = re.compile(r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
RELEASE_ENVIRONMENT = "dev"
_TAG_LINE = re.compile(r"^(\s*tag:\s*)(\S+)(.*)$", re.MULTILINE)


class PromotionError(ValueError):
    pass


@dataclass
class Change:
    path: Path
    old: str
    new: str
    diff: str


def _tag(path: Path) -> str:
    if not path.is_file():
        raise PromotionError(f"{path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    tag = str((data.get("image") or {}).get("tag", ""))
    if set(data) != {"image"} or set(data["image"]) != {"tag"}:
        raise PromotionError(f"{path} must hold only image.tag")
    return tag


def plan(root: Path, source: str, target: str, services: list[str]) -> list[Change]:
    if source == target:
        raise PromotionError("--from and --to name the same environment")
    for env in (source, target):
        if not (root / "environments" / env / "env.yaml").is_file():
            raise PromotionError(f"unknown environment {env!r}")
    images = {s.name: s.image for s in SERVICES} | {s.image: s.image for s in SERVICES}
    unknown = [s for s in services if s not in images]
    if unknown:
        raise PromotionError(
            f"unknown service {unknown[0]!r}; services: {', '.join(s.name for s in SERVICES)}"
        )
    chosen = [images[s] for s in services] or [s.image for s in SERVICES]
    changes = []
    for image in dict.fromkeys(chosen):
        src = root / "environments" / source / image / "version.yaml"
        tag = _tag(src)
        if not RELEASE_TAG.match(tag):
            raise PromotionError(
                f"{src.relative_to(root)}: {tag!r} is not a release tag or commit sha"
            )
        change = _change(root, root / "environments" / target / image / "version.yaml", tag)
        if change is not None:
            changes.append(change)
    return changes


def plan_release(root: Path, tag: str, target: str = RELEASE_ENVIRONMENT) -> list[Change]:
    """Set every service's image tag in ``target`` (dev: where a release enters) to ``tag``."""
    if target != RELEASE_ENVIRONMENT:
        raise PromotionError(
            f"a release enters at {RELEASE_ENVIRONMENT}, not {target!r}; "
            f"promote onwards with --from {RELEASE_ENVIRONMENT} --to {target}"
        )
    check_release_tag(tag)
    if not (root / "environments" / target / "env.yaml").is_file():
        raise PromotionError(f"unknown environment {target!r}")
    changes = [
        _change(root, root / "environments" / target / s.image / "version.yaml", tag)
        for s in SERVICES
    ]
    return [c for c in changes if c is not None]


def check_release_tag(tag: str) -> None:
    if not GIT_RELEASE_TAG.match(tag):
        raise PromotionError(f"{tag!r} is not a release tag (vMAJOR.MINOR.PATCH[-PRERELEASE])")


def _change(root: Path, dst: Path, tag: str) -> Change | None:
    """The edit setting ``dst``'s tag to ``tag``, or None when it already is ``tag``."""
    current = _tag(dst)
    if tag == current:
        return None
    before = dst.read_text()
    after = _retag(before, tag)
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{dst.relative_to(root)}",
            f"b/{dst.relative_to(root)}",
        )
    )
    return Change(dst, current, tag, diff)


def _retag(text: str, tag: str) -> str:
    """Replace only the tag; quoted, so a sha of digits never turns into a number."""
    return _TAG_LINE.sub(lambda m: f'{m.group(1)}"{tag}"{m.group(3)}', text, count=1)


def apply(changes: list[Change]) -> None:
    for change in changes:
        partial = change.path.with_suffix(".partial")
        partial.write_text(_retag(change.path.read_text(), change.new))
        partial.replace(change.path)  # atomic: a crash never leaves half a file
