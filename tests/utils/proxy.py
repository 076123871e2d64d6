"""A TCP relay on loopback in front of a real service, which a test can hold.

It forwards bytes unchanged both ways. ``hold()`` stops forwarding (a hung
dependency: the caller's request sits unanswered, the service has not seen it
yet); ``let_go()`` forwards everything held, as a slow network finally would.
"""

from __future__ import annotations

import asyncio
import contextlib

from shopctl.ports import free_port


class HoldingProxy:
    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Bytes that arrived from callers while held (so a test can wait for a request).
        self.held_bytes = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        self._open.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold(self) -> None:
        self.held_bytes = 0
        self._open.clear()

    def let_go(self) -> None:
        self._open.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()  # the service is down: the caller sees the connection drop
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, count=True), self._pump(up_reader, writer)
            )
        except asyncio.CancelledError:
            # Stopped: end quietly (asyncio's stream callback chokes on a cancelled task).
            for stream in (writer, up_writer):
                stream.close()
        finally:
            self._tasks.discard(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, count: bool = False
    ) -> None:
        try:
            while data := await source.read(65536):
                if count and not self._open.is_set():
                    self.held_bytes += len(data)
                await self._open.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                sink.close()
