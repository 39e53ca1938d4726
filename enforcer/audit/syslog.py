"""Audit records to syslog as RFC 5424 messages (`enforcer run --audit-syslog TARGET`).

TARGET: a unix datagram socket path (/dev/log), udp://HOST:PORT (one datagram per
message) or tcp://HOST:PORT (RFC 6587 octet counting: "LEN SP MESSAGE"). A message:

    <PRI>1 TIMESTAMP HOSTNAME enforcer PID MSGID - BOM{record as JSON}

facility 13 (log audit); severity 4 (warning) for a denial, 5 (notice) for an audit match,
3 (error) for an audit_loss record; MSGID is the record's hook. The record is the one the
log gets (json or ocsf).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from enforcer.errors import EnforcerError

FACILITY = 13  # log audit
_SEVERITY = {"deny": 4, "Denied": 4, "audit": 5, "Allowed": 5}
BOM = "\ufeff"


@dataclass(frozen=True)
class Target:
    kind: str  # "unix" | "udp" | "tcp"
    path: str = ""  # unix
    host: str = ""  # udp, tcp
    port: int = 0

    def __str__(self) -> str:
        return self.path if self.kind == "unix" else f"{self.kind}://{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """A one-line EnforcerError (exit 1) for anything that is not a usable target."""
    hint = "use a unix socket path such as /dev/log, udp://HOST:PORT or tcp://HOST:PORT"
    if "://" not in text:
        if not text.startswith("/"):
            raise EnforcerError(f"bad --audit-syslog {text!r}: not an absolute socket path or URL", hint=hint)
        return Target("unix", path=text)
    url = urlsplit(text)
    if url.scheme not in ("udp", "tcp"):
        raise EnforcerError(f"bad --audit-syslog {text!r}: scheme {url.scheme!r} is not udp or tcp", hint=hint)
    try:
        port = url.port
    except ValueError:
        port = None
    if not url.hostname or not port or url.path not in ("", "/"):
        raise EnforcerError(f"bad --audit-syslog {text!r}: needs HOST:PORT", hint=hint)
    return Target(url.scheme, host=url.hostname, port=port)


def format_message(line: str, hostname: str, pid: int) -> str:
    """RFC 5424 message for one JSON record line (newline-free)."""
    try:
        rec = json.loads(line)
    except ValueError:
        rec = {}
    hook = str(rec.get("hook") or (rec.get("unmapped") or {}).get("hook") or "audit")
    action = str(rec.get("action", ""))
    severity = 3 if hook == "audit_loss" else _SEVERITY.get(action, 5)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    msgid = "".join(ch for ch in hook if 33 <= ord(ch) <= 126)[:32] or "-"
    return f"<{FACILITY * 8 + severity}>1 {now} {hostname or '-'} enforcer {pid} {msgid} - {BOM}{line}"


class SyslogSink:
    """A TextSink sending each record line as one syslog message; reconnects a TCP stream
    once per message if it broke. Errors (receiver gone) raise OSError to the writer."""

    def __init__(self, target: Target, hostname: str | None = None) -> None:
        self.target = target
        self.name = f"syslog:{target}"
        self._hostname = hostname or socket.gethostname()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        try:
            self._sock = self._connect()
        except OSError as exc:
            raise EnforcerError(
                f"cannot reach the syslog target {target}: {exc.strerror or exc}",
                hint="start the syslog receiver first, or fix --audit-syslog",
            ) from None

    def _connect(self) -> socket.socket:
        t = self.target
        address: str | tuple[str, int]
        if t.kind == "unix":
            if not Path(t.path).exists():
                raise FileNotFoundError(2, "no such socket")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            address = t.path
        else:
            family = socket.getaddrinfo(t.host, t.port)[0][0]
            s = socket.socket(family, socket.SOCK_DGRAM if t.kind == "udp" else socket.SOCK_STREAM)
            s.settimeout(5.0)
            address = (t.host, t.port)
        try:
            s.connect(address)
        except OSError:
            s.close()
            raise
        return s

    def write(self, line: str) -> int:
        msg = format_message(line.rstrip("\n"), self._hostname, os.getpid()).encode("utf-8", "surrogateescape")
        data = f"{len(msg)} ".encode() + msg if self.target.kind == "tcp" else msg
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    self._sock.sendall(data)
                    return len(line)
                except OSError:
                    if self._sock is not None:
                        self._sock.close()
                        self._sock = None
                    if attempt or self.target.kind == "udp":
                        raise
        return 0

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
