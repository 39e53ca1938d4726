"""enforcer-runc: everything but `create` is runc untouched; `create` waits for the enforcer,
and without an answer fails closed (or open, when configured so)."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.runtime.protocol import FAIL_OPEN, ShimConfig
from enforcer.runtime.registrar import RegistrationServer
from enforcer.runtime.shim import container_id, main, option, split_args

CREATE = [
    "--root",
    "/run/docker/runtime-runc/moby",
    "--log",
    "/b/log.json",
    "--log-format",
    "json",
    "create",
    "--bundle",
    "/b",
    "--pid-file",
    "/b/init.pid",
    "abc123",
]


def test_a_runc_command_line_splits_into_global_options_subcommand_and_its_arguments() -> None:
    glob, sub, rest = split_args(CREATE)
    assert glob == ["--root", "/run/docker/runtime-runc/moby", "--log", "/b/log.json", "--log-format", "json"]
    assert sub == "create"
    assert container_id(rest) == "abc123"
    assert option(rest, {"--pid-file"}) == "/b/init.pid"
    assert option(rest, {"--bundle", "-b"}) == "/b"
    assert split_args(["--systemd-cgroup", "--root=/x", "start", "id"])[1] == "start"
    assert container_id(["--console-socket", "/s.sock", "--bundle=/b", "--no-pivot", "id9"]) == "id9"


@pytest.fixture
def fake_runc(tmp_path: Path) -> Path:
    """A runc stand-in: logs its argv, writes the pid file on create."""
    script = tmp_path / "runc"
    script.write_text(
        textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, json
        open({str(tmp_path / "calls")!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
        args = sys.argv[1:]
        if "create" in args:
            pid_file = args[args.index("--pid-file") + 1]
            open(pid_file, "w").write("{os.getpid()}")
        sys.exit(0)
        """)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()]


def _config(tmp_path: Path, runc: Path, **kw: object) -> Path:
    path = tmp_path / "runtime.json"
    path.write_text(ShimConfig(runc=str(runc), socket=str(tmp_path / "s.sock"), timeout=2, **kw).dump())  # type: ignore[arg-type]
    return path


def _create_args(tmp_path: Path, config: Path) -> list[str]:
    return [
        f"--enforcer-config={config}",
        "--log",
        str(tmp_path / "log.json"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        str(tmp_path),
        "--pid-file",
        str(tmp_path / "init.pid"),
        "c1",
    ]


@pytest.fixture
def enforcer_socket(tmp_path: Path) -> Iterator[list[tuple[str, int, str]]]:
    seen: list[tuple[str, int, str]] = []

    def register(cid: str, pid: int, bundle: str) -> None:
        if cid == "unknown":
            raise RuntimeError("container unknown is not known to Docker")
        seen.append((cid, pid, bundle))

    server = RegistrationServer(tmp_path / "s.sock", register)
    server.start()
    try:
        yield seen
    finally:
        server.close()


def test_create_returns_only_after_the_enforcer_registered_the_container(
    tmp_path: Path, fake_runc: Path, enforcer_socket: list[tuple[str, int, str]]
) -> None:
    config = _config(tmp_path, fake_runc)
    assert main(_create_args(tmp_path, config)) == 0
    assert enforcer_socket == [("c1", os.getpid(), str(tmp_path))]
    assert _calls(tmp_path)[0][-1] == "c1"  # runc got everything but our own flag
    assert not any(a.startswith("--enforcer-config") for a in _calls(tmp_path)[0])


def test_without_an_enforcer_the_start_fails_closed_and_says_why(tmp_path: Path, fake_runc: Path) -> None:
    config = _config(tmp_path, fake_runc)
    assert main(_create_args(tmp_path, config)) == 1
    delete = _calls(tmp_path)[-1]
    assert delete[-3:] == ["delete", "--force", "c1"]  # the half-created container is removed
    entry = json.loads((tmp_path / "log.json").read_text().splitlines()[-1])
    assert "not reachable" in entry["msg"] and "enforcer run" in entry["msg"]  # what docker run shows


def test_fail_open_starts_the_container_anyway(tmp_path: Path, fake_runc: Path) -> None:
    config = _config(tmp_path, fake_runc, on_unavailable=FAIL_OPEN)
    assert main(_create_args(tmp_path, config)) == 0
    assert "WITHOUT its policy" in (tmp_path / "log.json").read_text()


def test_an_enforcer_refusal_fails_the_start_with_its_reason(
    tmp_path: Path, fake_runc: Path, enforcer_socket: list[tuple[str, int, str]]
) -> None:
    config = _config(tmp_path, fake_runc)
    args = _create_args(tmp_path, config)
    args[-1] = "unknown"
    assert main(args) == 1
    assert "not known to Docker" in (tmp_path / "log.json").read_text()


def test_the_registration_socket_is_root_only(tmp_path: Path, enforcer_socket: list[tuple[str, int, str]]) -> None:
    sock = tmp_path / "s.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(b"not json\n")
        assert json.loads(s.recv(4096))["ok"] is False


def test_other_subcommands_exec_runc_unchanged(tmp_path: Path, fake_runc: Path) -> None:
    config = _config(tmp_path, fake_runc)
    pid = os.fork()
    if pid == 0:  # main() execs: run it in a child
        try:
            main([f"--enforcer-config={config}", "--root", "/r", "start", "c1"])
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _calls(tmp_path) == [["--root", "/r", "start", "c1"]]


def test_registration_serves_concurrent_starts(tmp_path: Path) -> None:
    release = threading.Event()
    done: list[str] = []

    def slow(cid: str, pid: int, bundle: str) -> None:
        if cid == "slow":
            release.wait(5)
        done.append(cid)

    server = RegistrationServer(tmp_path / "r.sock", slow)
    server.start()
    try:
        cfg = ShimConfig(socket=str(tmp_path / "r.sock"), timeout=5)
        from enforcer.runtime.shim import ask_enforcer

        t = threading.Thread(target=ask_enforcer, args=(cfg, {"id": "slow", "pid": 1}))
        t.start()
        assert ask_enforcer(cfg, {"id": "fast", "pid": 1}) is None  # not stuck behind "slow"
        release.set()
        t.join()
        assert done == ["fast", "slow"]
    finally:
        server.close()
