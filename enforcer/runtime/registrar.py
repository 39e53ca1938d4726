"""The daemon's end of the runtime shim's question: "put container ID (init PID) under its
policy, and tell me when done". A unix socket served from a thread; each request is
handled by `register(id, pid, bundle)`, whose exception text becomes the error the shim
shows (and, fail-closed, the reason the container does not start).

Held to the status socket's standard (enforcer.status.server): directory 0700, socket
0600, the peer's uid checked with SO_PEERCRED (root, the daemon's own uid, or a uid the
operator allows), only a stale socket of ours is ever replaced, a request is one line of
at most MAX_REQUEST bytes read within READ_TIMEOUT seconds, and at most MAX_CONCURRENT
requests are handled at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from enforcer.status.server import peer_uid, prepare_socket_path

log = structlog.get_logger(__name__)

Register = Callable[[str, int, str], None]
MAX_REQUEST = 4096  # {"id": 64 hex, "pid": N, "bundle": PATH} fits many times over
READ_TIMEOUT = 5.0  # seconds for the whole request, not per recv (no slow-drip holding a thread)
MAX_CONCURRENT = 64  # container starts registering at once; more are told to retry


class RequestError(ValueError):
    pass


class RegistrationServer:
    def __init__(self, path: Path, register: Register, allow_uids: Iterable[int] = ()) -> None:
        self._path = path
        self._register = register
        self._allowed = {0, os.geteuid(), *allow_uids}
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    def start(self) -> None:
        prepare_socket_path(self._path, "--runtime-socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # born 0600: no window where others can connect
        try:
            sock.bind(str(self._path))
        finally:
            os.umask(old)
        os.chmod(self._path, 0o600)
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="runtime-registrar", daemon=True)
        self._thread.start()
        log.info("runtime registration socket", path=str(self._path), allowed_uids=sorted(self._allowed))

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._sock:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()  # ours: we bound it
            self._sock = None

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if not self._slots.acquire(blocking=False):
                threading.Thread(
                    target=self._refuse,
                    args=(conn, f"the enforcer is busy with {MAX_CONCURRENT} container starts; retry"),
                    daemon=True,
                ).start()
                continue
            # One thread per start: a slow lookup must not hold up other containers' starts.
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _refuse(self, conn: socket.socket, why: str) -> None:
        with conn:
            with contextlib.suppress(OSError, RequestError):
                _read_request(conn)
            _reply(conn, {"ok": False, "error": why})

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                try:
                    # Read before any reply, even a refusal: closing a unix socket with unread
                    # data resets the connection and the shim would lose the reason.
                    raw = _read_request(conn)
                    uid = peer_uid(conn)
                    if uid not in self._allowed:
                        log.warning("runtime registration refused", peer_uid=uid)
                        raise PermissionError(
                            "permission denied: only root (or a uid allowed "
                            "with --runtime-socket-uid) may register containers"
                        )
                    req = json.loads(raw)
                    if not isinstance(req, dict):
                        raise RequestError("bad request: send one JSON object")
                    self._register(str(req["id"]), int(req["pid"]), str(req.get("bundle", "")))
                    reply: dict[str, object] = {"ok": True}
                except Exception as err:  # noqa: BLE001 - every failure is the shim's error message
                    log.error("runtime registration failed", error=str(err))
                    reply = {"ok": False, "error": str(err) or type(err).__name__}
                _reply(conn, reply)
        finally:
            self._slots.release()


def _read_request(conn: socket.socket) -> bytes:
    """One line, at most MAX_REQUEST bytes, within READ_TIMEOUT seconds in all."""
    deadline = time.monotonic() + READ_TIMEOUT
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RequestError(f"request not complete within {READ_TIMEOUT:g} s")
        conn.settimeout(left)
        try:
            chunk = conn.recv(MAX_REQUEST + 1 - len(buf))
        except TimeoutError:
            raise RequestError(f"request not complete within {READ_TIMEOUT:g} s") from None
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST:
            raise RequestError(f"request longer than {MAX_REQUEST} bytes")
    return buf


def _reply(conn: socket.socket, reply: dict[str, object]) -> None:
    try:
        conn.settimeout(READ_TIMEOUT)
        conn.sendall(json.dumps(reply).encode() + b"\n")
    except OSError as err:
        log.warning("runtime shim went away", error=str(err))
