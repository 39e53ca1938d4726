"""`enforcer run` on a host whose kernel refuses BPF-LSM (this host): it refuses to start
while a policy has file rules, and with --allow-missing-lsm it enforces device, network and
socket rules on real containers, says what it does not enforce, and cleans up after them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.kernel.cgroup_enforcement import CGROUP_PROGRAMS, cgroup_links_dir
from tests.integration.conftest import RunContainer
from tests.integration.dockerd import Container, PrivateDockerd
from tests.integration.enforcer_proc import ROOT, EnforcerProcess, running
from tests.integration.helpers import build_probe

pytestmark = [pytest.mark.host_bpf, pytest.mark.docker]

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: mixed}
spec:
  selector: {containerNames: ["cgd-*"]}
  file:
    - {action: deny, paths: [/etc/shadow]}
  network:
    - {action: deny, direction: egress, cidrs: [127.0.0.2/32], ports: [8080]}
  socket:
    - {action: deny, families: [inet], types: [raw]}
"""


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("policies")
    (d / "mixed.yaml").write_text(POLICY)
    return d


@pytest.fixture(scope="module")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_probe(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def enforcer(
    tmp_path_factory: pytest.TempPathFactory, dockerd: PrivateDockerd, policies: Path
) -> Iterator[EnforcerProcess]:
    proc = EnforcerProcess(
        policies, tmp_path_factory.mktemp("enforcer"), dockerd.host, extra_args=("--allow-missing-lsm",)
    )
    with running(proc):
        yield proc


def test_without_the_flag_it_refuses_to_start_and_says_why(policies: Path, tmp_path: Path) -> None:
    pin_root = Path(f"/sys/fs/bpf/enforcer-test-refuse-{tmp_path.name}")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "enforcer",
                "run",
                "--policies",
                str(policies),
                "--pin-root",
                str(pin_root),
                "--docker-host",
                f"unix://{tmp_path}/none.sock",
                "--status-socket",
                "",
                "--audit-log",
                str(tmp_path / "audit.jsonl"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "enforcer", "unload", "--pin-root", str(pin_root)],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
    assert result.returncode == 1
    assert "file/exec rules of mixed would not be enforced" in result.stderr
    assert "--allow-missing-lsm" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_the_flag_the_log_says_loudly_what_is_not_enforced(enforcer: EnforcerProcess) -> None:
    entry = enforcer.wait_log(lambda e: str(e.get("event", "")).startswith("NOT ENFORCED"))
    assert entry["level"] == "error"
    assert entry["policies_with_file_or_exec_rules"] == ["mixed"]


def test_network_and_socket_rules_are_enforced_with_audit_records_and_cleaned_up(
    enforcer: EnforcerProcess, docker_run: RunContainer, probe_binary: Path
) -> None:
    mark = len(enforcer.log())
    box: Container = docker_run(name="cgd-web")
    cgroup_id = enforcer.wait_enforced("cgd-web", after=mark)["cgroup_id"]
    links = cgroup_links_dir(enforcer.pin_root, cgroup_id)
    assert sorted(p.name for p in links.iterdir()) == sorted(CGROUP_PROGRAMS)
    box.daemon.cli("cp", str(probe_binary), f"{box.id}:/bin/probe")

    def probe(*args: str) -> str:
        return box.exec("/bin/probe", *args).stdout.strip()

    assert probe("connect", "127.0.0.2", "8080", "tcp") == "EPERM"
    assert probe("connect", "127.0.0.1", "8080", "tcp") == "ECONNREFUSED"
    assert probe("socket", "inet", "raw") == "EPERM"
    assert box.exec("cat", "/etc/shadow").returncode == 0  # file rules: not enforced here
    records = enforcer.wait_records(lambda r: r["container"]["name"] == "cgd-web", count=2)
    by_hook = {r["hook"]: r for r in records}
    assert by_hook["connect"]["target"] == {"family": "inet", "protocol": "tcp", "address": "127.0.0.2", "port": 8080}
    assert (by_hook["connect"]["action"], by_hook["connect"]["errno"]) == ("deny", "EPERM")
    assert (by_hook["connect"]["policy"], by_hook["connect"]["rule"]) == ("mixed", "network[0]")
    assert by_hook["sock_create"]["target"] == {"family": "inet", "type": "raw"}
    assert sum(r["count"] for r in records) == 2

    box.remove()
    enforcer.wait_log(lambda e: e.get("event") == "container released" and e.get("container") == "cgd-web", after=mark)
    assert not links.exists()
    assert cgroup_id.to_bytes(8, "little") not in enforcer.map_keys("containers")
