"""`enforcer run` as a real process for integration tests: private pin root, audit log and
policy directory, talking to the tests' private dockerd. Its stderr is its JSON log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.pybpf import Map

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class EnforcerProcess:
    policies: Path
    workdir: Path
    docker_host: str
    pin_root: Path = field(default_factory=lambda: Path(f"/sys/fs/bpf/enforcer-test-{os.getpid()}"))
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def with_policies(
        cls, tmp: pytest.TempPathFactory, docker_host: str, files: Mapping[str, str], extra_args: tuple[str, ...] = ()
    ) -> EnforcerProcess:
        """A daemon whose policy directory holds these files (name -> YAML text)."""
        policies = tmp.mktemp("policies")
        for name, text in files.items():
            (policies / name).write_text(text)
        return cls(policies, tmp.mktemp("enforcer"), docker_host, extra_args=extra_args)

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.jsonl"

    @property
    def runtime_socket(self) -> Path:
        return self.workdir / "runtime.sock"

    @property
    def log_path(self) -> Path:
        return self.workdir / "enforcer.log"

    def start(self, timeout: float = 300.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        start_at = len(self.log())
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "enforcer",
                "run",
                "--policies",
                str(self.policies),
                "--audit-log",
                str(self.audit_log),
                "--pin-root",
                str(self.pin_root),
                "--docker-host",
                self.docker_host,
                "--status-socket",
                str(self.workdir / "status.sock"),
                "--runtime-socket",
                str(self.runtime_socket),
                *self.extra_args,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        self.wait_log(lambda e: e.get("event") == "docker connected", timeout, after=start_at)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    # ----- its log ------------------------------------------------------------------------
    def log(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "(not json)", "line": line})
        return out

    def wait_log(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 60.0, after: int = 0
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            entries = self.log()[after:]
            for entry in entries:
                if match(entry):
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"enforcer exited {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting in the enforcer log:\n{self.log_text()}")
            time.sleep(0.1)

    def wait_enforced(self, name: str, timeout: float = 60.0, after: int = 0) -> dict[str, Any]:
        return self.wait_log(
            lambda e: e.get("event") == "container enforced" and e.get("container") == name, timeout, after
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    # ----- its audit records --------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]

    def wait_records(
        self, match: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Records matching `match` once the sum of their `count` reaches `count`."""
        end = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if match(r)]
            if sum(r["count"] for r in found) >= count or time.monotonic() > end:
                return found
            time.sleep(0.1)

    # ----- the pinned maps ----------------------------------------------------------------
    def map_keys(self, name: str) -> list[bytes]:
        with Map.open_pinned(self.pin_root / "maps" / name) as m:
            return list(m.keys())

    def abi(self) -> Abi:
        return Abi.from_object(ensure_built().path("lsm_file"))

    def unload(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "enforcer", "unload", "--pin-root", str(self.pin_root)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


@contextmanager
def running(proc: EnforcerProcess, timeout: float = 300.0) -> Iterator[EnforcerProcess]:
    """The daemon started; at the end stopped and its pins removed, even when the start or
    the test failed."""
    try:
        proc.start(timeout)
        yield proc
    finally:
        if proc.proc is not None:
            proc.stop()
        proc.unload()
