"""The daemon's end of the runtime shim's question: "put container ID (init PID) under its
policy, and tell me when done". A root-only unix socket served from a thread; each request
is handled by `register(id, pid, bundle)`, whose exception text becomes the error the shim
shows (and, fail-closed, the reason the container does not start)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

Register = Callable[[str, int, str], None]


class RegistrationServer:
    def __init__(self, path: Path, register: Register) -> None:
        self._path = path
        self._register = register
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self._path.parent, 0o700)
        if self._path.exists() or self._path.is_symlink():
            self._path.unlink()  # a socket left by a killed daemon
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self._path))
        finally:
            os.umask(old)
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="runtime-registrar", daemon=True)
        self._thread.start()
        log.info("runtime registration socket", path=str(self._path))

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._sock:
            self._sock.close()
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass

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
            # One thread per start: a slow lookup must not hold up other containers' starts.
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                req = json.loads(buf)
                self._register(str(req["id"]), int(req["pid"]), str(req.get("bundle", "")))
                reply: dict[str, object] = {"ok": True}
            except Exception as err:  # noqa: BLE001 - every failure is the shim's error message
                log.error("runtime registration failed", error=str(err))
                reply = {"ok": False, "error": str(err) or type(err).__name__}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError as err:
                log.warning("runtime shim went away", error=str(err))
