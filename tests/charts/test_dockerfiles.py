"""The five Dockerfiles: hadolint-clean, multi-stage, pinned, non-root, one service each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.charts import ROOT, SERVICE_CHARTS


@pytest.mark.parametrize("image", SERVICE_CHARTS)
def test_dockerfile(image: str) -> None:
    path = ROOT / "apps" / image / "Dockerfile"
    text = path.read_text()
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) == 2, "multi-stage: a builder and a runtime"
    assert all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", b) for b in bases), bases
    runtime = text.split("\nFROM ", 2)[-1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "EXPOSE 4000" in runtime and "uv" not in runtime.split("COPY --from=builder", 1)[1]
    assert f'"{image.replace("-", "_")}.app:create_app", "--factory"' in runtime
    assert f"--package {image}" in text


def test_dockerfiles_match_their_template(tmp_path: Path) -> None:
    from shopctl import dockerfiles

    assert dockerfiles.stale(ROOT) == [], "run `shopctl dockerfiles` after editing the template"
    # A hand edit is caught.
    (tmp_path / "apps" / "catalog-api").mkdir(parents=True)
    (tmp_path / "apps" / "catalog-api" / "Dockerfile").write_text(
        dockerfiles.render("catalog-api").replace("USER 10001:10001", "USER root")
    )
    assert tmp_path / "apps" / "catalog-api" / "Dockerfile" in dockerfiles.stale(tmp_path)
