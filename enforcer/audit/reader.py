"""Read audit logs back for people: rotated files in order, filters, and a follow mode
that survives rotation (rename + new file, logrotate's copytruncate, compression).

Files of one log, oldest first: FILE.N[.gz] ... FILE.1[.gz], FILE. A line that is not a
JSON object is skipped and counted (a log cut mid-line by a crash must not hide the rest).
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from enforcer.errors import EnforcerError

DEFAULT_LOG = Path("/var/log/enforcer/audit.jsonl")
Record = dict[str, Any]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ROTATED = re.compile(r"^\.(\d+)(\.gz)?$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """ "90s", "10m", "1h30m", "2d" ago, or an ISO 8601 time ("2026-11-24T18:00:00Z")."""
    now = now or datetime.now(UTC)
    s = text.strip().replace(" ", "")
    if s and _DURATION.sub("", s) == "":
        return now - timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(s)))
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise EnforcerError(
            f"bad --since {text!r}", hint="use a duration such as 30s, 10m, 1h30m, 2d, or an ISO time"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def record_time(record: Record) -> datetime | None:
    ts = record.get("timestamp")
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Filter:
    container: str | None = None  # glob on the name, or a prefix of the id
    policy: str | None = None  # glob on the policy name
    since: datetime | None = None

    def __call__(self, r: Record) -> bool:
        if self.container is not None:
            c = r.get("container") or {}
            name, cid = c.get("name") or "", c.get("id") or ""
            if not (
                fnmatch.fnmatchcase(name, self.container)
                or (len(self.container) >= 4 and cid.startswith(self.container))
            ):
                return False
        if self.policy is not None and not fnmatch.fnmatchcase(str(r.get("policy", "")), self.policy):
            return False
        if self.since is not None:
            t = record_time(r)
            if t is None or t < self.since:
                return False
        return True


def log_files(path: Path) -> list[Path]:
    """Rotated siblings (oldest first), then `path` itself if it exists."""
    rotated: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            if p.name.startswith(path.name) and (m := _ROTATED.match(p.name[len(path.name) :])):
                rotated.append((int(m.group(1)), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape")
    return path.open(encoding="utf-8", errors="surrogateescape")


@dataclass
class Reader:
    """Parses lines into records, counting lines that are not records."""

    skipped: int = 0
    _partial: str = field(default="", repr=False)

    def parse(self, line: str) -> Record | None:
        line = line.strip()
        if not line:
            return None
        try:
            obj = json.loads(line)
        except ValueError:
            self.skipped += 1
            return None
        if not isinstance(obj, dict):
            self.skipped += 1
            return None
        return obj

    def lines(self, lines: Iterable[str]) -> Iterator[Record]:
        for line in lines:
            if (r := self.parse(line)) is not None:
                yield r

    def history(self, path: Path) -> Iterator[Record]:
        """Every record of the log, rotated files included, oldest first."""
        if str(path) == "-":
            yield from self.lines(sys.stdin)
            return
        files = log_files(path)
        if not files:
            raise EnforcerError(
                f"no audit log at {path}", hint="pass --log FILE (the file `enforcer run --audit-log` writes)"
            )
        for p in files:
            try:
                with _open(p) as fh:
                    yield from self.lines(fh)
            except FileNotFoundError:
                continue  # rotated away while we read: its records are in the next name
            except PermissionError:
                raise EnforcerError(f"cannot read {p}: permission denied", hint="run as root") from None

    def follow(self, path: Path, stop: Callable[[], bool], poll: float = 0.25) -> Iterator[Record]:
        """Everything in the log, then new records as they are written, until stop().

        Rotation: when `path` names a new file (inode changed), the old one is read to its
        end and the new one from its start. Truncation (copytruncate): read from the start.
        """
        for p in log_files(path)[:-1] if path.exists() else log_files(path):
            with _open(p) as old:
                yield from self.lines(old)
        fh: IO[str] | None = None
        ino = None
        try:
            while not stop():
                if fh is None:
                    try:
                        fh = path.open(encoding="utf-8", errors="surrogateescape")
                        ino = os.fstat(fh.fileno()).st_ino
                    except FileNotFoundError:
                        time.sleep(poll)
                        continue
                got = False
                while chunk := fh.readline():
                    got = True
                    if not chunk.endswith("\n"):  # the writer is mid-line: wait for the rest
                        self._partial += chunk
                        continue
                    line, self._partial = self._partial + chunk, ""
                    if (r := self.parse(line)) is not None:
                        yield r
                if got:
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    st = None  # between rename and create: keep the old file until a new one
                if st is not None and st.st_ino != ino:
                    fh.close()
                    fh = None  # the old file was read to its end above
                    continue
                if st is not None and st.st_size < fh.tell():
                    fh.seek(0)  # truncated in place
                    self._partial = ""
                    continue
                time.sleep(poll)
        finally:
            if fh is not None:
                fh.close()
