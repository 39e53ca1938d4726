"""The SPEC's guarantees, in the VM with a real dockerd that starts containers through
enforcer-runc (installed with `enforcer install-runtime` into that dockerd's daemon.json):

- a container is under its policy before its entrypoint's first instruction;
- killing the enforcer (kill -9) does not lift enforcement; a restarted enforcer picks up
  containers started and removed while it was down, and policies changed on disk;
- a restart of dockerd (with and without live-restore) loses no container's policy;
- policy edits take effect on running containers within 1 s, atomically.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.images.testbox import IMAGE_TAG, RootfsBuilder, import_image
from tests.integration.conftest import record_timing
from tests.integration.dockerd import DOCKER_CLI, Container, PrivateDockerd, run_container
from tests.integration.enforcer_proc import ROOT, EnforcerProcess

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

# 8 starts through the wrapper (26-38 s each under TCG in the last CI run): the wrapper
# makes the order deterministic, so 20 in a row bought ~6 more minutes and no more certainty.
RACE_RUNS = int(os.environ.get("ENFORCER_RACE_RUNS", "8"))
BASE = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: base}
spec:
  file:
    - {action: deny, paths: [/etc/shadow]}
"""
EXTRA_A = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: extra}
spec:
  file:
    - {action: deny, paths: [/etc/shadow, /etc/os-release]}
"""
EXTRA_B = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: extra}
spec:
  file:
    - {action: deny, paths: [/etc/shadow, /etc/hostname]}
"""


