"""Local append-only journal files, made durable in groups (one fsync for many appends).

An event is acknowledged only once its line is on this node's disk: :meth:`LocalJournal.write`
appends the bytes to the log's file (``os.write`` on an ``O_APPEND`` descriptor, in the
caller's step, so lines keep their order) and :meth:`LocalJournal.sync` waits for the next
group commit. One committer task at a time runs ``fdatasync`` over every file written since
the previous commit, in a worker thread; appends that arrive while it runs share the
following commit. A file holds only lines the object store may not have yet: once every
line is shipped, :meth:`LocalJournal.reset` truncates it.

A failed write is cut back off the file (no torn line is left for the next one to glue
onto); a failed fsync leaves the page cache in an unknown state (Linux may already have
dropped the dirty pages), so the file is marked broken and every later append to it raises
:class:`JournalBroken` until the process restarts and recovers from what is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Optional

__all__ = ["JournalBroken", "LocalJournal"]

logger = logging.getLogger(__name__)

SUFFIX = ".journal"


class JournalBroken(OSError):
    """The local journal file cannot be trusted to hold more lines (a write or fsync failed)."""


def _sync_all(fds: list[int]) -> list[tuple[int, OSError]]:
    failed = []
    for fd in fds:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            failed.append((fd, exc))
    return failed


class LocalJournal:
    """A directory of append-only files, one per log name, with group-committed fsyncs."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._fds: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._sizes: dict[str, int] = {}
        self._broken: dict[str, str] = {}
        self._dirty: set[int] = set()
        self._next: Optional[asyncio.Future[None]] = None
        self._committer: Optional[asyncio.Task[None]] = None
        self._started = False
        self.commits = 0  #: group commits run so far (for tests and the benchmark)

    def start(self) -> None:
        """Create the directory (idempotent)."""
        if not self._started:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._started = True

    async def close(self) -> None:
        """Wait for the commit in progress, then close every file; safe to call twice."""
        while self._committer is not None:
            await asyncio.shield(self._committer)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._names.clear()
        self._sizes.clear()

    def path_of(self, name: str) -> Path:
        return self.directory / (urllib.parse.quote(name, safe="") + SUFFIX)

    def names(self) -> list[str]:
        """The log names that have a journal file here (possibly empty), sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(urllib.parse.unquote(p.name[: -len(SUFFIX)]) for p in self.directory.glob("*" + SUFFIX))

    def read(self, name: str) -> bytes:
        """The file's bytes (b"" when there is none)."""
        try:
            return self.path_of(name).read_bytes()
        except FileNotFoundError:
            return b""

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            self.start()
            fd = os.open(self.path_of(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fds[name] = fd
            self._names[fd] = name
            self._sizes[name] = os.fstat(fd).st_size
        return fd

    def write(self, name: str, data: bytes) -> None:
        """Append ``data`` to the file now (not yet durable: await :meth:`sync`)."""
        if name in self._broken:
            raise JournalBroken(f"the local journal of {name} is unusable since {self._broken[name]}; restart the server")
        fd = self._fd(name)
        size = self._sizes[name]
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                self._broken[name] = f"a failed write ({exc})"
            raise JournalBroken(f"could not append to the local journal of {name}: {exc}") from exc
        self._sizes[name] = size + len(data)
        self._dirty.add(fd)

    async def sync(self, name: str) -> None:
        """Return once everything written to ``name`` so far is on disk (shares a group commit)."""
        fd = self._fds.get(name)
        if fd is None or (fd not in self._dirty and self._committer is None):
            return
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiter = self._next
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())
        await asyncio.shield(waiter)
        if name in self._broken:
            raise JournalBroken(f"the local journal of {name} could not be synced ({self._broken[name]})")

    async def append(self, name: str, data: bytes) -> None:
        """:meth:`write` then :meth:`sync`."""
        self.write(name, data)
        await self.sync(name)

    async def _commit_loop(self) -> None:
        try:
            while self._dirty or self._next is not None:
                fds = sorted(self._dirty)
                self._dirty = set()
                waiter, self._next = self._next, None
                failed = await asyncio.to_thread(_sync_all, fds) if fds else []
                self.commits += 1
                for fd, exc in failed:
                    name = self._names.get(fd, "?")
                    self._broken[name] = f"a failed fsync ({exc})"
                    logger.error("local journal %s: fsync failed: %s", name, exc)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        except BaseException as exc:
            if self._next is not None and not self._next.done():
                self._next.set_exception(JournalBroken(f"the group commit failed: {exc!r}"))
            raise
        finally:
            self._committer = None

    def reset(self, name: str) -> None:
        """Empty the file: the object store holds every line it had."""
        fd = self._fds.get(name)
        if fd is None:
            if self.path_of(name).exists():
                os.truncate(self.path_of(name), 0)
            return
        os.ftruncate(fd, 0)
        self._sizes[name] = 0

    def remove(self, name: str) -> None:
        """Delete the file (the log is complete in the object store)."""
        fd = self._fds.pop(name, None)
        if fd is not None:
            self._names.pop(fd, None)
            self._sizes.pop(name, None)
            self._dirty.discard(fd)
            if self._committer is None:
                os.close(fd)
            else:
                # the committer may be fsyncing it in a thread: close it after that commit
                committer = self._committer
                committer.add_done_callback(lambda _: os.close(fd))
        self.path_of(name).unlink(missing_ok=True)
