"""`shopctl up`'s SMTP sink: a real aiosmtpd server on loopback, writing a Maildir."""

from __future__ import annotations

import os
import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from shopctl.ports import free_port
from shopctl.smtp import SmtpSink, read_messages


def test_the_sink_keeps_each_message_as_sent_with_its_envelope(tmp_path: Path) -> None:
    port = free_port()
    sink = SmtpSink(tmp_path / "mail", port).start()
    try:
        message = EmailMessage()
        message["From"] = "ShopFlow <shop@shopflow.test>"
        message["To"] = "Zoë <zoe@shopflow.test>"
        message["Subject"] = "Your order, ünïcode"
        message.set_content("Line one.\n.A line that starts with a dot.\n")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message, to_addrs=["bcc@shopflow.test", "zoe@shopflow.test"])
    finally:
        sink.stop()
    [kept] = read_messages(tmp_path / "mail")
    assert kept["Delivered-To"] == "bcc@shopflow.test, zoe@shopflow.test"
    assert kept["Return-Path"] == "<shop@shopflow.test>"
    assert kept.get_payload(decode=True) == b"Line one.\n.A line that starts with a dot.\n"
    stored = next((tmp_path / "mail" / "new").iterdir()).read_bytes()
    assert b"\r\n" not in stored
    assert message_from_bytes(stored, policy=policy.default)["Subject"] == message["Subject"]


def _thread_nice(pid: int, tid: int) -> int:
    # /proc/<pid>/task/<tid>/stat: field 19 is the niceness (after the "(comm)" field).
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def test_the_sinks_thread_runs_at_lower_priority_and_nothing_else_does(tmp_path: Path) -> None:
    pid = os.getpid()
    before = {int(tid): _thread_nice(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}
    base = os.getpriority(os.PRIO_PROCESS, 0)
    port = free_port()
    sink = SmtpSink(tmp_path / "mail", port, nice=7).start()
    try:
        after = {int(tid): _thread_nice(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}
        new = {tid: nice for tid, nice in after.items() if tid not in before}
        assert list(new.values()) == [base + 7]  # the server's one thread
        assert all(after[tid] == nice for tid, nice in before.items() if tid in after)
        with smtplib.SMTP("127.0.0.1", port) as smtp:  # and it still serves
            smtp.sendmail("a@shopflow.test", ["b@shopflow.test"], b"Subject: hi\r\n\r\nbody\r\n")
    finally:
        sink.stop()
    assert [m["Subject"] for m in read_messages(tmp_path / "mail")] == ["hi"]
