"""The local SMTP sink: a real aiosmtpd server that stores every message in a Maildir."""

from __future__ import annotations

import asyncio
import mailbox
import os
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    """aiosmtpd handler: each message stored as it came, under the envelope's
    ``Return-Path`` and ``Delivered-To`` (as a mail server's local delivery does).

    aiosmtpd's own ``Mailbox`` handler parses every message and writes it out
    again, which was most of the sink's CPU under `make bench`'s checkout load.
    """

    def __init__(self, maildir: Path) -> None:
        self.box = mailbox.Maildir(maildir)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        trace = (
            f"Return-Path: <{envelope.mail_from}>\nDelivered-To: {', '.join(envelope.rcpt_tos)}\n"
        )
        # Maildir files end their lines with LF, as mail tools expect.
        self.box.add(trace.encode() + bytes(envelope.original_content).replace(b"\r\n", b"\n"))
        return "250 Message accepted for delivery"


class SmtpSink:
    """Accepts mail on loopback and keeps it in ``maildir`` (readable by any mail tool).

    It runs on a thread of its own; ``nice`` lowers that thread's CPU priority.
    """

    def __init__(self, maildir: Path, port: int, host: str = "127.0.0.1", nice: int = 0) -> None:
        self.maildir = maildir
        self.nice = nice
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(MaildirHandler(maildir), hostname=host, port=port)

    def start(self) -> SmtpSink:
        self.controller.start()
        if self.nice:
            # Linux keeps a niceness per thread: set it from inside the server's thread.
            asyncio.run_coroutine_threadsafe(_renice(self.nice), self.controller.loop).result(5)
        return self

    def stop(self) -> None:
        self.controller.stop()


async def _renice(increment: int) -> None:
    thread = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + increment)


def read_messages(maildir: Path) -> list[mailbox.MaildirMessage]:
    """Every stored message, oldest first."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, create=False)
    messages = [box.get_message(key) for key in box.iterkeys()]
    return sorted(messages, key=lambda m: m.get_date())
