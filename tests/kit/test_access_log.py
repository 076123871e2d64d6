"""The access log's batching: one write per event-loop turn, in order with every other line."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from shopflow_kit.observability import AccessLog, JsonFormatter, OrderedStreamHandler


def test_lines_of_one_turn_are_written_together_and_keep_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    handler = OrderedStreamHandler(out)
    handler.setFormatter(JsonFormatter("svc"))
    other = logging.getLogger("test.access.other")
    other.handlers[:] = [handler]
    other.propagate = False
    access_logger = logging.getLogger("test.access.lines")
    access_logger.setLevel(logging.INFO)
    access = AccessLog("svc", access_logger)
    seen_mid_turn: list[str] = []

    async def turns() -> None:
        access.write({"path": "/a"})
        access.write({"path": "/b"})
        seen_mid_turn.append(out.getvalue())  # nothing yet: the turn is not over
        other.warning("between")  # any other line writes the pending ones first
        access.write({"path": "/c"})
        await asyncio.sleep(0)  # the turn ends: /c is written

    asyncio.run(turns())
    assert seen_mid_turn == [""]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("path", line["msg"]) for line in lines] == ["/a", "/b", "between", "/c"]


def test_outside_an_event_loop_a_line_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    access_logger = logging.getLogger("test.access.sync")
    access_logger.setLevel(logging.INFO)
    AccessLog("svc", access_logger).write({"path": "/now"})
    assert json.loads(out.getvalue())["path"] == "/now"
