"""`shopctl up` end to end: the gateway, the SMTP sink, and a clean stop (run last)."""

from __future__ import annotations

import shutil
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import psutil
import pytest
from shopctl.smtp import read_messages

from tests.utils.e2e import Platform, start_platform


@pytest.fixture(scope="module")
def own() -> Iterator[Platform]:
    """A platform of this module's own, which the last test stops."""
    running = start_platform()
    yield running
    running.stop()
    shutil.rmtree(running.state.parent, ignore_errors=True)


def test_up_prints_the_table(platform: Platform) -> None:
    output = platform.output()
    assert f"http://127.0.0.1:{platform.ports['GATEWAY']}" in output
    assert "user-auth" in output and "Admin: admin@shopflow.example" in output


def test_unrouted_and_internal_paths_are_404(platform: Platform) -> None:
    unrouted = httpx.get(f"{platform.gateway}/no/such/path")
    assert unrouted.status_code == 404
    assert unrouted.headers["content-type"] == "application/problem+json"
    assert unrouted.headers["x-request-id"]
    for path in ("/internal/events", "/internal/payments", "/auth/../internal/events"):
        response = httpx.get(f"{platform.gateway}{path}")
        assert response.status_code == 404 and response.headers["x-request-id"]


def test_smtp_sink_keeps_mail(platform: Platform) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "a@shopflow.test",
        "b@shopflow.test",
        "hello",
    )
    message.set_content("body")
    with smtplib.SMTP("127.0.0.1", platform.ports["SMTP"]) as smtp:
        smtp.send_message(message)
    assert "hello" in [m["Subject"] for m in read_messages(platform.state / "mail")]


def test_email_delivery_runs_at_background_priority(platform: Platform) -> None:
    """notify-hub and the SMTP sink's thread at nice +10; the request path at ours."""
    base = psutil.Process().nice()
    services = {
        " ".join(p.cmdline()): p.nice()
        for p in platform.children
        if any("create_app" in part for part in p.cmdline())
    }
    assert len(services) == 5, services
    for cmdline, nice in services.items():
        assert nice == (base + 10 if "notify_hub.app" in cmdline else base), cmdline
    gateway = [p for p in platform.children if "gateway" in p.cmdline()]
    assert [p.nice() for p in gateway] == [base]
    supervisor = platform.process.pid

    def nice_of(thread: int) -> int:
        stat = Path(f"/proc/{supervisor}/task/{thread}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[16])

    assert nice_of(supervisor) == base  # the supervisor's main thread
    threads = [nice_of(t.id) for t in psutil.Process(supervisor).threads()]
    assert base + 10 in threads  # the SMTP sink's
    assert set(threads) == {base, base + 10}


def test_local_secrets_are_private(platform: Platform) -> None:
    assert oct((platform.state / "secrets.json").stat().st_mode & 0o777) == "0o600"


def test_stops_cleanly_without_orphans(own: Platform) -> None:
    assert own.children
    assert httpx.get(f"{own.gateway}/auth/health").status_code == 200
    assert own.stop() == 0, own.output()
    assert "stopped." in own.output()
    time.sleep(0.5)
    assert not [c for c in own.children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not (own.state / "pg" / "postmaster.pid").exists()
