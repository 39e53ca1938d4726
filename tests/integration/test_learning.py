"""`enforcer learn` on a real container under the real daemon, then the learned policy
enforced (runs in the VM).

A small service (a shell loop that reads, writes, execs, listens and connects over loopback)
is learned for a while, with one `docker exec` maintenance command among it. The learned
policy passes `enforcer check`, replays clean against its own recording, and once promoted
to `mode: enforce` the same workload runs with no denial, while every drift (a copied
binary, a new script, a binary on a volume, a memfd exec, an object mapped executable as
LD_PRELOAD would, a write outside the learned places, a connection to an unlearned port) is
denied with a posture record.

Last, replay is held to the kernel: for generated policy sets (rules, postures, `origin:
image`) on one container, every probe (an open for read or write, an exec) is denied by the
kernel exactly when `enforcer replay` says it would be.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.learn.operations import ExecOp, FileOp, Operation
from enforcer.learn.recording import ContainerFacts, RecordingWriter, read_events
from enforcer.learn.replay import replay
from enforcer.policy.loader import parse_text
from tests.images.bypass import HELPER
from tests.integration.dockerd import Container, PrivateDockerd, run_container
from tests.integration.enforcer_proc import EnforcerProcess, running
from tests.integration.helpers import busybox_volume

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

UNRELATED = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: unrelated}
spec:
  selector: {labels: {app: something-else}}
  file:
    - {action: deny, paths: [/etc/shadow]}
"""
# One iteration: busybox applets (its shell runs even the /bin/nc copy as /bin/busybox), a
# read, writes spread over a few files of one directory, a loopback connection to its own
# listener (bind + connect).
SERVICE = r"""
mkdir -p /var/svc
(while true; do echo pong | nc -l -p 8081 >/dev/null; done) &
i=0
while true; do
  i=$((i + 1))
  cat /etc/passwd >/dev/null
  date >/var/svc/out-$((i % 6)).log
  echo ping | nc -w 1 127.0.0.1 8081 >/dev/null
  sleep 0.3
done
"""
MAINTENANCE = (HELPER, "open", "/etc/passwd", "r")  # what an operator runs with docker exec
LEARN_SECONDS = 25


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enforcer", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def volume() -> Iterator[Path]:
    with busybox_volume("enf-learn-vol-") as d:
        yield d


@pytest.fixture(scope="module")
def enforcer(tmp_path_factory: pytest.TempPathFactory, dockerd: PrivateDockerd) -> Iterator[EnforcerProcess]:
    proc = EnforcerProcess.with_policies(tmp_path_factory, dockerd.host, {"unrelated.yaml": UNRELATED})
    with running(proc):
        yield proc


