"""A request over a unix socket from another user, for the peer-credential specs of the
status socket and the runtime registration socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def request_as(uid: int, path: Path, request: bytes) -> str:
    """Send `request` from a forked child running as `uid` (no interpreter start: /root's
    Python is not readable by other users); the reply line, or "ERR <errno>"."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only socket calls, then _exit
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(str(path))
                s.sendall(request)
                out = s.makefile("rb").readline()
            except OSError as e:
                out = f"ERR {e.errno}".encode()
            os.write(w, out)
        except BaseException as e:  # noqa: BLE001 - report, don't hide: the parent asserts on the text
            os.write(w, f"CHILD {e!r}".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data.decode()
