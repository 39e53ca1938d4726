"""`enforcer run` end to end (in the VM): the real daemon, real dockerd, real containers.

One daemon serves the module. The shared testbox container runs before the daemon starts
(it is picked up by the first reconcile); two more start while the daemon runs. Policies:
every container loses /etc/shadow and audits /etc/hostname; selectors by container name,
image and label each add one rule that only their containers get.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from enforcer.containers.cgroups import cgroup_of_pid
from tests.integration.conftest import RunContainer
from tests.integration.dockerd import Container, PrivateDockerd
from tests.integration.enforcer_proc import EnforcerProcess, running

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

ALT_IMAGE = "enforcer-testbox-alt:1"
POLICIES = {
    "everyone.yaml": """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: everyone}
spec:
  file:
    - {action: deny, paths: [/etc/shadow]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: watch-hostname}
spec:
  mode: audit
  file:
    - {action: deny, paths: [/etc/hostname]}
""",
    "by-name.yaml": """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: by-name}
spec:
  selector: {containerNames: ["named-*"]}
  file:
    - {action: deny, paths: [/etc/os-release]}
""",
    "by-image.yaml": """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: by-image}
spec:
  selector: {images: ["enforcer-testbox-alt:*"]}
  file:
    - {action: deny, paths: [/root/.ssh/id_rsa.pub]}
""",
    "by-label.yaml": """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: by-label}
spec:
  selector: {labels: {tier: secret}}
  file:
    - {action: deny, paths: [/root/.ssh/known_hosts]}
