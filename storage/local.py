"""A local directory as an object store: the embedded default for a single machine."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import os
import secrets
from pathlib import Path

from .keys import InvalidKey, validate_key, validate_prefix
from .objects import ObjectInfo, ObjectNotFound

__all__ = ["LocalObjectStore", "write_atomically"]

logger = logging.getLogger(__name__)

# Temporary files carry a '~', which no valid key contains, so a half-written file can never
# be mistaken for an object (and is skipped by list()).
_TMP_MARK = "~"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path, root: Path) -> None:
    """Create ``path`` and missing parents below ``root``, fsyncing each new entry's parent."""
    missing: list[Path] = []
    current = path
    while current != root and not current.is_dir():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        _fsync_dir(directory.parent)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers and crashes see the old or the new file.

    Writes a temporary file in the same directory, fsyncs it, renames it over ``path`` and
    fsyncs the directory so that the rename itself survives a power loss. Blocking.
    """
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _version(stat: os.stat_result) -> str:
    """A file's version tag: every put renames a new file (a new inode) into place, and the
    mtime and size tell a reused inode apart."""
    return f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"


class LocalObjectStore:
    """Objects as files under ``root`` (key ``a/b/c`` is the file ``root/a/b/c``).

    Writes are atomic and durable (see :func:`write_atomically`); blocking file I/O runs in a
    worker thread. A filesystem cannot hold both ``a`` and ``a/b``, so storing one while the
    other exists raises :class:`storage.keys.InvalidKey` (S3 would allow it; Takan's layout
    never needs it).
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._started = False

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    async def start(self) -> None:
        """Create the root directory if needed."""
        if self._started:
            return
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
        # An absolute root keeps working if the process changes directory later.
        self._root = await asyncio.to_thread(self._root.resolve)
        self._started = True
        logger.info("local object store ready at %s", self._root)

    async def close(self) -> None:
        """Nothing to release; present for the ObjectStore lifecycle."""
        self._started = False

    def _path(self, key: str) -> Path:
        if not self._started:
            raise RuntimeError("LocalObjectStore is not started: await store.start() first")
        return self._root.joinpath(*validate_key(key).split("/"))

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically; ``content_type`` is not kept locally."""
        path = self._path(key)
        info = await asyncio.to_thread(self._put_blocking, key, path, data)
        logger.debug("stored %s (%s bytes)", key, info.size)
        return info

    def _put_blocking(self, key: str, path: Path, data: bytes) -> ObjectInfo:
        # A concurrent delete() may prune an emptied parent directory between our mkdir and
        # our write; another attempt recreates it.
        attempts_left = 3
        while True:
            try:
                _make_dirs(path.parent, self._root)
                if path.is_dir():
                    raise InvalidKey(
                        f"object key {key!r} names a directory holding other objects; "
                        "the local store cannot hold both 'a' and 'a/...'"
                    )
                write_atomically(path, data)
                info = ObjectInfo.of(key, data)
                return ObjectInfo(info.key, info.size, info.sha256, _version(os.stat(path)))
            except (FileExistsError, NotADirectoryError):
                raise InvalidKey(
                    f"object key {key!r} runs through an existing object; "
                    "the local store cannot hold both 'a' and 'a/...'"
                ) from None
            except FileNotFoundError:
                attempts_left -= 1
                if not attempts_left:
                    raise

    async def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    async def head(self, key: str) -> ObjectInfo | None:
        """Return size and SHA-256 of the object (hashing the file), or None."""
        path = self._path(key)
        return await asyncio.to_thread(self._head_blocking, key, path)

    @staticmethod
    def _head_blocking(key: str, path: Path) -> ObjectInfo | None:
        digest = hashlib.sha256()
        size = 0
        try:
            with open(path, "rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return ObjectInfo(key=key, size=size, sha256=digest.hexdigest())

    async def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted keys starting with ``prefix``."""
        validate_prefix(prefix)
        if not self._started:
            raise RuntimeError("LocalObjectStore is not started: await store.start() first")
        return await asyncio.to_thread(self._list_blocking, prefix)

    def _list_blocking(self, prefix: str) -> builtins.list[str]:
        return sorted(key for key, _ in self._walk(prefix))

    async def versions(self, prefix: str) -> dict[str, str | None]:
        """The keys starting with ``prefix``, each tagged with its file's inode, mtime and size."""
        validate_prefix(prefix)
        if not self._started:
            raise RuntimeError("LocalObjectStore is not started: await store.start() first")
        return await asyncio.to_thread(self._versions_blocking, prefix)

    def _versions_blocking(self, prefix: str) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for key, path in self._walk(prefix):
            try:
                found[key] = _version(os.stat(path))
            except FileNotFoundError:
                continue  # deleted while listed
        return found

    def _walk(self, prefix: str) -> builtins.list[tuple[str, str]]:
        """(key, file path) of every object whose key starts with ``prefix``, unsorted."""
        # Walk only the deepest directory the prefix fully names.
        base_parts = prefix.split("/")[:-1]
        base = self._root.joinpath(*base_parts)
        found: list[tuple[str, str]] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self._root).as_posix()
            rel_prefix = "" if rel == "." else rel + "/"
            dirnames[:] = [d for d in dirnames if _TMP_MARK not in d]
            for name in filenames:
                if _TMP_MARK in name:
                    continue
                key = rel_prefix + name
                if key.startswith(prefix):
                    found.append((key, os.path.join(dirpath, name)))
        return found

    async def delete(self, key: str) -> None:
        """Remove the object and any parent directories it leaves empty."""
        path = self._path(key)
        await asyncio.to_thread(self._delete_blocking, path)
        logger.debug("deleted %s", key)

    def _delete_blocking(self, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        _fsync_dir(path.parent)
        # Prune emptied directories so that listings and later puts of 'a' stay possible.
        parent = path.parent
        while parent != self._root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