World = tuple[PrivateDockerd, EnforcerProcess]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, testbox_rootfs: RootfsBuilder) -> Iterator[World]:
    policies = tmp_path_factory.mktemp("policies")
    (policies / "base.yaml").write_text(BASE)
    enforcer = EnforcerProcess(policies, tmp_path_factory.mktemp("enforcer"), "")
    dockerd = PrivateDockerd()
    enforcer.docker_host = dockerd.host
    conf = dockerd.base_dir / "conf"
    conf.mkdir(parents=True)
    (conf / "daemon.json").write_text("{}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "enforcer",
            "install-runtime",
            "--daemon-json",
            str(conf / "daemon.json"),
            "--config",
            str(conf / "runtime.json"),
            "--socket",
            str(enforcer.runtime_socket),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    import json

    dockerd.config = json.loads((conf / "daemon.json").read_text())
    try:
        record_timing("dockerd start", dockerd.start())
        enforcer.start()  # before the image import: with the runtime, nothing starts without it
        import_image(testbox_rootfs, dockerd.cli, IMAGE_TAG)
        yield dockerd, enforcer
    finally:
        if enforcer.proc is not None:
            enforcer.stop()
        dockerd.cleanup()
        enforcer.unload()


def _running(world: World, name: str) -> Container:
    dockerd, _enforcer = world
    return run_container(dockerd, IMAGE_TAG, "sleep", "3600", name=name)


def _denied(c: Container, path: str) -> bool:
    r = c.exec("cat", path)
    assert r.returncode == 0 or "Operation not permitted" in r.stderr, r.stderr
    return r.returncode != 0


def test_a_container_is_under_its_policy_from_its_first_instruction(world: World) -> None:
    dockerd, enforcer = world
    outcomes = []
    for _ in range(RACE_RUNS):
        t0 = time.monotonic()
        r = dockerd.cli("run", "--rm", "--network", "none", IMAGE_TAG, "cat", "/etc/shadow", check=False)
        record_timing("docker run --rm (through enforcer-runc)", time.monotonic() - t0)
        outcomes.append((r.returncode, r.stderr.strip()))
    allowed = [o for o in outcomes if "Operation not permitted" not in o[1]]
    assert not allowed, f"{len(allowed)}/{RACE_RUNS} runs were not denied: {allowed[:3]}"
    records = enforcer.wait_records(lambda r: r["target"]["path"] == "/etc/shadow", count=RACE_RUNS)
    assert sum(r["count"] for r in records) >= RACE_RUNS


def test_with_the_enforcer_down_containers_do_not_start_and_docker_says_why(world: World) -> None:
    dockerd, enforcer = world
    enforcer.stop()
    try:
        r = dockerd.cli("run", "--rm", "--network", "none", IMAGE_TAG, "true", check=False)
        assert r.returncode != 0
        assert "enforcer" in r.stderr and "not reachable" in r.stderr, r.stderr
    finally:
        enforcer.start()


def test_kill_9_keeps_enforcement_and_a_restarted_enforcer_catches_up(world: World) -> None:
    _dockerd, enforcer = world
    mark = len(enforcer.log())
    stays = _running(world, "stays")
    goes = _running(world, "goes")
    enforcer.wait_enforced("stays", after=mark)
    goes_cgroup = enforcer.wait_enforced("goes", after=mark)["cgroup_id"]

    enforcer.stop(signal.SIGKILL)
    assert _denied(stays, "/etc/shadow")  # nobody home, still denied
    goes.remove()  # removed while the enforcer is down
    (enforcer.policies / "extra.yaml").write_text(EXTRA_A)  # policy changed while down
    assert not _denied(stays, "/etc/os-release")

    mark = len(enforcer.log())
    enforcer.start()
    enforcer.wait_enforced("stays", after=mark)
    assert _denied(stays, "/etc/shadow")
    assert _denied(stays, "/etc/os-release")  # the changed policy applies
    assert goes_cgroup.to_bytes(8, "little") not in enforcer.map_keys("containers")
    (enforcer.policies / "extra.yaml").unlink()
    stays.remove()


def test_policy_edits_apply_within_a_second_and_atomically(world: World) -> None:
    dockerd, enforcer = world
    (enforcer.policies / "extra.yaml").write_text(EXTRA_A)
    box = _running(world, "reload")
    time.sleep(1.5)
    # A tight loop on a file both versions deny, counting opens that succeed.
    loop = subprocess.Popen(
        [
            DOCKER_CLI,
            "-H",
            dockerd.host,
            "exec",
            box.id,
            "sh",
            "-c",
            "n=0; i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); cat /etc/shadow >/dev/null 2>&1 && n=$((n+1)); "
            "done; echo $n $i",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for i in range(30):
        (enforcer.policies / "extra.yaml").write_text(EXTRA_B if i % 2 == 0 else EXTRA_A)
        time.sleep(0.1)
    time.sleep(1)
    box.exec("touch", "/tmp/stop", check=True)
    out, _ = loop.communicate(timeout=60)
    leaks, tries = map(int, out.split())
    assert tries > 20 and leaks == 0, f"{leaks} of {tries} opens of /etc/shadow succeeded during reloads"

    # Save -> effect: a fresh rule on a file read in a loop.
    (enforcer.policies / "extra.yaml").write_text(EXTRA_A)
    time.sleep(1.5)
    watcher = subprocess.Popen(
        [
            DOCKER_CLI,
            "-H",
            dockerd.host,
            "exec",
            box.id,
            "sh",
            "-c",
            "cat /etc/hostname >/dev/null && echo looping; "
            "while cat /etc/hostname >/dev/null 2>&1; do :; done; cut -d' ' -f1 /proc/uptime",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "looping"  # docker exec takes seconds under TCG
    time.sleep(0.3)
    mark = len(enforcer.log())
    # /proc/uptime is CLOCK_BOOTTIME (10 ms steps), the same clock inside the container.
    saved = time.clock_gettime(time.CLOCK_BOOTTIME)
    saved_wall = time.time()
    (enforcer.policies / "extra.yaml").write_text(EXTRA_B)
    effect = float(watcher.communicate(timeout=30)[0].strip())  # the loop's first denial
    record_timing("policy save -> in force (s)", effect - saved)
    reload = enforcer.wait_log(lambda e: e.get("event") == "policies reloaded", after=mark)
    from datetime import datetime

    logged = datetime.fromisoformat(reload["timestamp"].replace("Z", "+00:00")).timestamp() - saved_wall
    assert effect - saved < 1.0, (
        f"{effect - saved:.2f} s (reload done {logged:.2f} s after the save, its work {reload.get('seconds')} s)"
    )

    # A file that does not validate changes nothing and is reported with its position.
    (enforcer.policies / "extra.yaml").write_text(EXTRA_B.replace("action: deny", "action: maybe"))
    enforcer.wait_log(
        lambda e: e.get("event", "").startswith("policy file rejected") and "extra.yaml:" in str(e.get("error"))
    )
    time.sleep(0.5)
    assert _denied(box, "/etc/hostname")
    (enforcer.policies / "extra.yaml").unlink()
    box.remove()


@pytest.mark.parametrize("live_restore", [True, False])
def test_a_dockerd_restart_loses_no_policy(world: World, live_restore: bool) -> None:
    dockerd, enforcer = world
    if dockerd.live_restore != live_restore:  # the mode of the dockerd being stopped counts
        mark = len(enforcer.log())
        dockerd.restart(live_restore=live_restore)
        enforcer.wait_log(lambda e: e.get("event") == "docker reconnected", timeout=300, after=mark)
    box = _running(world, f"survivor-{live_restore}")
    mark = len(enforcer.log())
    dockerd.restart(live_restore=live_restore)
    enforcer.wait_log(lambda e: e.get("event") == "docker reconnected", timeout=300, after=mark)
    if live_restore:
        assert box.running
        assert _denied(box, "/etc/shadow")
    else:
        assert not box.running  # dockerd stopped it; a start goes through the runtime again
        dockerd.cli("start", box.id)
        assert _denied(box, "/etc/shadow")
    r = dockerd.cli("run", "--rm", "--network", "none", IMAGE_TAG, "cat", "/etc/shadow", check=False)
    assert "Operation not permitted" in r.stderr
    box.remove()
