"""Postures and `origin: image` on real containers under the real daemon (runs in the VM).

One daemon serves the module; each posture set-up has one container (a label selects its
policy), started while the daemon runs:
- drift: `posture: {exec: deny}` + `{action: allow, origin: image}`: every image binary
  runs; a copy, a new script, a binary on a volume or tmpfs, a memfd and a non-image object
  mapped executable (what ld.so does with LD_PRELOAD) are denied with a posture.exec record;
- rofs: `posture: {fileWrite: deny}` with allowed dirs;
- egress: `posture: {egress: deny}` with one loopback port allowed;
- plain: postures all allow: a deny rule holds and nothing else changes.
The last test adds a policy selecting every container (exec and fileWrite deny) and starts
a container under it from its first instruction: runc's own set-up must not be judged, so
the container starts, `docker exec` works, and the container's own operations are judged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.images.bypass import HELPER
from tests.integration.dockerd import Container, PrivateDockerd, run_container
from tests.integration.enforcer_proc import EnforcerProcess, running
from tests.integration.helpers import busybox_volume

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

POLICIES = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: drift}
spec:
  selector: {labels: {posture: drift}}
  posture: {exec: deny}
  exec:
    - {action: allow, origin: image}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: rofs}
spec:
  selector: {labels: {posture: rofs}}
  posture: {fileWrite: deny}
  file:
    - {action: allow, dirs: [/tmp, /dev], access: [write]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: egress}
spec:
  selector: {labels: {posture: egress}}
  posture: {egress: deny}
  network:
    - {action: allow, direction: egress, protocol: tcp, cidrs: [127.0.0.1/32], ports: [8081]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: plain}
spec:
  selector: {labels: {posture: plain}}
  file:
    - {action: deny, paths: [/etc/shadow]}
"""
EVERYONE = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: everyone-strict}
spec:
  posture: {exec: deny, fileWrite: deny}
  exec:
    - {action: allow, dirs: [/bin, /usr]}
  file:
    - {action: allow, dirs: [/tmp, /dev], access: [write]}
