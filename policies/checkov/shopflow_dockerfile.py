"""ShopFlow's Dockerfile policy (10): non-root, pinned bases, no remote ADD, no secrets in ENV."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from checkov.common.bridgecrew.severities import BcSeverities, Severities
from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.dockerfile.base_dockerfile_check import BaseDockerfileCheck

if TYPE_CHECKING:
    from dockerfile_parse.parser import _Instruction

PINNED = re.compile(r"^[^:@\s]+(:[^\s]*\d+\.\d+[^\s]*|@sha256:[0-9a-f]{64})$")
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE
)


def _env_names(value: str) -> list[str]:
    if "=" not in value:
        return [value.split()[0]] if value.split() else []
    return [
        part.split("=", 1)[0] for part in re.findall(r"(\S+?=(?:\"[^\"]*\"|'[^']*'|\S*))", value)
    ]


class HardenedDockerfile(BaseDockerfileCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Dockerfiles run as a non-root USER, pin their base images, ADD no URLs and keep secrets out of ENV",
            id="CKV_SHOPFLOW_10",
            categories=(CheckCategories.APPLICATION_SECURITY,),
            supported_instructions=("*",),
            guideline=(
                "End with USER <numeric uid>, FROM an exact version (python:3.11.11-slim-bookworm) or "
                "a digest, COPY files instead of ADD <url>, and pass secrets at run time, never in ENV."
            ),
        )
        self.severity = Severities[BcSeverities.HIGH]

    def scan_resource_conf(  # type: ignore[override]  # wildcard instructions
        self, conf: dict[str, list[_Instruction]]
    ) -> tuple[CheckResult, list[_Instruction] | None]:
        problems: list[str] = []
        offending: list[Any] = []
        stages: set[str] = set()
        for instruction in conf.get("FROM", []):
            words = instruction["value"].split()
            image = words[0] if words else ""
            if len(words) >= 3 and words[-2].upper() == "AS":
                stages.add(words[-1].lower())
            if image.lower() in stages or image == "scratch":
                continue
            if not PINNED.match(image) or image.endswith(":latest"):
                problems.append(f"base image {image} is not pinned to an exact version or digest")
                offending.append(instruction)
        users = conf.get("USER", [])
        last_user = users[-1]["value"].split(":")[0].strip() if users else "root"
        if last_user in ("root", "0"):
            problems.append("the image runs as root (no non-root USER at the end)")
            offending.extend(users[-1:])
        for instruction in conf.get("ADD", []):
            if re.search(r"\bhttps?://", instruction["value"]):
                problems.append("ADD fetches a URL")
                offending.append(instruction)
        for instruction in conf.get("ENV", []) + conf.get("ARG", []):
            for name in _env_names(instruction["value"]):
                if SECRET_NAME.search(name):
                    problems.append(f"{name} looks like a secret baked into the image")
                    offending.append(instruction)
        self.details.extend(problems)
        return (CheckResult.FAILED, offending) if problems else (CheckResult.PASSED, None)


check = HardenedDockerfile()
