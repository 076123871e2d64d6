"""Locating the repository and its local folders."""

from __future__ import annotations

import os
from pathlib import Path


class NotInRepo(RuntimeError):
    pass


def repo_root(start: Path | None = None) -> Path:
    """The ShopFlow checkout containing ``start`` (default: the current directory)."""
    env = os.environ.get("SHOPFLOW_REPO")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (
            (folder / "charts").is_dir()
            and (folder / "apps").is_dir()
            and (folder / "pyproject.toml").is_file()
        ):
            return folder
    raise NotInRepo(f"{here} is not inside a ShopFlow checkout (no charts/ and apps/ found)")


def tools_bin(root: Path) -> Path:
    return root / ".tools" / "bin"


def local_state(root: Path) -> Path:
    """Local data (PostgreSQL, mail, logs, generated secrets); SHOPFLOW_STATE_DIR moves it."""
    override = os.environ.get("SHOPFLOW_STATE_DIR")
    return Path(override).resolve() if override else root / ".shopflow"