"""
EPERM_TEXT = "operation not permitted"  # busybox says "Operation", runc "operation"


@pytest.fixture(scope="module")
def volume() -> Iterator[Path]:
    with busybox_volume("enf-posture-vol-") as d:
        yield d


@pytest.fixture(scope="module")
def enforcer(tmp_path_factory: pytest.TempPathFactory, dockerd: PrivateDockerd) -> Iterator[EnforcerProcess]:
    proc = EnforcerProcess.with_policies(tmp_path_factory, dockerd.host, {"postures.yaml": POLICIES})
    with running(proc):
        yield proc


def _box(
    enforcer: EnforcerProcess,
    dockerd: PrivateDockerd,
    image: str,
    posture: str,
    *command: str,
    extra: tuple[str, ...] = (),
) -> Iterator[Container]:
    mark = len(enforcer.log())
    c = run_container(
        dockerd,
        image,
        *(command or ("sleep", "1000000")),
        name=f"enforcer-posture-{posture}",
        labels={"posture": posture},
        extra_args=list(extra),
    )
    try:
        enforcer.wait_enforced(c.name, after=mark)
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module")
def drift(enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str, volume: Path) -> Iterator[Container]:
    yield from _box(
        enforcer, dockerd, testbox_image, "drift", extra=("--tmpfs", "/scratch:exec", "-v", f"{volume}:/vol")
    )


@pytest.fixture(scope="module")
def rofs(enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str) -> Iterator[Container]:
    yield from _box(enforcer, dockerd, testbox_image, "rofs")


@pytest.fixture(scope="module")
def egress(enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str) -> Iterator[Container]:
    # Two loopback listeners in the container: 8081 is allowed, 8082 is not.
    loop = "while true; do echo pong | nc -l -p {p} >/dev/null; done"
    yield from _box(
        enforcer,
        dockerd,
        testbox_image,
        "egress",
        "sh",
        "-c",
        f"({loop.format(p=8081)}) & ({loop.format(p=8082)}) & sleep 1000000",
    )


@pytest.fixture(scope="module")
def plain(enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str) -> Iterator[Container]:
    yield from _box(enforcer, dockerd, testbox_image, "plain")


def _records(
    enforcer: EnforcerProcess, c: Container, rule: str, key: str, value: str, count: int = 1
) -> list[dict[str, Any]]:
    return enforcer.wait_records(
        lambda r: (
            r.get("container", {}).get("name") == c.name
            and r.get("rule") == rule
            and str(r.get("target", {}).get(key, "")) == value
        ),
        count,
    )


def _image_executables(c: Container) -> list[str]:
    out = c.exec("find", "/", "-xdev", "-type", "f", "-perm", "-100", check=True).stdout.split()
    assert "/bin/busybox" in out and HELPER in out
    # dockerd writes /.dockerenv (empty, mode 0755) into the container's writable layer at
    # create: not an image file, so drift prevention rightly refuses to exec it
    return sorted(p for p in out if p != "/.dockerenv")


# ----- drift prevention -------------------------------------------------------------------
def test_every_image_binary_runs_under_drift_prevention(drift: Container, enforcer: EnforcerProcess) -> None:
    for path in _image_executables(drift):
        # execveat of the file itself, argv[0] "true": busybox copies run the applet; the
        # helper runs with no command (a usage error, not a refused exec)
        result = drift.exec(HELPER, "execfd", path, "true")
        assert "ERR 1 execveat" not in result.stderr, (path, result.stderr)
    assert drift.exec("sh", "-c", "ls / | wc -l && echo ok").returncode == 0
    time.sleep(1.5)  # records fold for a second
    denied = [r for r in enforcer.records() if r.get("container", {}).get("name") == drift.name]
    assert denied == []


def _exec_denied(c: Container, *command: str) -> None:
    result = c.exec(*command)
    assert result.returncode != 0, result
    assert EPERM_TEXT in result.stderr.lower() or "ERR 1 " in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("setup", "command", "path"),
    [
        pytest.param("cp /bin/busybox /tmp/bb", ["/tmp/bb", "true"], "/tmp/bb", id="copied-binary"),
        pytest.param(
            "printf '#!/bin/sh\\necho hi\\n' >/tmp/s.sh && chmod +x /tmp/s.sh",
            ["/tmp/s.sh"],
            "/tmp/s.sh",
            id="new-script-exec-directly",
        ),
        pytest.param("true", ["/vol/bb", "true"], "/vol/bb", id="binary-on-a-volume"),
        pytest.param("cp /bin/busybox /scratch/bb", ["/scratch/bb", "true"], "/scratch/bb", id="binary-on-tmpfs"),
        pytest.param(
            "cp /bin/wget /bin/wget2", ["/bin/wget2", "true"], "/bin/wget2", id="copy-beside-the-image-binaries"
        ),
    ],
)
def test_drift_is_denied_with_a_posture_record(
    drift: Container, enforcer: EnforcerProcess, setup: str, command: list[str], path: str
) -> None:
    assert drift.exec("sh", "-c", setup).returncode == 0
    _exec_denied(drift, *command)
    (record,) = _records(enforcer, drift, "posture.exec", "path", path)
    assert (record["policy"], record["action"], record["hook"]) == ("drift", "deny", "exec")


def test_a_script_given_to_the_shell_is_data_not_an_exec(drift: Container) -> None:
    drift.exec("sh", "-c", "printf 'echo data-ok\\n' >/tmp/data.sh", check=True)
    assert drift.exec("sh", "/tmp/data.sh").stdout.strip() == "data-ok"


def test_a_memfd_exec_is_denied(drift: Container, enforcer: EnforcerProcess) -> None:
    _exec_denied(drift, HELPER, "memfd-exec", "/bin/busybox", "true")
    records = enforcer.wait_records(
        lambda r: (
            r.get("container", {}).get("name") == drift.name
            and r.get("rule") == "posture.exec"
            and "memfd:payload" in r["target"].get("path", "")
        )
    )
    assert records, enforcer.records()[-3:]
    assert records[0]["hook"] == "exec" and records[0]["policy"] == "drift"


@pytest.mark.parametrize(
    ("setup", "command", "path_part"),
    [
        pytest.param(
            "cp /bin/busybox /tmp/preload.so",
            [HELPER, "mmap-exec", "/tmp/preload.so"],
            "/tmp/preload.so",
            id="non-image-object-mapped-executable",
        ),
        pytest.param(
            "cp /bin/busybox /tmp/late.so",
            [HELPER, "mprotect-exec", "/tmp/late.so"],
            "/tmp/late.so",
            id="mprotect-to-executable",
        ),
        pytest.param(
            "true", [HELPER, "memfd-mmap-exec", "/bin/busybox"], "memfd:payload", id="memfd-mapped-executable"
        ),
    ],
)
def test_code_mapped_from_outside_the_image_is_denied(
    drift: Container, enforcer: EnforcerProcess, setup: str, command: list[str], path_part: str
) -> None:
    """What ld.so does for LD_PRELOAD or a dlopen: map an object PROT_EXEC (the image is
    static, so the mapping is made by the helper rather than by ld.so)."""
    assert drift.exec("sh", "-c", setup).returncode == 0
    result = drift.exec(*command)
    assert result.returncode == 1 and "ERR 1" in result.stderr, result.stderr
    records = enforcer.wait_records(
        lambda r: (
            r.get("container", {}).get("name") == drift.name
            and r.get("rule") == "posture.exec"
            and r["hook"] == "mmap_file"
            and path_part in r["target"].get("path", "")
        )
    )
    assert records, enforcer.records()[-5:]


def test_an_image_binary_changed_in_the_container_is_no_longer_the_image(
    drift: Container, enforcer: EnforcerProcess
) -> None:
    assert drift.exec("/bin/nc", "--help").returncode != 126  # runs before (usage is fine)
    drift.exec("chmod", "0755", "/bin/nc", check=True)  # copy-up, ctime now
    _exec_denied(drift, "/bin/nc", "--help")
    assert _records(enforcer, drift, "posture.exec", "path", "/bin/nc")


# ----- fileWrite posture ------------------------------------------------------------------
def test_a_write_posture_denies_writes_outside_the_allowed_dirs(rofs: Container, enforcer: EnforcerProcess) -> None:
    assert rofs.exec("sh", "-c", "echo ok >/tmp/x && cat /tmp/x && echo >/dev/null").stdout.strip() == "ok"
    assert rofs.exec("cat", "/etc/passwd").returncode == 0  # reads are not touched
    result = rofs.exec("sh", "-c", "echo x >/etc/new-file")
    assert result.returncode != 0 and EPERM_TEXT in result.stderr.lower()
    (record,) = _records(enforcer, rofs, "posture.fileWrite", "path", "/etc/new-file")
    assert (record["policy"], record["action"]) == ("rofs", "deny")
    result = rofs.exec("sh", "-c", "echo x >>/etc/passwd")
    assert result.returncode != 0 and EPERM_TEXT in result.stderr.lower()
    assert _records(enforcer, rofs, "posture.fileWrite", "path", "/etc/passwd")
    assert rofs.exec("/tmp/../bin/busybox", "true").returncode == 0  # exec posture is allow


# ----- egress posture ---------------------------------------------------------------------
def test_an_egress_posture_allows_the_allowed_port_only(egress: Container, enforcer: EnforcerProcess) -> None:
    deadline = time.monotonic() + 10
    while True:
        ok = egress.exec("sh", "-c", "echo ping | nc -w 2 127.0.0.1 8081")
        if ok.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)  # the listeners start with the container
    assert ok.returncode == 0 and "pong" in ok.stdout, ok
    denied = egress.exec("sh", "-c", "echo ping | nc -w 2 127.0.0.1 8082")
    assert denied.returncode != 0 and EPERM_TEXT in denied.stderr.lower(), denied
    (record,) = _records(enforcer, egress, "posture.egress", "port", "8082")
    assert (record["policy"], record["action"], record["hook"]) == ("egress", "deny", "connect")


# ----- postures all allow -----------------------------------------------------------------
def test_postures_all_allow_change_nothing(plain: Container, enforcer: EnforcerProcess) -> None:
    assert plain.exec("sh", "-c", "cp /bin/busybox /tmp/true && /tmp/true && echo x >/etc/w").returncode == 0
    assert plain.exec(HELPER, "memfd-exec", "/bin/busybox", "true").returncode == 0
    result = plain.exec("cat", "/etc/shadow")
    assert result.returncode != 0 and EPERM_TEXT in result.stderr.lower()
    (record,) = _records(enforcer, plain, "file[0]", "path", "/etc/shadow")
    assert record["policy"] == "plain"
    time.sleep(1.5)
    posture = [
        r
        for r in enforcer.records()
        if str(r.get("rule", "")).startswith("posture.") and r.get("container", {}).get("name") == plain.name
    ]
    assert posture == []


# ----- the runtime's set-up is not judged -------------------------------------------------
def test_a_container_started_under_exec_and_write_deny_starts_and_is_judged(
    enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str
) -> None:
    """runc's init opens, writes and execs (its sealed copy) before the entrypoint; under a
    policy selecting every container it runs judged from the first instruction, so only
    the unjudged set-up lets the container start. Then the container's own operations are
    judged, `docker exec` sessions too."""
    mark = len(enforcer.log())
    (enforcer.policies / "everyone.yaml").write_text(EVERYONE)
    enforcer.wait_log(
        lambda e: (
            e.get("event") == "containers not registered yet are judged by"
            and "everyone-strict" in e.get("policies", [])
        ),
        timeout=30,
        after=mark,
    )
    c = run_container(
        dockerd,
        testbox_image,
        "sh",
        "-c",
        "cp /bin/busybox /tmp/bb; /tmp/bb true 2>/tmp/err; echo $? >/tmp/rc; sleep 1000000",
        name="enforcer-posture-everyone",
    )
    try:
        deadline = time.monotonic() + 30
        while c.exec("test", "-s", "/tmp/rc").returncode != 0:
            assert time.monotonic() < deadline, dockerd.cli("logs", c.id, check=False)
            time.sleep(0.2)
        assert c.exec("cat", "/tmp/rc").stdout.strip() != "0"  # the entrypoint's copy: denied
        assert c.exec("echo", "exec works").stdout.strip() == "exec works"
        result = c.exec("sh", "-c", "echo x >/etc/blocked")
        assert result.returncode != 0 and EPERM_TEXT in result.stderr.lower()
        # the entrypoint may have run before the daemon saw the container: no name yet
        assert enforcer.wait_records(
            lambda r: (
                r.get("rule") == "posture.exec"
                and r.get("policy") == "everyone-strict"
                and r["target"].get("path") == "/tmp/bb"
            )
        )
        (record,) = _records(enforcer, c, "posture.fileWrite", "path", "/etc/blocked")
        assert record["policy"] == "everyone-strict"
    finally:
        c.remove()
        (enforcer.policies / "everyone.yaml").unlink()
