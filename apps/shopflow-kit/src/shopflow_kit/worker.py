"""Background workers that run in every replica: rounds of work, polling between them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod


class PollingWorker(ABC):
    """Runs :meth:`run_once` forever: at once again after a full batch, else after
    ``poll_interval`` seconds or as soon as :meth:`wake` is called.

    Subclasses claim their rows with ``FOR UPDATE SKIP LOCKED`` so that every
    replica can run one (the outbox relay, notify-hub's delivery worker).
    """

    #: What a failed round is logged as.
    failure_message = "worker round failed"

    def __init__(self, *, batch_size: int, poll_interval: float, log: logging.Logger) -> None:
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.log = log
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Skip the wait before the next round (new work was just written, say)."""
        self._wake.set()

    @abstractmethod
    async def run_once(self) -> int:
        """One round; returns how many items it handled."""

    async def run(self) -> None:
        """Run rounds forever; cancel the task to stop. Failed rounds are logged and retried."""
        while True:
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception(self.failure_message)
                handled = 0
            if handled >= self.batch_size:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
