"""The operator's view of a real daemon (in the VM): after a denial in a real container,
`enforcer status --json` shows the container with its policy and a counter, `enforcer audit
--container NAME` finds the record, and the metrics endpoint (loopback) counts it."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.dockerd import Container, PrivateDockerd
from tests.integration.enforcer_proc import ROOT, EnforcerProcess, running

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: op-credentials}
spec:
  selector: {containerNames: ["enforcer-testbox-*"]}
  file:
    - {action: audit, paths: [/etc/hostname]}
    - {action: deny, paths: [/etc/shadow]}
"""
BROKEN = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: broken}
spec:
  file:
    - {action: deny, path: [/etc/passwd]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, dockerd: PrivateDockerd, module_testbox: Container
) -> Iterator[EnforcerProcess]:
    policies = tmp_path_factory.mktemp("policies")
    (policies / "op.yaml").write_text(POLICY)
    work = tmp_path_factory.mktemp("operator")
    port = _free_port()
    proc = EnforcerProcess(
        policies,
        work,
        dockerd.host,
        extra_args=("--status-socket", str(work / "run" / "enforcer.sock"), "--metrics-addr", str(port)),
    )
    proc.metrics_port = port  # type: ignore[attr-defined]
    with running(proc, 300):  # a loaded TCG guest can take minutes to reach Docker
        proc.wait_enforced(module_testbox.name, timeout=120)
        # A broken file refuses a start (nothing in force could stand for it), so it arrives
        # while the daemon runs: the reload reports it and changes nothing.
        (policies / "broken.yaml").write_text(BROKEN)
        proc.wait_log(
            lambda e: (
                e.get("event") == "policy file rejected; its previous version stays in force"
                and "broken.yaml" in e.get("error", "")
            ),
            timeout=60,
        )
        yield proc


def enforcer(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich folds long cells at 80 columns
    return subprocess.run(
        [sys.executable, "-m", "enforcer", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def status(daemon: EnforcerProcess) -> dict[str, Any]:
    out = enforcer("status", "--json", "--socket", str(daemon.workdir / "run" / "enforcer.sock"))
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def counter(doc: dict[str, Any], name: str, policy: str, rule: str) -> dict[str, Any] | None:
    (c,) = [c for c in doc["containers"] if c["name"] == name]
    return next((r for r in c["counters"] if (r["policy"], r["rule"]) == (policy, rule)), None)


def test_status_counts_a_denial_and_audit_finds_it(daemon: EnforcerProcess, testbox: Container) -> None:
    sock = daemon.workdir / "run" / "enforcer.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    before = counter(status(daemon), testbox.name, "op-credentials", "file[1]")
    result = testbox.exec("cat", "/etc/shadow")
    assert result.returncode != 0 and "Operation not permitted" in result.stderr

    doc = status(daemon)
    (box,) = [c for c in doc["containers"] if c["name"] == testbox.name]
    assert box["id"] == testbox.id and "op-credentials" in box["policies"]
    denied = counter(doc, testbox.name, "op-credentials", "file[1]")
    assert denied is not None and denied["action"] == "deny"
    assert denied["count"] == (before["count"] if before else 0) + 1
    assert doc["docker_connected"] is True
    assert any(
        f["file"].endswith("broken.yaml") and not f["ok"] and ":7:" in f["errors"][0] for f in doc["policy_files"]
    )
    assert "file rules" in doc["kernel_features"]

    daemon.wait_records(lambda r: r["container"]["name"] == testbox.name and r["target"]["path"] == "/etc/shadow")
    out = enforcer("audit", "--log", str(daemon.audit_log), "--container", testbox.name, "--json")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert any(
        r["target"]["path"] == "/etc/shadow" and r["policy"] == "op-credentials" and r["action"] == "deny"
        for r in records
    )
    table = enforcer("audit", "--log", str(daemon.audit_log), "--container", testbox.name)
    assert "/etc/shadow" in table.stdout

    human = enforcer("status", "--socket", str(daemon.workdir / "run" / "enforcer.sock"))
    assert human.returncode == 0 and testbox.name in human.stdout and "op-credentials" in human.stdout


def test_metrics_on_loopback_count_denials_and_audits(daemon: EnforcerProcess, testbox: Container) -> None:
    assert testbox.exec("cat", "/etc/hostname").returncode == 0
    assert testbox.exec("cat", "/etc/shadow").returncode != 0
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        want = (
            f'enforcer_denials_total{{container="{testbox.name}",policy="op-credentials",rule="file[1]"}}',
            f'enforcer_audits_total{{container="{testbox.name}",policy="op-credentials",rule="file[0]"}}',
        )
        if all(w in text for w in want) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for w in want:
        assert w in text
    assert "enforcer_containers_tracked" in text and 'enforcer_policy_files{result="rejected"} 1.0' in text
