"""The outbox: transactional writes, and at-least-once delivery across outages and crashes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler

import asyncpg
import httpx
import pytest
from shopctl.ports import free_port
from shopflow_kit.outbox import backoff_delay, publish_with

from tests.utils.issuer import TokenIssuer
from tests.utils.kit import migrate_sample, sample_env
from tests.utils.live import LoopbackHTTPServer, start_service


class Receiver:
    """notify-hub's /internal/events stand-in: records what arrives, de-duplicating on id."""

    def __init__(self, port: int) -> None:
        self.received: list[str] = []
        self.server = LoopbackHTTPServer(self.handle, port=port)

    def handle(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if req.path != "/internal/events" or not (
            req.headers.get("authorization") or ""
        ).startswith("Bearer "):
            return 401, {}, b""
        event = json.loads(body)
        assert set(event) == {"id", "type", "occurred_at", "subject_user_id", "data"}
        self.received.append(event["id"])
        return 200, {"content-type": "application/json"}, b"{}"


async def outbox_state(database_url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(delivered_at) AS delivered, "
            "coalesce(max(attempts), 0) AS attempts FROM outbox"
        )
        return int(row["total"]), int(row["delivered"]), int(row["attempts"])
    finally:
        await conn.close()


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
async def test_delivers_everything_after_outage_and_relay_crash(
    database_url: str, issuer: TokenIssuer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    await migrate_sample(database_url)
    receiver_port = free_port()
    env = sample_env(
        database_url, issuer, run_relay="true", notify_hub_url=f"http://127.0.0.1:{receiver_port}"
    )
    logs = tmp_path_factory.mktemp("outbox-logs")
    service = start_service("outbox-1", "tests.kit_sample.app:create_app", env, logs)
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            published = [
                (await http.post("/widgets/publish")).json()["event_id"] for _ in range(10)
            ]
            rolled_back = await http.post("/widgets/publish", params={"fail": "1"})
            assert rolled_back.status_code == 409
        # The receiver is down: deliveries fail and are rescheduled, none is lost.
        await wait_for(lambda: _attempted(database_url))
        total, delivered, _ = await outbox_state(database_url)
        assert (total, delivered) == (10, 0)  # the rolled-back publish left no event
    finally:
        service.kill()  # a crash: no graceful shutdown

    receiver = Receiver(receiver_port)
    receiver.server.start()
    restarted = start_service("outbox-2", "tests.kit_sample.app:create_app", env, logs)
    try:
        await wait_for(lambda: _all_delivered(database_url))
    finally:
        restarted.stop()
        receiver.server.stop()
    assert set(receiver.received) == set(published)


async def _attempted(database_url: str) -> bool:
    _, _, attempts = await outbox_state(database_url)
    return attempts >= 2


async def _all_delivered(database_url: str) -> bool:
    total, delivered, _ = await outbox_state(database_url)
    return total == delivered == 10


class RejectingReceiver(Receiver):
    """Refuses the first event it sees as malformed (422), takes the rest."""

    def handle(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        event = json.loads(body)
        if not self.received or event["id"] == self.received[0]:
            self.received.append(event["id"])
            problem = b'{"status": 422, "detail": "data.email: not a valid address"}'
            return 422, {"content-type": "application/problem+json"}, problem
        return super().handle(req, body)


async def test_an_event_its_receiver_rejects_is_parked_not_retried_for_ever(
    database_url: str, issuer: TokenIssuer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    await migrate_sample(database_url)
    receiver = RejectingReceiver(free_port())
    receiver.server.start()
    env = sample_env(database_url, issuer, run_relay="true", notify_hub_url=receiver.server.url)
    service = start_service(
        "outbox-reject", "tests.kit_sample.app:create_app", env, tmp_path_factory.mktemp("logs")
    )
    try:
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            for _ in range(3):
                assert (await http.post("/widgets/publish")).status_code == 201
            await wait_for(lambda: _seen(receiver, 3))
            # A few relay rounds later (0.2 s apart) the rejected event was still sent once.
            await asyncio.sleep(1.5)
    finally:
        service.stop()
        receiver.server.stop()
    rejected = receiver.received[0]
    assert receiver.received.count(rejected) == 1
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT delivered_at, attempts, next_attempt_at, last_error FROM outbox "
            "WHERE id = $1::uuid",
            rejected,
        )
    finally:
        await conn.close()
    assert row["delivered_at"] is None and row["attempts"] == 1
    assert row["next_attempt_at"].year == 9999
    assert row["last_error"].startswith("rejected:") and "422" in row["last_error"]
    assert "outbox event rejected by its receiver and parked" in service.child.log_path.read_text()


async def _seen(receiver: Receiver, count: int) -> bool:
    return len(set(receiver.received)) >= count


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(1, 30):
        delay = backoff_delay(attempt, base=0.5, cap=60)
        assert 0 <= delay <= min(60, 0.5 * 2 ** (attempt - 1))
    samples = [backoff_delay(10, base=0.5, cap=60) for _ in range(200)]
    assert max(samples) > 30  # jitter spreads retries across the window
    assert len(set(samples)) > 150


async def test_publish_with_records_the_event_only_with_its_change(database_url: str) -> None:
    """The CTE form writes publish's row, and nothing when the change it rides on did not happen."""
    await migrate_sample(database_url)
    subject = uuid.uuid4()
    data = {"order_id": "o-1", "items": [{"name": 'Ünïcode "quoted"', "n": 2}], "total": 3}
    conn = await asyncpg.connect(database_url)
    try:
        ids = []
        for happened in (True, False):
            event, params = publish_with(
                "change", "thing.happened", data, subject_user_id=str(subject), first=2
            )
            await conn.execute(
                f"WITH change AS (SELECT 1 WHERE $1::bool) {event}", happened, *params
            )
            ids.append(params[0])
        rows = await conn.fetch(
            "SELECT id, type, subject_user_id, data::text AS data, attempts, "
            "occurred_at = next_attempt_at AS due, delivered_at FROM outbox WHERE id = ANY($1)",
            ids,
        )
    finally:
        await conn.close()
    assert len(rows) == 1 and rows[0]["id"] == ids[0]
    row = rows[0]
    assert (row["type"], row["subject_user_id"], row["attempts"]) == ("thing.happened", subject, 0)
    assert json.loads(row["data"]) == data and row["due"] and row["delivered_at"] is None