@pytest.fixture(scope="module")
def service(
    enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str, volume: Path
) -> Iterator[Container]:
    mark = len(enforcer.log())
    c = run_container(
        dockerd,
        testbox_image,
        "sh",
        "-c",
        SERVICE,
        name="enforcer-learn-svc",
        labels={"app": "learn-svc"},
        extra_args=["-v", f"{volume}:/vol"],
    )
    try:
        enforcer.wait_enforced(c.name, after=mark)
        # The attacker's files exist before learning starts, so learning never sees them made.
        c.exec(
            "sh",
            "-c",
            "cp /bin/busybox /tmp/bb && cp /bin/busybox /tmp/preload.so && "
            "printf '#!/bin/sh\\necho hi\\n' >/tmp/s.sh && chmod +x /tmp/s.sh",
            check=True,
        )
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module")
def learned(service: Container, enforcer: EnforcerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("learned")
    policy, recording, log = out / "learned.yaml", out / "recording.jsonl", out / "learn.stderr"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "enforcer",
                "learn",
                "--container",
                service.name,
                "--duration",
                f"{LEARN_SECONDS}s",
                "--output",
                str(policy),
                "--record",
                str(recording),
                "--label",
                "app",
                "--socket",
                str(enforcer.workdir / "status.sock"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:
        # The maintenance runs once learn has started recording (its first progress line).
        deadline = time.monotonic() + 60
        while f"learning {service.name}:" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        for _ in range(2):
            assert service.exec(*MAINTENANCE).returncode == 0
        proc.wait(timeout=LEARN_SECONDS + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log.read_text()
    assert proc.returncode == 0, stderr
    text = policy.read_text()
    print(f"learned policy:\n{text}")  # shown with any failure of the specs that read it
    return {"policy": policy, "recording": recording, "stderr": stderr, "text": text}


@pytest.fixture(scope="module")
def promoted(learned: dict[str, Any], service: Container, enforcer: EnforcerProcess) -> Container:
    mark = len(enforcer.log())
    enforced = learned["text"].replace("mode: audit", "mode: enforce")
    assert enforced != learned["text"]
    (enforcer.policies / "learned.yaml").write_text(enforced)
    enforcer.wait_log(lambda e: e.get("event") == "policies reloaded", after=mark)
    enforcer.wait_enforced(service.name, after=mark)
    return service


# ----- learning ---------------------------------------------------------------------------
def test_learning_reports_progress_and_loses_nothing(learned: dict[str, Any]) -> None:
    assert "learning enforcer-learn-svc:" in learned["stderr"]
    assert " 0 lost " in learned["stderr"] and "WARNING" not in learned["stderr"]


def test_the_learned_policy_covers_the_workload(learned: dict[str, Any]) -> None:
    text = learned["text"]
    assert "mode: audit" in text and '"app": "learn-svc"' in text
    for seen in ("/bin/busybox", HELPER, "/etc/passwd", "/var/svc", "8081"):
        assert seen in text, (seen, text)
    assert "posture:" in text and "exec: deny" in text and "fileWrite: deny" in text
    # a directory rule for the spread writes, not one rule per file
    assert "/var/svc/out-" not in text, text
    # every rule says how many operations it covers
    lines = text.splitlines()
    rules = [i for i, ln in enumerate(lines) if ln.strip() == "- action: allow"]
    assert rules and all(lines[i - 1].strip().startswith("# ") for i in rules), text


def test_the_learned_policy_passes_check_and_replays_clean(learned: dict[str, Any]) -> None:
    check = _cli("check", str(learned["policy"]))
    assert check.returncode == 0, check.stdout + check.stderr
    replay = _cli("replay", str(learned["policy"]), "--events", str(learned["recording"]))
    assert replay.returncode == 0, replay.stdout + replay.stderr


def test_learning_left_the_audit_log_alone(
    learned: dict[str, Any], enforcer: EnforcerProcess, service: Container
) -> None:
    assert [r for r in enforcer.records() if r.get("container", {}).get("name") == service.name] == []


# ----- the learned policy enforced -------------------------------------------------------
def test_the_workload_runs_under_its_learned_policy_with_no_denial(
    promoted: Container, enforcer: EnforcerProcess
) -> None:
    before = len(enforcer.records())
    start = int(promoted.exec("date", "+%s", check=True).stdout)
    assert promoted.exec(*MAINTENANCE).returncode == 0
    # The loop goes on: each of its six files written again (stat opens nothing, so the
    # check itself stays inside the learned behaviour).
    ages = "for i in 0 1 2 3 4 5; do stat -c %Y /var/svc/out-$i.log; done"
    deadline = time.monotonic() + 40
    while min(map(int, promoted.exec("sh", "-c", ages, check=True).stdout.split())) < start:
        assert time.monotonic() < deadline, "the service stopped writing under its learned policy"
        time.sleep(1)
    time.sleep(1.5)  # records fold for a second
    mine = [r for r in enforcer.records()[before:] if r.get("container", {}).get("name") == promoted.name]
    assert mine == []


@pytest.mark.parametrize(
    ("command", "path"),
    [
        pytest.param(["/tmp/bb", "true"], "/tmp/bb", id="copied-binary"),
        pytest.param(["/tmp/s.sh"], "/tmp/s.sh", id="new-script"),
        pytest.param(["/vol/bb", "true"], "/vol/bb", id="binary-on-a-volume"),
        pytest.param([HELPER, "memfd-exec", "/bin/busybox", "true"], "memfd:payload", id="memfd-exec"),
        pytest.param([HELPER, "mmap-exec", "/tmp/preload.so"], "/tmp/preload.so", id="ld-preload-object"),
        pytest.param(["sh", "-c", "echo x >/etc/evil"], "/etc/evil", id="write-outside-the-learned-places"),
    ],
)
def test_drift_from_the_learned_behaviour_is_denied(
    promoted: Container, enforcer: EnforcerProcess, command: list[str], path: str
) -> None:
    result = promoted.exec(*command)
    assert result.returncode != 0, result
    records = enforcer.wait_records(
        lambda r: (
            r.get("container", {}).get("name") == promoted.name
            and str(r.get("rule", "")).startswith("posture.")
            and path in str(r.get("target", {}).get("path", ""))
        )
    )
    assert records, [(r["rule"], r["target"]) for r in enforcer.records()[-5:]]
    assert records[0]["action"] == "deny" and records[0]["errno"] == "EPERM"


def test_a_connection_to_an_unlearned_port_is_denied(promoted: Container, enforcer: EnforcerProcess) -> None:
    result = promoted.exec("sh", "-c", "echo x | nc -w 1 127.0.0.1 8082")
    assert result.returncode != 0
    records = enforcer.wait_records(
        lambda r: (
            r.get("container", {}).get("name") == promoted.name
            and r.get("rule") == "posture.egress"
            and r.get("target", {}).get("port") == 8082
        )
    )
    assert records, [(r["rule"], r["target"]) for r in enforcer.records()[-5:]]


# ----- replay decides as the kernel does --------------------------------------------------
REPLAY_LABELS = {"app": "replay-box"}
# The probe runs as `sh /var/probe.sh`, each probe an exec of the helper: what it needs
# is allowed by exact paths no generated rule names, so it runs under every generated set.
HARNESS = f"""
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {{name: replay-harness}}
spec:
  selector: {{labels: {{app: replay-box}}}}
  exec:
    - {{action: allow, paths: [/bin/busybox, {HELPER}]}}
  file:
    - {{action: allow, paths: [/bin/busybox, {HELPER}, /var/probe.sh], access: [read]}}
"""
FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/root/.ssh/id_rsa", "/home/user/notes", "/tmp/t/a", "/tmp/t/b")
DIRS = ("/etc", "/root", "/root/.ssh", "/home", "/tmp/t", "/tmp")
EXECS = (("/bin/nc", True), ("/bin/wget", True), ("/tmp/t/bb", False))  # (path, from the image)
EXEC_DIRS = ("/bin", "/tmp/t", "/tmp")
GENERATED_SETS = 6


def _generated_policy(rng: random.Random, k: int) -> str:
    def pick(seq: tuple[str, ...], most: int) -> list[str]:
        return rng.sample(list(seq), rng.randint(1, most))

    rules = []
    for _ in range(rng.randint(2, 5)):
        where = rng.choice(("paths", "dirs"))
        names = pick(FILES, 3) if where == "paths" else pick(DIRS, 2)
        access = rng.choice((["read"], ["write"], ["read", "write"]))
        rules.append(
            f"    - {{action: {rng.choice(('allow', 'deny', 'audit'))}, {where}: [{', '.join(names)}], "
            f"access: [{', '.join(access)}]}}"
        )
    execs = []
    for _ in range(rng.randint(0, 2)):
        kind = rng.choice(("paths", "dirs", "origin"))
        if kind == "origin":
            execs.append("    - {action: allow, origin: image}")
            continue
        names = pick(tuple(p for p, _ in EXECS), 2) if kind == "paths" else pick(EXEC_DIRS, 1)
        execs.append(f"    - {{action: {rng.choice(('allow', 'deny', 'audit'))}, {kind}: [{', '.join(names)}]}}")
    posture = ", ".join(
        f"{c}: {rng.choice(('allow', 'allow', 'audit', 'deny'))}" for c in ("exec", "fileRead", "fileWrite")
    )
    text = (
        f"apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {{name: generated-{k}}}\n"
        f"spec:\n  selector: {{labels: {{app: replay-box}}}}\n  posture: {{{posture}}}\n"
        "  file:\n" + "\n".join(rules) + "\n"
    )
    return text + ("  exec:\n" + "\n".join(execs) + "\n" if execs else "")


def _probes() -> list[tuple[str, list[Operation]]]:
    """(helper arguments, the operations the kernel judges for them)."""
    out: list[tuple[str, list[Operation]]] = []
    for path in FILES:
        for mode, access in (("r", "read"), ("w", "write")):
            out.append((f"open {path} {mode}", [FileOp("file_open", path, frozenset({access}))]))
    for path, image in EXECS:
        # execveat opens the file for reading, then execs it (and maps it executable)
        out.append(
            (f"execfd {path} true", [FileOp("file_open", path, frozenset({"read"})), ExecOp("exec", path, image)])
        )
    return out


@pytest.fixture(scope="module")
def replay_box(enforcer: EnforcerProcess, dockerd: PrivateDockerd, testbox_image: str) -> Iterator[Container]:
    mark = len(enforcer.log())
    c = run_container(dockerd, testbox_image, "sleep", "1000000", name="enforcer-replay-box", labels=REPLAY_LABELS)
    try:
        enforcer.wait_enforced(c.name, after=mark)
        script = "".join(
            f'"{HELPER}" {args} 2>&1; r=$?; echo; echo "P{i} $r"\n' for i, (args, _) in enumerate(_probes())
        )
        c.exec(
            "sh",
            "-c",
            "mkdir -p /tmp/t && echo a >/tmp/t/a && echo b >/tmp/t/b && "
            'echo n >/home/user/notes && cp /bin/busybox /tmp/t/bb && printf %s "$1" >/var/probe.sh',
            "sh",
            script,
            check=True,
        )
        yield c
    finally:
        c.remove()


def _kernel_decisions(c: Container) -> list[bool]:
    """True where the kernel denied the probe (the helper's EPERM, exit 1)."""
    out = c.exec("sh", "/var/probe.sh").stdout
    codes = {int(m[1]): int(m[2]) for m in re.finditer(r"^P(\d+) (\d+)$", out, re.M)}
    assert sorted(codes) == list(range(len(_probes()))), out
    for i, (args, _) in enumerate(_probes()):
        assert codes[i] in (0, 1), (args, out)  # anything else is the probe broken, not a denial
    return [codes[i] == 1 for i in range(len(_probes()))]


def _replay_decisions(texts: list[str], c: Container, image: str, tmp: Path) -> list[bool]:
    policies = []
    for text in texts:
        loaded, errors = parse_text(text, "generated.yaml")
        assert errors == [], errors
        policies += [lp.policy for lp in loaded]
    rec = tmp / "probes.jsonl"
    with rec.open("w") as fh:
        writer = RecordingWriter(fh, ContainerFacts(c.name, image, c.id, REPLAY_LABELS))
        for _, ops in _probes():
            for op in ops:
                writer.observe(op, 1, "enfhelper")
        writer.end(lost=0)
    result = replay(policies, read_events(str(rec)))
    denied = {f.op for f in result.findings if f.action == "deny"}
    return [any(op in denied for op in ops) for _, ops in _probes()]


def test_replay_decides_as_the_kernel_does_on_generated_policies(
    replay_box: Container, enforcer: EnforcerProcess, testbox_image: str, tmp_path: Path
) -> None:
    rng = random.Random(16)
    target = enforcer.policies / "generated.yaml"
    mismatches = []
    try:
        for k in range(GENERATED_SETS):
            text = _generated_policy(rng, k)
            mark = len(enforcer.log())
            target.write_text(HARNESS + "---\n" + text)
            enforcer.wait_log(lambda e: e.get("event") == "policies reloaded", after=mark)
            enforcer.wait_enforced(replay_box.name, after=mark)
            kernel = _kernel_decisions(replay_box)
            replayed = _replay_decisions([HARNESS, text], replay_box, testbox_image, tmp_path)
            mismatches += [
                (k, args, "kernel denied" if kd else "kernel allowed", text)
                for (args, _), kd, rd in zip(_probes(), kernel, replayed, strict=True)
                if kd != rd
            ]
    finally:
        target.unlink(missing_ok=True)
    assert mismatches == []
