"""shopctl's child processes: a lower CPU priority for background work, and its setting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import pytest
from shopctl.procs import Child
from shopctl.runner import BACKGROUND_NICE, background_nice


@pytest.mark.parametrize("nice", [0, 4])
def test_a_child_runs_at_the_niceness_it_is_given(tmp_path: Path, nice: int) -> None:
    script = "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"
    child = Child("probe", [sys.executable, "-c", script], {}, tmp_path / "probe.log", nice=nice)
    child.start()
    assert child.process is not None and child.process.wait(30) == 0
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert int((tmp_path / "probe.log").read_text()) == min(base + nice, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the parent is untouched


def test_background_niceness_defaults_and_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHOPFLOW_BACKGROUND_NICE", raising=False)
    assert background_nice() == BACKGROUND_NICE == 10
    monkeypatch.setenv("SHOPFLOW_BACKGROUND_NICE", " ")
    assert background_nice() == BACKGROUND_NICE
    monkeypatch.setenv("SHOPFLOW_BACKGROUND_NICE", "0")
    assert background_nice() == 0
    monkeypatch.setenv("SHOPFLOW_BACKGROUND_NICE", "19")
    assert background_nice() == 19


@pytest.mark.parametrize("raw", ["-5", "20", "ten", "1.5"])
def test_a_bad_background_niceness_is_named(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SHOPFLOW_BACKGROUND_NICE", raw)
    with pytest.raises(click.UsageError, match=f"SHOPFLOW_BACKGROUND_NICE .* not '{raw}'"):
        background_nice()
