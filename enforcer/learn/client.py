"""The client side of `enforcer learn`: ask the daemon over its status socket, collect the
stream of observations (and write the recording as it comes)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from enforcer.errors import EnforcerError
from enforcer.learn.operations import BadRecord, Operation, parse_operation
from enforcer.learn.recording import ContainerFacts, RecordingWriter

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_LINE = 64 * 1024 * 1024


def parse_duration(text: str) -> float:
    """ "90s", "10m", "1h30m", "45" (seconds) -> seconds."""
    s = text.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        seconds = float(s)
    elif s and _DURATION.sub("", s) == "":
        seconds = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(s))
    else:
        raise EnforcerError(f"bad --duration {text!r}", hint="use 30s, 10m, 1h30m or seconds")
    if seconds <= 0:
        raise EnforcerError(f"bad --duration {text!r}", hint="it must be more than 0")
    return seconds


@dataclass
class Collected:
    """Everything one session sent."""

    container: ContainerFacts
    classes: tuple[str, ...]
    not_learned: tuple[str, ...]
    operations: Counter[Operation] = field(default_factory=Counter)
    per_class: Counter[str] = field(default_factory=Counter)
    denied: int = 0
    lost: int = 0
    unreadable: int = 0
    reason: str = ""
    seconds: float = 0.0


class _Lines:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            while b"\n" not in self._buf:
                try:
                    chunk = self._sock.recv(1 << 16)
                except TimeoutError:
                    raise EnforcerError(
                        "the daemon stopped answering during learning", hint="check its log: journalctl -u enforcer"
                    ) from None
                if not chunk:
                    return
                self._buf += chunk
                if len(self._buf) > MAX_LINE:
                    raise EnforcerError("a learn message from the daemon is too large")
            line, self._buf = self._buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                raise EnforcerError("unreadable learn message from the daemon") from None
            if not isinstance(msg, dict):
                raise EnforcerError("unreadable learn message from the daemon")
            yield msg


def connect(path: Path, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise EnforcerError(
            f"no enforcer daemon is listening on {path}",
            hint="start it (systemctl start enforcer, or enforcer run), or pass --socket PATH",
        ) from None
    except PermissionError:
        sock.close()
        raise EnforcerError(f"permission denied on {path}", hint="run enforcer learn as root") from None
    return sock


OnStart = Callable[["Collected"], "IO[str] | None"]


def learn(
    path: Path,
    container: str,
    duration: float | None,
    on_start: OnStart = lambda _got: None,
    progress: Callable[[Collected, float | None], None] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> Collected:
    """Run one learn session to its end. `on_start` runs once the daemon has started the
    session (it may refuse by raising, and returns where to write the recording: nothing is
    created before the daemon said yes). `stop_requested` is polled between messages (the
    CLI sets it on Ctrl-C): then the client closes its side and the daemon ends the session,
    sending what it still had."""
    sock = connect(path)
    try:
        sock.sendall(json.dumps({"request": "learn", "container": container, "duration": duration}).encode() + b"\n")
        # batches come every half second; silence this long means the daemon is stuck
        sock.settimeout(30.0)
        return _collect(sock, container, duration, on_start, progress, stop_requested, clock)
    finally:
        sock.close()


def _collect(
    sock: socket.socket,
    container: str,
    duration: float | None,
    on_start: OnStart,
    progress: Callable[[Collected, float | None], None] | None,
    stop_requested: Callable[[], bool],
    clock: Callable[[], float],
) -> Collected:
    lines = iter(_Lines(sock))
    first = next(lines, None)
    if first is None:
        raise EnforcerError(
            "the daemon closed the connection without answering",
            hint="is it a version without enforcer learn? check its log",
        )
    if "error" in first:
        raise EnforcerError(f"the daemon refused: {first['error']}")
    info = first.get("learning")
    if not isinstance(info, dict):
        raise EnforcerError("unexpected answer from the daemon (is it the same version?)")
    c = info.get("container") or {}
    facts = ContainerFacts(c.get("name") or container, c.get("image") or "", c.get("id"), c.get("labels") or {})
    got = Collected(facts, tuple(info.get("classes") or ()), tuple(info.get("not_learned") or ()))
    record = on_start(got)  # raising here closes the socket: the daemon ends the session
    writer = RecordingWriter(record, facts) if record is not None else None
    started = clock()
    closed = False
    for msg in lines:
        if "end" in msg:
            end = msg["end"] if isinstance(msg["end"], dict) else {}
            got.reason = str(end.get("reason", ""))
            got.unreadable = int(end.get("unreadable") or 0)
            break
        if "error" in msg:
            raise EnforcerError(f"learning failed in the daemon: {msg['error']}")
        _take(got, msg, writer)
        if progress is not None:
            left = None if duration is None else max(0.0, duration - (clock() - started))
            progress(got, left)
        if not closed and stop_requested():
            sock.shutdown(socket.SHUT_WR)  # the daemon ends the session and sends the rest
            closed = True
    else:
        raise EnforcerError(
            "the daemon closed the connection before the session ended",
            hint="the observations so far are incomplete; check its log",
        )
    got.seconds = clock() - started
    if writer is not None:
        writer.end(got.lost)
    return got


def _take(got: Collected, msg: dict[str, Any], writer: RecordingWriter | None) -> None:
    for hook, target, count, comm in msg.get("ops") or ():
        op = _op(hook, target)
        got.operations[op] += count
        for c in op.classes:
            got.per_class[c] += count
        if writer is not None:
            writer.observe(op, count, comm)
    for hook, target, count, policy, rule in msg.get("denied") or ():
        got.denied += count
        if writer is not None:
            writer.denied(_op(hook, target), count, policy, rule)
    got.lost += int(msg.get("lost") or 0)


def _op(hook: Any, target: Any) -> Operation:
    try:
        op = parse_operation(hook, target)
    except BadRecord as exc:
        raise EnforcerError(f"unexpected observation from the daemon: {exc}") from None
    if op is None:
        raise EnforcerError(f"unexpected observation from the daemon: hook {hook!r}")
    return op
