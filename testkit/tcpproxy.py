"""A TCP proxy whose far side can be cut: a storage outage without losing the server's state.

moto keeps everything in memory, so stopping it would lose the objects stored before the
outage; cutting the proxy makes S3 unreachable (connection refused, resets) exactly as a
stopped server does, and bringing it back is a restart that kept its disk.

:meth:`TcpProxy.blackhole` is the other kind of outage, a network partition: connections,
open and new, stay up but nothing gets through (requests hang until the client's timeout).
:meth:`TcpProxy.restore` ends it; the connections that lost bytes are reset.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.blackholed = False

    def blackhole(self) -> None:
        """Let nothing through, without closing anything (a partition)."""
        self.blackholed = True

    def restore(self) -> None:
        """End the partition: reset the connections that lost bytes in it; new ones pass."""
        self.blackholed = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blackholed:  # accepted (the SYN got through), then silence
            self._writers.add(writer)
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while await reader.read(65536):
                    pass
            self._writers.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for a, b in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(a, b))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.blackholed:
                    continue  # lost in the partition
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
        self._writers.discard(writer)
