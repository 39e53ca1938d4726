"""A container cannot leave its policy (VM, real containers, plain `enforcer run` with no
runtime wrapper, the shipped credentials and sockets policies):

- a fresh container is under the every-container policies from its first instruction;
- a systemd-style container, whose init moved into a child cgroup of its own, is tracked by
  its container's cgroup and policed from inside the child cgroup: at start, after an
  enforcer restart and after a dockerd restart; socket rules (packet, SOCK_PACKET) reach
  the child cgroup like every other rule;
- a task of a container cannot move out of its container's cgroup subtree (a write to an
  outside cgroup.procs, clone3 with CLONE_INTO_CGROUP), where nothing would judge it; moves
  inside the subtree stay free.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import RunContainer, record_timing
from tests.integration.dockerd import Container, PrivateDockerd
from tests.integration.enforcer_proc import ROOT, EnforcerProcess, running
from tests.integration.helpers import build_probe

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

FRESH_RUNS = int(os.environ.get("ENFORCER_FRESH_RUNS", "10"))
# Named only by SOCK_PACKET for the systemd-style container: its record shows the type rule
# (more specific than the shipped "every packet socket" rule) decided.
PACKET_TYPE = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: sock-packet}
spec:
  selector: {containerNames: ["sysd-*"]}
  socket:
    - {action: deny, families: [packet], types: [packet]}
"""
# What systemd as pid 1 does first: make a child cgroup of the container's and move there.
MOVE_INIT = "mkdir -p /sys/fs/cgroup/init.scope && echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs && exec sleep 3600"
# A docker exec lands in the container's cgroup; this one joins init.scope first.
IN_CHILD = "echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs && grep -q '/init.scope$' /proc/self/cgroup && "


@pytest.fixture(scope="module")
def enforcer(tmp_path_factory: pytest.TempPathFactory, dockerd: PrivateDockerd) -> Iterator[EnforcerProcess]:
    shipped = {name: (ROOT / "policies" / name).read_text() for name in ("credentials.yaml", "sockets.yaml")}
    proc = EnforcerProcess.with_policies(tmp_path_factory, dockerd.host, {**shipped, "sock-packet.yaml": PACKET_TYPE})
    with running(proc):
        yield proc


@pytest.fixture(scope="module")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_probe(tmp_path_factory.mktemp("probe"))


def test_fresh_containers_are_denied_from_their_first_instruction_without_the_wrapper(
    enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str
) -> None:
    outcomes = []
    for _ in range(FRESH_RUNS):
        t0 = time.monotonic()
        r = dockerd.cli("run", "--rm", "--network", "none", testbox_image, "cat", "/etc/shadow", check=False)
        record_timing("docker run --rm (no wrapper)", time.monotonic() - t0)
        outcomes.append((r.returncode, r.stderr.strip()))
    allowed = [o for o in outcomes if "Operation not permitted" not in o[1]]
    assert not allowed, f"{len(allowed)}/{FRESH_RUNS} runs were not denied: {allowed[:3]}"
    records = enforcer.wait_records(lambda r: r["target"]["path"] == "/etc/shadow", count=FRESH_RUNS)
    assert sum(r["count"] for r in records) >= FRESH_RUNS
    assert {(r["policy"], r["rule"]) for r in records} == {("protect-credentials", "file[0]")}


def _cgroup_id_of_container(box: Container) -> int:
    """The container's own cgroup: the parent of the init.scope its init moved into."""
    text = Path(f"/proc/{box.pid}/cgroup").read_text()
    rel = next(line.split("::", 1)[1] for line in text.splitlines() if line.startswith("0::"))
    assert rel.endswith("/init.scope"), rel
    mount = next(
        line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines() if line.split()[2] == "cgroup2"
    )
    return os.stat(os.path.join(mount, rel.lstrip("/").removesuffix("/init.scope"))).st_ino


def _moved(box: Container, timeout: float = 60) -> int:
    end = time.monotonic() + timeout
    while True:
        try:
            return _cgroup_id_of_container(box)
        except (AssertionError, FileNotFoundError, StopIteration, ValueError):
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _policed_in_child_cgroup(box: Container, enforcer: EnforcerProcess) -> None:
    shadow = box.exec("sh", "-c", IN_CHILD + "cat /etc/shadow")
    assert shadow.returncode != 0 and "Operation not permitted" in shadow.stderr, shadow
    for typ, policy, rule in (("raw", "deny-raw-sockets", "socket[0]"), ("packet", "sock-packet", "socket[0]")):
        r = box.exec("sh", "-c", IN_CHILD + f"/bin/probe socket packet {typ}")
        assert r.stdout.strip() == "EPERM", (typ, r)
        records = enforcer.wait_records(
            lambda rec, typ=typ: (
                rec["hook"] == "sock_create"  # type: ignore[misc]
                and rec["target"] == {"family": "packet", "type": typ}
                and rec["container"]["name"] == box.name
            )
        )
        assert records and {(x["policy"], x["rule"]) for x in records} == {(policy, rule)}, records
    files = enforcer.wait_records(
        lambda rec: rec["container"]["name"] == box.name and rec["target"].get("path") == "/etc/shadow"
    )
    assert files, "the denial in the child cgroup is recorded under the container"


