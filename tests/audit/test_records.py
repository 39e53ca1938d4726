"""Audit records: the SPEC's shape, and folding that hides no denial."""

from __future__ import annotations

import io
import json
import time

from enforcer.audit.events import FileEvent
from enforcer.audit.records import UNRESOLVED, AuditFolder, AuditRecord, AuditWriter
from enforcer.compiler.rules import RuleRef
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo

WEB = ContainerInfo(
    id="e" * 64, name="web", image="nginx:1.25", labels={}, pid=10, cgroup=CgroupRef("/sys/fs/cgroup/docker/x", 77)
)
RULE = RuleRef("protect-credentials", "file[0]")


def _event(path: str = "/etc/shadow", action: str = "deny", pid: int = 1234, **kw: object) -> FileEvent:
    fields: dict[str, object] = {
        "hook": "file_open",
        "action": action,
        "cgroup_id": 77,
        "pid": pid,
        "uid": 0,
        "comm": "cat",
        "rule_id": 1,
        "path": path,
        "access": frozenset({"read"}),
        "truncated": False,
        "ktime_ns": time.clock_gettime_ns(time.CLOCK_BOOTTIME),
    }
    fields.update(kw)
    return FileEvent(**fields)  # type: ignore[arg-type]


def test_a_denial_record_has_the_spec_fields() -> None:
    rec = AuditRecord(_event(), RULE, WEB).to_json()
    assert list(rec) == [
        "timestamp",
        "hook",
        "action",
        "errno",
        "policy",
        "rule",
        "container",
        "process",
        "target",
        "count",
    ]
    assert rec["errno"] == "EPERM" and rec["policy"] == "protect-credentials" and rec["rule"] == "file[0]"
    assert rec["container"] == {"id": "e" * 64, "name": "web", "image": "nginx:1.25"}
    assert rec["process"] == {"pid": 1234, "comm": "cat", "uid": 0}
    assert rec["target"] == {"path": "/etc/shadow", "access": "read"}
    assert (
        rec["timestamp"].endswith("Z")
        and abs(time.time() - time.mktime(time.strptime(rec["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) + time.timezone)
        < 5
    )


def test_an_audit_record_has_no_errno_and_an_unresolvable_path_says_so() -> None:
    assert "errno" not in AuditRecord(_event(action="audit"), RULE, WEB).to_json()
    rec = AuditRecord(_event(path="/d/d/f", truncated=True), UNRESOLVED, WEB).to_json()
    assert rec["target"]["path"] == ".../d/d/f"
    assert (rec["policy"], rec["rule"]) == ("enforcer", "unresolved-path")


def test_exec_records_say_exec() -> None:
    rec = AuditRecord(_event(hook="exec", path="/bin/nc", access=frozenset({"exec"})), RULE, WEB).to_json()
    assert rec["hook"] == "exec" and rec["target"] == {"path": "/bin/nc", "access": "exec"}


def test_identical_repeats_fold_and_the_counts_add_up() -> None:
    out = io.StringIO()
    writer = AuditWriter(out)
    folder = AuditFolder(writer, window=1.0)
    t = 100.0
    for i in range(500):
        folder.add(AuditRecord(_event(pid=1000 + i), RULE, WEB), now=t + i * 0.001)
    folder.add(AuditRecord(_event(path="/etc/gshadow"), RULE, WEB), now=t + 0.6)  # not identical
    folder.flush_due(now=t + 2)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    shadow = [r for r in records if r["target"]["path"] == "/etc/shadow"]
    assert [r["count"] for r in shadow] == [1, 499]  # the first at once, the rest folded
    assert shadow[1]["process"]["pid"] == 1499  # the folded record reports the last one
    assert [r["count"] for r in records if r["target"]["path"] == "/etc/gshadow"] == [1]
    assert writer.events == 501


def test_a_repeat_after_the_window_starts_a_new_record() -> None:
    out = io.StringIO()
    folder = AuditFolder(AuditWriter(out), window=1.0)
    folder.add(AuditRecord(_event(), RULE, WEB), now=0.0)
    folder.add(AuditRecord(_event(), RULE, WEB), now=0.5)
    folder.add(AuditRecord(_event(), RULE, WEB), now=1.5)  # window over: flush 1, new record
    folder.flush_all()
    assert [json.loads(line)["count"] for line in out.getvalue().splitlines()] == [1, 1, 1]


def test_different_containers_never_fold_together() -> None:
    out = io.StringIO()
    folder = AuditFolder(AuditWriter(out), window=10.0)
    other = ContainerInfo(
        id="f" * 64, name="db", image="postgres", labels={}, pid=11, cgroup=CgroupRef("/sys/fs/cgroup/docker/y", 78)
    )
    folder.add(AuditRecord(_event(), RULE, WEB), now=0.0)
    folder.add(AuditRecord(_event(cgroup_id=78), RULE, other), now=0.1)
    assert len(out.getvalue().splitlines()) == 2


def test_lines_are_what_json_dumps_writes_for_any_path() -> None:
    """The fast encoder changes no byte: non-ASCII and non-UTF-8 paths are escaped as before."""
    from enforcer.audit.records import encode

    for path in ("/etc/shadow", "/srv/caf\u00e9/menu", "/tmp/\udcffraw", "/x/\u2603/\U0001f600"):
        rec = AuditRecord(_event(path=path), RULE, WEB).to_json()
        assert encode(rec) == json.dumps(rec, separators=(",", ":"))
        assert encode(rec).isascii()
