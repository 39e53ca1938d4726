"""Where audit lines go: stdout, or a file with size-based rotation and reopen on SIGHUP.

Rotation keeps `backups` older files: audit.jsonl -> audit.jsonl.1 -> ... -> audit.jsonl.N
(the oldest beyond N is deleted: that is the retention the operator chose). For logrotate,
use `--audit-max-bytes 0` and `postrotate kill -HUP`: the file is reopened by path before
the next record is written. The signal handler only sets a flag, so it can never deadlock
with a writer thread in the middle of a line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger(__name__)

LOG_MODE = 0o640  # records name containers, paths and users: not for everyone


class RotatingFile:
    """A text sink (write/flush) appending to `path`; rotates before a write that would make
    the file exceed `max_bytes` (0 = never). Not thread-safe: AuditWriter serialises writes."""

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.rotations = 0
        self._reopen = threading.Event()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self._open()

    @property
    def name(self) -> str:
        return str(self.path)

    def _open(self) -> IO[bytes]:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)
        # Unbuffered: a record is on disk (or refused) when write() returns. A buffer would
        # keep the bytes of a record a full disk refused, write them later (a record counted
        # lost appearing after all) and fail again on close, at shutdown.
        fh = os.fdopen(fd, "ab", buffering=0)
        self._size = os.fstat(fd).st_size
        return fh

    def request_reopen(self) -> None:
        """Async-signal-safe: the next write reopens the file by its path."""
        self._reopen.set()

    def write(self, text: str) -> int:
        if self._reopen.is_set():
            self._reopen.clear()
            self._fh.close()
            self._fh = self._open()
            log.info("audit log reopened", path=self.name)
        data = text.encode("utf-8", errors="surrogateescape")
        if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
        view = memoryview(data)
        try:
            while view:
                n = self._fh.write(view)
                if not n:
                    raise OSError(errno.EIO, "audit log write made no progress")
                view = view[n:]
        except OSError:
            if len(view) != len(data):  # part of the line went out: no torn record in the log
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fh.fileno(), self._size)
            raise
        self._size += len(data)
        return len(text)

    def flush(self) -> None:
        self._fh.flush()

    def rotate(self) -> None:
        self._fh.close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self.rotations += 1
        self._fh = self._open()

    def close(self) -> None:
        self._fh.close()
