"""The local SMTP sink: a real aiosmtpd server that stores every message in a Maildir."""

from __future__ import annotations

import mailbox
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class SmtpSink:
    """Accepts mail on loopback and keeps it in ``maildir`` (readable by any mail tool)."""

    def __init__(self, maildir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.maildir = maildir
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(Mailbox(maildir), hostname=host, port=port)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def read_messages(maildir: Path) -> list[mailbox.MaildirMessage]:
    """Every stored message, oldest first."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, create=False)
    messages = [box.get_message(key) for key in box.iterkeys()]
    return sorted(messages, key=lambda m: m.get_date())
