"""The runtime registration socket is held to the status socket's standard (issue 13 item
7): only root (or a uid the operator allows) may register a container, whatever the file
mode says; nothing but a stale socket of ours is ever removed from its path; a request is
bounded in size and in reading time."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.errors import EnforcerError
from enforcer.runtime import registrar
from enforcer.runtime.protocol import ShimConfig
from enforcer.runtime.registrar import MAX_REQUEST, RegistrationServer
from enforcer.runtime.shim import ask_enforcer
from tests.unix_peer import request_as

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="enforcer-registrar-"))  # /tmp/pytest-of-root is 0700
    yield d
    shutil.rmtree(d)


def _loosen(base: Path, path: Path) -> None:
    for p, mode in ((base, 0o755), (path.parent, 0o755), (path, 0o666)):
        os.chmod(p, mode)


def test_another_user_cannot_register_even_if_the_socket_mode_is_loosened(base: Path) -> None:
    seen: list[str] = []
    path = base / "run" / "runtime.sock"
    server = RegistrationServer(path, lambda cid, pid, bundle: seen.append(cid))
    server.start()
    try:
        assert request_as(NOBODY, path, b'{"id": "c1", "pid": 1}\n') == "ERR 13"  # 0700 dir, 0600 socket
        _loosen(base, path)
        reply = json.loads(request_as(NOBODY, path, b'{"id": "c1", "pid": 1}\n'))
    finally:
        server.close()
    assert reply["ok"] is False and "permission denied" in reply["error"]
    assert seen == []


def test_a_uid_the_operator_allows_may_register(base: Path) -> None:
    seen: list[str] = []
    path = base / "run" / "runtime.sock"
    server = RegistrationServer(path, lambda cid, pid, bundle: seen.append(cid), allow_uids=[NOBODY])
    server.start()
    try:
        _loosen(base, path)
        reply = json.loads(request_as(NOBODY, path, b'{"id": "c1", "pid": 1}\n'))
    finally:
        server.close()
    assert reply == {"ok": True} and seen == ["c1"]


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_what_is_not_a_socket_at_the_path_is_never_removed(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "runtime.sock"
    if kind == "file":
        path.write_text("someone's data")
    elif kind == "directory":
        path.mkdir()
    else:
        (tmp_path / "target").write_text("x")
        path.symlink_to(tmp_path / "target")
    with pytest.raises(EnforcerError, match="not a socket"):
        RegistrationServer(path, lambda *a: None).start()
    assert path.is_symlink() if kind == "symlink" else path.exists()


def test_a_live_socket_is_not_stolen_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "runtime.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # left by a daemon killed with -9: nobody listens
    first = RegistrationServer(path, lambda *a: None)
    first.start()
    try:
        with pytest.raises(EnforcerError, match="another enforcer"):
            RegistrationServer(path, lambda *a: None).start()
        assert ask_enforcer(ShimConfig(socket=str(path), timeout=5), {"id": "c", "pid": 1}) is None
    finally:
        first.close()
    assert not path.exists()


def test_an_oversized_request_is_refused_unread(tmp_path: Path) -> None:
    seen: list[str] = []
    path = tmp_path / "runtime.sock"
    server = RegistrationServer(path, lambda cid, pid, bundle: seen.append(cid))
    server.start()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(b'{"id": "' + b"a" * (MAX_REQUEST * 4) + b'", "pid": 1}\n')
            reply = json.loads(s.makefile("rb").readline())
    finally:
        server.close()
    assert reply["ok"] is False and f"longer than {MAX_REQUEST} bytes" in reply["error"]
    assert seen == []


def test_a_request_that_never_ends_is_cut_off_after_the_read_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registrar, "READ_TIMEOUT", 0.3)
    path = tmp_path / "runtime.sock"
    server = RegistrationServer(path, lambda *a: None)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.settimeout(10)
            s.sendall(b'{"id": "c1",')  # and nothing more: a slow drip would hold a thread
            reply = json.loads(s.makefile("rb").readline())
    finally:
        server.close()
    assert reply["ok"] is False and "not complete within 0.3 s" in reply["error"]
