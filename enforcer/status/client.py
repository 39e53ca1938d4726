"""Fetch the StatusDocument from a running daemon over its status socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from pydantic import ValidationError

from enforcer.errors import EnforcerError
from enforcer.status.model import StatusDocument
from enforcer.status.server import DEFAULT_SOCKET

MAX_REPLY = 64 * 1024 * 1024


def fetch_status(path: Path = DEFAULT_SOCKET, timeout: float = 10.0) -> StatusDocument:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise EnforcerError(
                f"no enforcer daemon is listening on {path}",
                hint="start it (systemctl start enforcer, or enforcer run), or pass --socket PATH",
            ) from None
        except PermissionError:
            raise EnforcerError(f"permission denied on {path}", hint="run enforcer status as root") from None
        sock.sendall(b'{"request": "status"}\n')
        data = bytearray()
        while chunk := sock.recv(1 << 16):
            data += chunk
            if len(data) > MAX_REPLY:
                raise EnforcerError(f"status reply from {path} is larger than {MAX_REPLY} bytes")
    except TimeoutError:
        raise EnforcerError(
            f"the daemon on {path} did not answer within {timeout:.0f} s", hint="check its log: journalctl -u enforcer"
        ) from None
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise EnforcerError(f"unreadable status reply from {path}") from None
    if isinstance(reply, dict) and "error" in reply and "pid" not in reply:
        raise EnforcerError(f"the daemon refused: {reply['error']}")
    try:
        return StatusDocument.model_validate(reply)
    except ValidationError as exc:
        raise EnforcerError(
            f"unexpected status document from {path}: {exc.error_count()} problem(s)",
            hint="are `enforcer` and the running daemon the same version?",
        ) from None