""",
}
SELECTED_FILES = ("/etc/os-release", "/root/.ssh/id_rsa.pub", "/root/.ssh/known_hosts")


@pytest.fixture(scope="module")
def enforcer(
    tmp_path_factory: pytest.TempPathFactory, dockerd: PrivateDockerd, module_testbox: Container
) -> Iterator[EnforcerProcess]:
    proc = EnforcerProcess.with_policies(tmp_path_factory, dockerd.host, POLICIES)
    with running(proc):
        proc.wait_enforced(module_testbox.name)
        yield proc


def _denied(c: Container, path: str) -> bool:
    result = c.exec("cat", path)
    if result.returncode == 0:
        return False
    assert "Operation not permitted" in result.stderr, result.stderr
    return True


def test_a_container_running_before_the_daemon_starts_is_denied_with_an_audit_record(
    enforcer: EnforcerProcess, testbox: Container
) -> None:
    assert _denied(testbox, "/etc/shadow")
    (record,) = enforcer.wait_records(
        lambda r: r["target"]["path"] == "/etc/shadow" and r["container"]["name"] == testbox.name
    )
    assert record["hook"] == "file_open" and record["action"] == "deny" and record["errno"] == "EPERM"
    assert (record["policy"], record["rule"]) == ("everyone", "file[0]")
    assert record["container"]["id"] == testbox.id
    assert record["container"]["image"] == testbox.inspect()["Config"]["Image"]
    assert record["process"]["comm"] == "cat" and record["process"]["uid"] == 0
    assert record["target"]["access"] == "read"
    assert record["count"] == 1


def test_an_allowed_file_still_opens(testbox: Container, enforcer: EnforcerProcess) -> None:
    assert testbox.exec("cat", "/etc/passwd").returncode == 0


def test_audit_mode_records_without_denying(enforcer: EnforcerProcess, testbox: Container) -> None:
    result = testbox.exec("cat", "/etc/hostname")
    assert result.returncode == 0 and result.stdout.strip()
    (record,) = enforcer.wait_records(lambda r: r["target"]["path"] == "/etc/hostname")
    assert (record["action"], record["policy"]) == ("audit", "watch-hostname")
    assert "errno" not in record


def test_selectors_by_name_image_and_label_apply_only_to_their_containers(
    enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str, docker_run: RunContainer, testbox: Container
) -> None:
    dockerd.cli("tag", testbox_image, ALT_IMAGE)
    mark = len(enforcer.log())
    # Both start while the daemon runs: covered by the event stream, not the first reconcile.
    named = docker_run(name="named-a")
    other = docker_run(name="plain-b", image=ALT_IMAGE, labels={"tier": "secret"})
    enforcer.wait_enforced("named-a", after=mark)
    enforcer.wait_enforced("plain-b", after=mark)

    assert [_denied(named, f) for f in SELECTED_FILES] == [True, False, False]
    assert [_denied(other, f) for f in SELECTED_FILES] == [False, True, True]
    assert [_denied(testbox, f) for f in SELECTED_FILES] == [False, False, False]
    assert _denied(named, "/etc/shadow") and _denied(other, "/etc/shadow")  # `everyone` too

    policies = {
        (r["container"]["name"], r["target"]["path"]): r["policy"]
        for r in enforcer.wait_records(lambda r: r["container"]["name"] in ("named-a", "plain-b"), count=5)
    }
    assert policies == {
        ("named-a", "/etc/os-release"): "by-name",
        ("plain-b", "/root/.ssh/id_rsa.pub"): "by-image",
        ("plain-b", "/root/.ssh/known_hosts"): "by-label",
        ("named-a", "/etc/shadow"): "everyone",
        ("plain-b", "/etc/shadow"): "everyone",
    }


def test_a_process_started_with_docker_exec_and_the_entrypoint_are_both_covered(
    enforcer: EnforcerProcess, docker_run: RunContainer
) -> None:
    mark = len(enforcer.log())
    # The entrypoint itself retries until the policy is in force, then reports what it saw.
    box = docker_run(
        "sh",
        "-c",
        "until ! cat /etc/shadow >/dev/null 2>&1; do sleep 0.2; done;"
        " cat /etc/shadow 2>/tmp/err; cat /tmp/err >/tmp/entry; sleep 3600",
        name="entry-c",
    )
    enforcer.wait_enforced("entry-c", after=mark)
    deadline = time.monotonic() + 30
    while box.exec("test", "-s", "/tmp/entry").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Operation not permitted" in box.exec("cat", "/tmp/entry").stdout
    assert _denied(box, "/etc/shadow")
    exec_shell = box.exec("sh", "-c", "sh -c 'cat /etc/shadow'")  # a grandchild of docker exec
    assert exec_shell.returncode != 0 and "Operation not permitted" in exec_shell.stderr


def test_identical_repeats_fold_into_one_record_without_losing_a_denial(
    enforcer: EnforcerProcess, testbox: Container
) -> None:
    def storm(r: dict[str, Any]) -> bool:
        return bool(r["target"]["path"] == "/etc/shadow" and r["container"]["name"] == testbox.name)

    cgroup = cgroup_of_pid(testbox.pid)
    time.sleep(1.5)  # let earlier folds close
    before = _counter_total(enforcer, cgroup.id)
    already = sum(r["count"] for r in enforcer.records() if storm(r))
    records_before = len([r for r in enforcer.records() if storm(r)])
    result = testbox.exec("sh", "-c", "for i in $(seq 200); do cat /etc/shadow 2>/dev/null; done; true")
    assert result.returncode == 0
    assert _counter_total(enforcer, cgroup.id) - before == 200  # the kernel counts every one

    found = enforcer.wait_records(storm, count=already + 200, timeout=15)
    assert sum(r["count"] for r in found) == already + 200  # folded, none lost
    new = found[records_before:]
    assert len(new) < 50  # ... and folded: far fewer records than denials
    assert any(r["count"] > 1 for r in new)


def test_a_removed_container_leaves_no_map_entries(enforcer: EnforcerProcess, docker_run: RunContainer) -> None:
    mark = len(enforcer.log())
    box = docker_run(name="gone-d", labels={"tier": "secret"})
    entry = enforcer.wait_enforced("gone-d", after=mark)
    cgroup_id = entry["cgroup_id"]
    assert _denied(box, "/etc/shadow")
    key = cgroup_id.to_bytes(8, "little")
    assert key in enforcer.map_keys("containers")
    assert _counter_total(enforcer, cgroup_id) == 1

    box.remove()
    enforcer.wait_log(lambda e: e.get("event") == "container released" and e.get("container") == "gone-d", after=mark)
    assert key not in enforcer.map_keys("containers")
    assert _counter_total(enforcer, cgroup_id) == 0
    abi = enforcer.abi()
    live = {
        abi.layout("container").decode(_lookup(enforcer, "containers", k))["ruleset"]
        for k in enforcer.map_keys("containers")
    }
    rulesets = {abi.layout("path_key").decode(k)["ruleset"] for k in enforcer.map_keys("path_rules")}
    assert rulesets <= live  # no rules left for rulesets nobody uses


def _lookup(enforcer: EnforcerProcess, name: str, key: bytes) -> bytes:
    from enforcer.pybpf import Map

    with Map.open_pinned(enforcer.pin_root / "maps" / name) as m:
        value = m.lookup(key)
    assert value is not None
    return value


def _counter_total(enforcer: EnforcerProcess, cgroup_id: int) -> int:
    from enforcer.pybpf import Map

    abi = enforcer.abi()
    key = abi.layout("counter_key")
    total = 0
    with Map.open_pinned(enforcer.pin_root / "maps" / "counters") as m:
        for k, v in m.items():
            if key.decode(k)["cgroup_id"] == cgroup_id:
                total += int.from_bytes(v, "little")
    return total
