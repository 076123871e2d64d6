"""The release workflow's build matrix, generated from the service registry.

`.github/workflows/release.yml` reads it with ``fromJSON``, so adding a service to
the registry adds it to every release; nothing is typed twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shopctl.promote import RELEASE_ENVIRONMENT
from shopctl.services import SERVICES, has_code

#: The IAM role the release assumes through GitHub's OIDC provider
#: (environments/_clusters/release-role-*.json).
RELEASE_ROLE = "shopflow-release-ecr-push"
REPOSITORY_PREFIX = "shopflow-platform"


def registry(root: Path) -> dict[str, str]:
    """The ECR registry a release pushes to: the account where a release enters (dev)."""
    env = yaml.safe_load((root / "environments" / RELEASE_ENVIRONMENT / "env.yaml").read_text())
    account, region = str(env["aws"]["account"]), str(env["aws"]["region"])
    return {
        "account": account,
        "region": region,
        "registry": f"{account}.dkr.ecr.{region}.amazonaws.com",
        "role": f"arn:aws:iam::{account}:role/{RELEASE_ROLE}",
    }


def matrix(root: Path, *, only_existing: bool = False) -> dict[str, Any]:
    """``{"include": [...]}``: one entry per service image, with where it is pushed."""
    where = registry(root)
    return {
        "include": [
            {
                "service": s.name,
                "image": s.image,
                "package": s.package,
                "repository": f"{REPOSITORY_PREFIX}/{s.image}",
                **where,
            }
            for s in SERVICES
            if not only_existing or has_code(s, root)
        ]
    }
