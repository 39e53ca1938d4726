"""`enforcer replay`: recorded operations judged by the policy model's reference decisions,
folded under the rule and policy that would fire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.commands.replay import command
from enforcer.errors import EnforcerError
from enforcer.learn.operations import BadRecord, ExecOp, FileOp, NetOp, SockOp, parse_operation
from enforcer.learn.recording import read_events

HEADER = "apiVersion: enforcer/v1\nkind: ContainerPolicy\n"

DRIFT = (
    HEADER
    + """\
metadata: {name: drift}
spec:
  selector: {images: [web]}
  posture: {exec: deny, fileWrite: deny, egress: deny}
  exec:
    - {action: allow, origin: image}
    - {action: deny, paths: [/usr/bin/nc]}
  file:
    - {action: allow, dirs: [/tmp], access: [write]}
    - {action: audit, paths: [/etc/shadow], access: [read]}
  network:
    - {action: allow, direction: egress, protocol: tcp, cidrs: [127.0.0.1/32], ports: [8080]}
"""
)
OTHER = (
    HEADER
    + """\
metadata: {name: other}
spec:
  selector: {containerNames: [db]}
  posture: {socket: deny}
"""
)


def audit(
    hook: str, target: dict[str, Any], name: str = "web", image: str = "web:1", count: int = 1, action: str = "audit"
) -> dict[str, Any]:
    return {
        "timestamp": "2026-12-02T08:00:00.000000Z",
        "hook": hook,
        "action": action,
        "policy": "x",
        "rule": "file[0]",
        "container": {"id": "ab" * 32, "name": name, "image": image},
        "process": {"pid": 1, "comm": "sh", "uid": 0},
        "target": target,
        "count": count,
    }


def lines(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def run(tmp_path: Path, events: str, *args: str, policies: tuple[str, ...] = (DRIFT, OTHER)) -> tuple[int, str, str]:
    pdir = tmp_path / "policies"
    pdir.mkdir(exist_ok=True)
    for i, text in enumerate(policies):
        (pdir / f"{i}.yaml").write_text(text)
    ev = tmp_path / "events.jsonl"
    ev.write_text(events)
    result = CliRunner().invoke(command, [str(pdir), "--events", str(ev), *args])
    return result.exit_code, result.stdout, result.stderr


WEB_LOG = lines(
    audit("exec", {"path": "/bin/ls", "origin": "image"}, count=5),
    audit("exec", {"path": "/tmp/copied", "origin": "other"}, count=2),
    audit("exec", {"path": "/usr/bin/nc", "origin": "image"}),
    audit("file_open", {"path": "/tmp/x", "access": "write"}, count=3),
    audit("file_open", {"path": "/etc/passwd", "access": "read+write"}),
    audit("file_open", {"path": "/etc/shadow", "access": "read"}, count=4),
    audit("connect", {"family": "inet", "protocol": "tcp", "address": "127.0.0.1", "port": 8080}),
    audit("connect", {"family": "inet", "protocol": "tcp", "address": "127.0.0.1", "port": 9090}),
    audit("sock_create", {"family": "inet", "type": "raw"}),  # web: socket posture allow
)


def test_denials_and_audits_are_folded_under_rule_and_policy(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, WEB_LOG)
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        "denied by posture.exec of policy drift: 2 operations",
        "        2  exec /tmp/copied",
        "denied by exec[1] of policy drift: 1 operation",
        "        1  exec /usr/bin/nc (image)",
        "denied by posture.egress of policy drift: 1 operation",
        "        1  connect tcp 127.0.0.1:9090",
        "denied by posture.fileWrite of policy drift: 1 operation",
        "        1  file_open /etc/passwd read+write",
        "audited by file[1] of policy drift: 4 operations",
        "        4  file_open /etc/shadow read",
        "replay: 19 operations of 1 container: 5 would be denied, 4 audited, 10 allowed",
    ]


def test_nothing_denied_exits_0(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, lines(audit("exec", {"path": "/bin/ls", "origin": "image"})))
    assert code == 0
    assert out == "replay: 1 operation of 1 container: 0 would be denied, 0 audited, 1 allowed\n"


def test_policies_are_chosen_by_each_records_container(tmp_path: Path) -> None:
    log = lines(
        audit("sock_create", {"family": "inet", "type": "raw"}, name="db", image="pg"),
        audit("exec", {"path": "/tmp/copied"}, name="db", image="pg"),
        audit("exec", {"path": "/tmp/copied"}, name="web"),
    )  # no origin: not the image's
    code, out, _ = run(tmp_path, log, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["containers"] == ["db", "web"]
    assert [(f["container"], f["rule"], f["policy"]) for f in doc["findings"]] == [
        ("db", "posture.socket", "other"),
        ("web", "posture.exec", "drift"),
    ]
    assert (doc["operations"], doc["denied"], doc["allowed"]) == (3, 2, 1)


def test_container_filter(tmp_path: Path) -> None:
    log = lines(
        audit("sock_create", {"family": "inet", "type": "raw"}, name="db", image="pg"),
        audit("exec", {"path": "/bin/ls", "origin": "image"}),
    )
    code, out, _ = run(tmp_path, log, "--container", "web")
    assert code == 0 and out.endswith("0 would be denied, 0 audited, 1 allowed\n")


def test_records_that_cannot_be_judged_are_counted_not_hidden(tmp_path: Path) -> None:
    unnamed = audit("exec", {"path": "/tmp/x"})
    unnamed["container"] = {"id": None, "name": None, "image": None, "cgroup_id": 7}
    log = lines(
        unnamed,
        audit("file_open", {"path": "...deep/name", "access": "write"}, count=2),
        {
            "hook": "audit_loss",
            "action": "deny",
            "container": {"name": "web"},
            "target": {"counted": 9, "itemised": 6},
            "count": 3,
        },
    )
    code, out, _ = run(tmp_path, log)
    assert code == 0
    assert out == (
        "replay: 0 operations of 0 containers: 0 would be denied, 0 audited, "
        "0 allowed; 2 not decidable (path too long for the kernel to resolve); "
        "1 skipped (record names no container); 3 lost by the recording, not judged\n"
    )


def test_a_learn_recording_gives_its_container_to_every_line(tmp_path: Path) -> None:
    rec = lines(
        {
            "recording": "enforcer-learn/v1",
            "started": "2026-12-02T08:00:00Z",
            "container": {"id": None, "name": "web", "image": "web:1", "labels": {}},
        },
        {"hook": "exec", "target": {"path": "/tmp/y", "origin": "other"}, "count": 2},
        {"end": "2026-12-02T08:01:00Z", "operations": 2, "lost": 4},
    )
    code, out, _ = run(tmp_path, rec)
    assert code == 1
    assert out.splitlines()[-1] == (
        "replay: 2 operations of 1 container: 2 would be denied, "
        "0 audited, 0 allowed; 4 lost by the recording, not judged"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json\n", "events.jsonl:1: not a JSON object"),
        ("[1]\n", "events.jsonl:1: not a JSON object"),
        ('{"hook": "exec"}\n', "events.jsonl:1: target must be an object"),
        ('{"hook": "teleport", "target": {}}\n', "events.jsonl:1: unknown hook 'teleport'"),
        ('{"hook": "file_open", "target": {"path": "/x", "access": "fly"}}\n', "events.jsonl:1: target.access 'fly'"),
        (
            '{"hook": "exec", "target": {"path": "rel"}, "count": 0}\n',
            "events.jsonl:1: count must be a positive integer",
        ),
        ('{"recording": "enforcer-learn/v9"}\n', "is not 'enforcer-learn/v1'"),
    ],
)
def test_bad_events_are_one_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    code, out, err = run(tmp_path, text)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_bad_policy_exits_2_with_its_position(tmp_path: Path) -> None:
    bad = HEADER + "metadata: {name: bad}\nspec:\n  posture: {exec: block}\n"
    code, _, err = run(tmp_path, WEB_LOG, policies=(bad,))
    assert code == 2
    assert "0.yaml:5:19: spec.posture.exec: unknown posture 'block'" in err


def test_missing_events_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(DRIFT)
    result = CliRunner().invoke(command, [str(tmp_path / "p.yaml"), "--events", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_parse_operation_covers_every_hook_family() -> None:
    assert parse_operation("mmap_file", {"path": "/lib/x.so"}) == ExecOp("mmap_file", "/lib/x.so", False)
    assert parse_operation("path_unlink", {"path": "/a//b", "access": "write"}) == (
        FileOp("path_unlink", "/a/b", frozenset({"write"}))
    )
    assert parse_operation("bind", {"family": "inet6", "protocol": "udp", "address": "::1", "port": 53}) == NetOp(
        "bind", "ingress", "inet6", "udp", "::1", 53
    )
    assert parse_operation("sock_create", {"family": "netlink", "type": "dgram"}) == (
        SockOp("sock_create", "netlink", "dgram")
    )
    assert parse_operation("audit_loss", {}) is None
    with pytest.raises(BadRecord):
        parse_operation("connect", {"family": "inet", "protocol": "tcp", "address": "nope", "port": 1})


def test_read_events_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text(lines(audit("exec", {"path": "/bin/ls"})) + "\n" + '{"hook": 3}\n')
    with pytest.raises(EnforcerError, match=r"e.jsonl:3: hook must be a non-empty string"):
        read_events(str(p))