def test_a_systemd_style_container_is_policed_in_its_child_cgroup_through_restarts(
    enforcer: EnforcerProcess, dockerd: PrivateDockerd, docker_run: RunContainer, probe_binary: Path
) -> None:
    # --privileged and a private cgroup namespace: how systemd containers run on Docker
    # (the cgroup2 mount is writable only then), so the init can make init.scope.
    mark = len(enforcer.log())
    box: Container = docker_run(
        "sh", "-c", MOVE_INIT, name="sysd-1", extra_args=("--privileged", "--cgroupns", "private")
    )
    cgroup_id = _moved(box)
    assert enforcer.wait_enforced("sysd-1", after=mark)["cgroup_id"] == cgroup_id
    dockerd.cli("cp", str(probe_binary), f"{box.id}:/bin/probe")
    _policed_in_child_cgroup(box, enforcer)

    # An enforcer restart finds the init in init.scope and keeps the container's entry.
    enforcer.stop(signal.SIGTERM)
    mark = len(enforcer.log())
    enforcer.start()
    assert enforcer.wait_enforced("sysd-1", after=mark)["cgroup_id"] == cgroup_id
    assert not [e for e in enforcer.log()[mark:] if e.get("event") == "container not tracked"]
    assert cgroup_id.to_bytes(8, "little") in enforcer.map_keys("containers")
    shadow = box.exec("sh", "-c", IN_CHILD + "cat /etc/shadow")
    assert "Operation not permitted" in shadow.stderr, shadow

    # A dockerd restart: with live-restore the container keeps running, without it is
    # started again and its new init moves again.
    mark = len(enforcer.log())
    dockerd.restart()
    enforcer.wait_log(lambda e: e.get("event") == "docker reconnected", timeout=300, after=mark)
    if not box.running:
        dockerd.cli("start", box.id)
        cgroup_id = _moved(box)
        enforcer.wait_log(
            lambda e: (
                e.get("event") == "container enforced"
                and e.get("container") == "sysd-1"
                and e.get("cgroup_id") == cgroup_id
            ),
            timeout=120,
            after=mark,
        )
    assert cgroup_id.to_bytes(8, "little") in enforcer.map_keys("containers")
    shadow = box.exec("sh", "-c", IN_CHILD + "cat /etc/shadow")
    assert "Operation not permitted" in shadow.stderr, shadow
    r = box.exec("sh", "-c", IN_CHILD + "/bin/probe socket packet packet")
    assert r.stdout.strip() == "EPERM", r


CGROUP_OF_SELF = "sed -n 's/^0:://p' /proc/self/cgroup"


def test_a_container_task_cannot_move_out_of_its_container_cgroup(
    enforcer: EnforcerProcess, dockerd: PrivateDockerd, docker_run: RunContainer, probe_binary: Path
) -> None:
    # --privileged in the host's cgroup namespace: the whole host tree is visible and
    # writable from inside, the way out that identity-by-cgroup has to close.
    mark = len(enforcer.log())
    box: Container = docker_run("sleep", "3600", name="escape-1", extra_args=("--privileged", "--cgroupns", "host"))
    enforcer.wait_enforced("escape-1", after=mark)
    dockerd.cli("cp", str(probe_binary), f"{box.id}:/bin/probe")
    own = box.exec("sh", "-c", CGROUP_OF_SELF).stdout.strip()
    assert own.count("/") >= 1 and box.id[:12] in own, own

    write = box.exec("sh", "-c", f"echo $$ > /sys/fs/cgroup/cgroup.procs; {CGROUP_OF_SELF}")
    assert "Operation not permitted" in write.stderr and write.stdout.strip() == own, write
    # No hook after the kernel resolved clone3's destination can refuse it: the caller is
    # killed there, which ends the fork before the child runs.
    clone = box.exec("/bin/probe", "clone-into", "/sys/fs/cgroup")
    assert clone.returncode in (137, -9) and "child in" not in clone.stderr, clone
    sibling = box.exec("sh", "-c", f"mkdir /sys/fs/cgroup{os.path.dirname(own)}/escape-1-out")
    assert "Operation not permitted" in sibling.stderr, sibling  # no new cgroup outside either
    shadow = box.exec("cat", "/etc/shadow")  # still judged as the container
    assert "Operation not permitted" in shadow.stderr, shadow

    # Inside its own subtree a container stays free (systemd's init.scope, nested runtimes).
    inner = f"/sys/fs/cgroup{own}/inner"
    moved = box.exec("sh", "-c", f"mkdir -p {inner} && echo $$ > {inner}/cgroup.procs && {CGROUP_OF_SELF}")
    assert moved.returncode == 0 and moved.stdout.strip() == own + "/inner", moved
    clone = box.exec("/bin/probe", "clone-into", inner)
    assert clone.stdout.strip() == "ok" and f"child in {own}/inner" in clone.stderr, clone

    records = enforcer.wait_records(
        lambda r: r["container"]["name"] == "escape-1" and r["rule"] == "leave-container-cgroup", count=3, timeout=60
    )
    assert {(r["policy"], r["action"]) for r in records} == {("enforcer", "deny")}
    # One record per operation, each from the hook that runs once for it: the write opens
    # the root's cgroup.procs, the clone3 names the root cgroup, the mkdir its parent.
    counts = Counter[tuple[str, str]]()
    for r in records:
        counts[r["hook"], r["target"]["path"]] += r["count"]
    assert counts == {
        ("file_open", "/cgroup.procs"): 1,
        ("clone3", "/"): 1,
        ("path_mkdir", os.path.dirname(own)): 1,
    }, counts
    assert {r.get("signal") for r in records if r["hook"] == "clone3"} == {"SIGKILL"}
    assert box.exec("rmdir", inner).returncode == 0  # empty again: the exec and the child are gone
