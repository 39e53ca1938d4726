"""The generaliser: observed operations -> the policy a person would write. Whatever it
writes must pass `enforcer check` and replay clean against what it was learned from."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from enforcer.learn.generalise import Learned, fold_paths, generalise, is_temp_name
from enforcer.learn.operations import DeviceOp, ExecOp, FileOp, NetOp, Operation, SockOp
from enforcer.learn.recording import ContainerFacts, RecordingWriter, read_events
from enforcer.learn.replay import replay
from enforcer.policy.loader import parse_text
from enforcer.policy.model import Policy

R, W, RW = frozenset({"read"}), frozenset({"write"}), frozenset({"read", "write"})


def policy_of(text: str) -> Policy:
    policies, errors = parse_text(text, "learned.yaml")
    assert errors == [], "\n".join(map(str, errors)) + "\n" + text
    (lp,) = policies
    return lp.policy


def replay_clean(
    ops: list[tuple[Operation, int]], text: str, tmp_path: Path, labels: dict[str, str] | None = None
) -> None:
    """The learned policy judges every operation it was learned from as allowed."""
    buf = io.StringIO()
    writer = RecordingWriter(buf, ContainerFacts("web", "web:1", "c" * 64, labels or {}))
    for op, n in ops:
        writer.observe(op, n, "sh")
    writer.end(lost=0)
    rec = tmp_path / "rec.jsonl"
    rec.write_text(buf.getvalue())
    result = replay([policy_of(text)], read_events(str(rec)))
    assert result.operations == sum(n for _, n in ops)
    assert (result.denied, result.audited, dict(result.findings)) == (0, 0, {}), text


SERVICE: list[tuple[Operation, int]] = [
    (ExecOp("exec", "/bin/busybox", True), 12),
    (ExecOp("exec", "/usr/local/bin/entrypoint.sh", False), 1),
    (ExecOp("mmap_file", "/lib/ld-musl-x86_64.so.1", True), 13),
    (FileOp("file_open", "/etc/passwd", R), 3),
    (FileOp("file_open", "/etc/hosts", R), 2),
    *[(FileOp("file_open", f"/srv/www/page{i}.html", R), 2) for i in range(6)],
    *[(FileOp("file_open", f"/var/cache/app/item{i}", W), 1) for i in range(5)],
    (FileOp("file_open", "/tmp/tmp.Ab3xQ9zz", RW), 1),
    (FileOp("file_open", "/tmp/sh-thd.k2Jd8s", W), 1),
    (FileOp("file_open", "/proc/4242/stat", R), 7),
    (FileOp("path_unlink", "/run/app/app.pid", W), 1),
    (DeviceOp("device", "char", 1, 3, RW), 9),
    (NetOp("connect", "egress", "inet", "tcp", "127.0.0.1", 8080), 4),
    (NetOp("sendmsg", "egress", "inet", "udp", "127.0.0.11", 53), 6),
    (NetOp("sendmsg", "egress", "inet", "udp", "127.0.0.1", 45123), 2),
    (NetOp("sendmsg", "egress", "inet", "udp", "127.0.0.1", 51877), 2),
    (NetOp("bind", "ingress", "inet6", "tcp", "::", 80), 1),
    (NetOp("bind", "ingress", "inet", "udp", "127.0.0.1", 0), 1),
    (SockOp("sock_create", "inet", "stream"), 5),
    (SockOp("sock_create", "inet", "dgram"), 7),
    (SockOp("sock_create", "unix", "stream"), 1),
]


def test_the_service_policy_is_valid_and_replays_clean(tmp_path: Path) -> None:
    text = generalise(Learned("web", "web:1", SERVICE, seconds=60))
    policy = policy_of(text)
    assert policy.name == "learned-web"
    assert policy.spec.mode == "audit"
    assert policy.spec.selector.images == ("web:1",)
    replay_clean(SERVICE, text, tmp_path)


def test_a_deny_posture_for_each_class_with_observations_only() -> None:
    only_exec: list[tuple[Operation, int]] = [
        (ExecOp("exec", "/bin/sh", True), 1),
        (NetOp("connect", "egress", "inet", "tcp", "127.0.0.1", 80), 1),
    ]
    posture = policy_of(generalise(Learned("w", "w", only_exec))).spec.posture
    assert (posture.exec, posture.egress) == ("deny", "deny")
    assert (posture.file_read, posture.file_write, posture.ingress, posture.device, posture.socket) == ("allow",) * 5


def test_every_rule_says_how_many_operations_it_covers() -> None:
    lines = generalise(Learned("web", "web:1", SERVICE)).splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "- action: allow":
            assert lines[i - 1].strip().startswith("#") and "operation" in lines[i - 1], line
    assert "    # executed: 13 operations" in lines
    assert '        - "/bin/busybox"                  # 12' in lines


def test_writes_under_one_directory_become_a_dir_rule_and_temp_names_fold() -> None:
    spec = policy_of(generalise(Learned("web", "web:1", SERVICE))).spec
    write = next(r for r in spec.file if r.access == ("write",))
    assert write.dirs == ("/tmp", "/var/cache/app")
    assert write.paths == ("/run/app/app.pid",)  # one file: named, not its directory
    read = next(r for r in spec.file if r.access == ("read",))
    assert set(read.dirs) == {"/srv/www", "/proc", "/tmp"}  # 6 pages; a pid; a temp file
    assert set(read.paths) == {"/etc/passwd", "/etc/hosts"}


def test_executables_are_exact_but_mapped_libraries_fold() -> None:
    libs: list[tuple[Operation, int]] = [(ExecOp("mmap_file", f"/usr/lib/lib{i}.so", True), 1) for i in range(5)]
    spec = policy_of(generalise(Learned("w", "w", SERVICE + libs))).spec
    assert spec.exec[0].paths == ("/bin/busybox", "/usr/local/bin/entrypoint.sh")
    assert spec.exec[0].dirs == ()
    assert spec.exec[1].dirs == ("/usr/lib",)


def test_ephemeral_reply_ports_are_one_range_and_wildcard_binds_any_address() -> None:
    spec = policy_of(generalise(Learned("web", "web:1", SERVICE))).spec
    udp_out = [r for r in spec.network if r.direction == "egress" and r.protocol == "udp"]
    assert sorted(r.ports for r in udp_out) == [((53, 53),), ((32768, 65535),)]
    tcp_in = next(r for r in spec.network if r.direction == "ingress" and r.protocol == "tcp")
    assert (tcp_in.cidrs, tcp_in.ports) == (None, ((80, 80),))
    udp_in = next(r for r in spec.network if r.direction == "ingress" and r.protocol == "udp")
    assert (udp_in.cidrs, udp_in.ports) == (("127.0.0.1/32",), ())  # port 0: any free port


def test_many_addresses_for_one_port_become_any_address(tmp_path: Path) -> None:
    ops: list[tuple[Operation, int]] = [
        (NetOp("connect", "egress", "inet", "tcp", f"127.0.0.{i}", 443), 1) for i in range(1, 12)
    ]
    text = generalise(Learned("w", "w", ops))
    (rule,) = policy_of(text).spec.network
    assert (rule.cidrs, rule.ports) == (None, ((443, 443),))
    assert "# 11 addresses: any address" in text
    replay_clean(ops, text, tmp_path)


def test_labels_select_instead_of_the_image(tmp_path: Path) -> None:
    labels = {"app": "web", "tier": "front"}
    text = generalise(Learned("web", "web:1", SERVICE, labels=labels))
    selector = policy_of(text).spec.selector
    assert (selector.labels, selector.images) == (labels, None)
    replay_clean(SERVICE, text, tmp_path, labels=labels)


def test_losses_and_denials_are_said_in_the_policy() -> None:
    text = generalise(Learned("web", "web:1", SERVICE, lost=3, denied=2))
    assert "# WARNING: 3 operations were seen by the kernel but lost" in text
    assert "# 2 operations were denied by the policies in force while" in text


def test_names_that_need_quoting_stay_valid(tmp_path: Path) -> None:
    ops: list[tuple[Operation, int]] = [
        (FileOp("file_open", '/data/a: "b" #c', R), 1),
        (ExecOp("exec", "/opt/x y/run", False), 1),
    ]
    text = generalise(Learned("Web_App.1", "registry:5000/team/web:1", ops))
    assert policy_of(text).name == "learned-web-app.1"
    replay_clean(ops, text, tmp_path)


@pytest.mark.parametrize(
    ("name", "temp"),
    [
        ("tmpa8f3k2", True),
        ("tmp.XyZ123", True),
        ("sh-thd.Ab3xQ9", True),
        ("4242", True),
        ("x.tmp", True),
        ("a.swp", True),
        ("0123456789abcdef01", True),
        ("passwd", False),
        ("libc.so.6", False),
        ("python3.11", False),
        ("x86_64-linux-gnu", False),
        ("nginx.conf", False),
        ("index.html", False),
        ("ld-musl-x86_64.so.1", False),
    ],
)
def test_temp_like_names(name: str, temp: bool) -> None:
    assert is_temp_name(name) is temp


def test_fold_paths_never_folds_to_root_and_covers_every_path() -> None:
    counts = {f"/f{i}": 1 for i in range(10)} | {"/a/b/c1": 1, "/a/b/c2": 1, "/a/b/c3": 1, "/a/b/c4": 1, "/a/d": 2}
    folded = fold_paths(counts)
    assert "/" not in folded.dirs
    assert folded.dirs == {"/a/b": 4}
    assert folded.total == sum(counts.values())


def test_random_workloads_replay_clean(tmp_path: Path) -> None:
    rng = random.Random(16)
    dirs = ["/etc", "/usr/lib", "/var/lib/app", "/tmp", "/srv/data/x", "/run"]
    for _ in range(25):
        ops: list[tuple[Operation, int]] = []
        for _ in range(rng.randint(1, 40)):
            d = rng.choice(dirs)
            name = rng.choice(
                [
                    "a",
                    "b",
                    "c",
                    "d",
                    "e",
                    "tmp" + "".join(rng.choices("abc123", k=6)),
                    str(rng.randint(1, 99999)),
                    "x.tmp",
                    "conf.d",
                ]
            )
            kind = rng.randrange(6)
            if kind == 0:
                op: Operation = FileOp(
                    "file_open", f"{d}/{name}", frozenset(rng.sample(["read", "write"], rng.randint(1, 2)))
                )
            elif kind == 1:
                op = ExecOp(rng.choice(["exec", "mmap_file"]), f"{d}/{name}", rng.random() < 0.5)
            elif kind == 2:
                op = NetOp(
                    rng.choice(["connect", "sendmsg", "bind"]),
                    "egress",
                    "inet",
                    rng.choice(["tcp", "udp", "icmp"]),
                    f"127.0.0.{rng.randint(0, 20)}",
                    rng.choice([0, 53, 80, 8080, 40000, 60001, 65535]),
                )
                if op.hook == "bind":
                    op = NetOp("bind", "ingress", op.family, op.protocol, op.address, op.port)
            elif kind == 3:
                op = DeviceOp(
                    "device",
                    rng.choice(["char", "block"]),
                    rng.randint(0, 10),
                    rng.randint(0, 10),
                    frozenset(rng.sample(["read", "write", "mknod"], 1)),
                )
            elif kind == 4:
                op = SockOp(
                    "sock_create",
                    rng.choice(["inet", "inet6", "unix", "netlink"]),
                    rng.choice(["stream", "dgram", "raw"]),
                )
            else:
                op = NetOp(
                    "connect", "egress", "inet6", "tcp", rng.choice(["::1", "::ffff:127.0.0.1"]), rng.randint(1, 65535)
                )
            ops.append((op, rng.randint(1, 5)))
        replay_clean(ops, generalise(Learned("w", "w:1", ops)), tmp_path)
