"""The status socket: a unix stream socket only root can reach, served from a thread.

Protocol (one request per connection): the client sends one JSON line
`{"request": "status"}`; the server answers with the StatusDocument as one JSON line and
closes. A streaming request (`{"request": "learn", ...}`, see enforcer.learn.session) is
answered with JSON lines until it ends; the client ends it early by closing its side.
Access control is layered: the socket's directory is 0700 and the socket 0600 (owner
root), and the peer's uid is checked with SO_PEERCRED (root or the daemon's own uid).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from enforcer.errors import EnforcerError
from enforcer.status.model import StatusDocument

log = structlog.get_logger(__name__)

DEFAULT_SOCKET = Path("/run/enforcer/enforcer.sock")
MAX_REQUEST = 4096

Snapshot = Callable[[], StatusDocument]


class SocketChannel:
    """A streaming request's connection: JSON lines out, and whether the client is done."""

    def __init__(self, sock: socket.socket, out: Any) -> None:
        self._sock = sock
        self._out = out

    def send(self, message: Mapping[str, Any]) -> None:
        self._out.write(json.dumps(message).encode() + b"\n")
        self._out.flush()

    def client_done(self) -> bool:
        """The client closed (or half-closed) its side, or sent anything more."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
            return bool(readable)
        except (OSError, ValueError):
            return True


# request name -> handler of a streaming request (the request object, its channel)
Streams = Mapping[str, Callable[[dict[str, Any], SocketChannel], None]]


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def prepare_socket_path(path: Path, option: str = "--status-socket") -> None:
    """Create the directory 0700 if missing; remove a stale socket, refuse a live one and
    anything that is not a socket (never unlink what someone else put there)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
        os.chmod(path.parent, 0o700)  # mkdir's mode is filtered by the umask
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise EnforcerError(f"{path} exists and is not a socket", hint=f"remove it or pass {option} PATH")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left over from a daemon that died
        return
    finally:
        probe.close()
    raise EnforcerError(
        f"another enforcer is serving on {path}", hint=f"stop it first (systemctl stop enforcer), or pass {option} PATH"
    )


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5.0)
        # Read the request before any reply, even a refusal: closing a unix socket with
        # unread data resets the connection, and the client would lose the reason.
        try:
            line = self.rfile.readline(MAX_REQUEST)
        except OSError:
            return
        uid = peer_uid(sock)
        if uid not in (0, os.geteuid()):
            log.warning("status request refused", peer_uid=uid)
            self._reply({"error": "permission denied: only root may read the enforcer status"})
            return
        try:
            request = json.loads(line or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            self._reply({"error": 'bad request: send one JSON line {"request": "status"}'})
            return
        stream = self.server.streams.get(str(request.get("request")))
        if stream is not None:
            try:
                stream(request, SocketChannel(sock, self.wfile))
            except Exception as exc:  # a bug in one stream must not take the daemon down
                log.exception("streaming request failed", request=request.get("request"))
                with contextlib.suppress(OSError):
                    self._reply({"error": f"{request.get('request')} failed: {exc}"})
            return
        if request.get("request", "status") != "status":
            self._reply({"error": f"unknown request {request.get('request')!r}"})
            return
        try:
            doc = self.server.snapshot()
        except Exception as exc:  # a status bug must not take the daemon down
            log.exception("status snapshot failed")
            self._reply({"error": f"status snapshot failed: {exc}"})
            return
        self.wfile.write(doc.model_dump_json().encode() + b"\n")

    def _reply(self, obj: dict[str, str]) -> None:
        self.wfile.write(json.dumps(obj).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, snapshot: Snapshot, streams: Streams) -> None:
        self.snapshot = snapshot
        self.streams = streams
        old = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)


class StatusServer:
    """`start()` binds and serves from a thread; `stop()` stops and removes the socket."""

    def __init__(self, path: Path, snapshot: Snapshot, streams: Streams | None = None) -> None:
        self.path = path
        self._snapshot = snapshot
        self._streams: Streams = streams or {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        prepare_socket_path(self.path)
        try:
            self._server = _Server(self.path, self._snapshot, self._streams)
        except OSError as exc:
            raise EnforcerError(
                f"cannot listen on {self.path}: {exc.strerror}", hint="run as root, or pass --status-socket PATH"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, name="status", daemon=True
        )
        self._thread.start()
        log.info("status socket listening", path=str(self.path))

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
