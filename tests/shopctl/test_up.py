"""`shopctl up` end to end: it starts, routes through the gateway, and stops cleanly."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import psutil
import pytest
from shopctl.pg import free_port
from shopctl.smtp import read_messages

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_up_serves_the_gateway_and_stops_without_orphans(tmp_path: Path) -> None:
    ports = {
        name: free_port()
        for name in (
            "GATEWAY",
            "SMTP",
            "POSTGRES",
            "USER_AUTH",
            "CATALOG_API",
            "ORDER_MGMT",
            "PAYMENT_API",
            "NOTIFY_HUB",
        )
    }
    env = {**os.environ, "SHOPFLOW_STATE_DIR": str(tmp_path / "state")}
    env.update({f"SHOPFLOW_PORT_{k}": str(v) for k, v in ports.items()})
    env.pop("SHOPFLOW_DATABASE_URL", None)
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopctl", "up"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    gateway = f"http://127.0.0.1:{ports['GATEWAY']}"
    try:
        deadline = time.monotonic() + 120
        while "ShopFlow is up" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children

        unrouted = httpx.get(f"{gateway}/no/such/path")
        assert unrouted.status_code == 404
        assert unrouted.headers["content-type"] == "application/problem+json"
        assert unrouted.headers["x-request-id"]
        for path in ("/internal/events", "/internal/payments", "/auth/../internal/events"):
            response = httpx.get(f"{gateway}{path}")
            assert response.status_code == 404 and response.headers["x-request-id"]

        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "a@shopflow.test",
            "b@shopflow.test",
            "hello",
        )
        message.set_content("body")
        with smtplib.SMTP("127.0.0.1", ports["SMTP"]) as smtp:
            smtp.send_message(message)
        assert [m["Subject"] for m in read_messages(tmp_path / "state" / "mail")] == ["hello"]
        assert "secrets.json" in os.listdir(tmp_path / "state")
        assert oct((tmp_path / "state" / "secrets.json").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
    assert "stopped." in (tmp_path / "up.log").read_text()
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not (tmp_path / "state" / "pg" / "postmaster.pid").exists()
