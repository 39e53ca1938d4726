"""A Daemon-like fake for the operator surfaces: a real StatusDocument built by the real
collector from hand-made inputs (policies parsed from text, a RuleTable, counters)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo
from enforcer.policy.errors import PolicyError
from enforcer.policy.loader import FileResult, PolicySet, parse_text
from enforcer.status.collect import StatusInputs, TrackedContainer, build
from enforcer.status.model import StatusDocument

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: protect-credentials}
spec:
  file:
    - {action: deny, paths: [/etc/shadow]}
    - {action: audit, paths: [/etc/hostname]}
  device:
    - {action: deny, type: char, major: 1, minor: 1}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: audit-package-managers}
spec:
  mode: audit
  exec:
    - {action: deny, paths: [/usr/bin/apt]}
"""


@dataclass
class FakeMap:
    entries: int
    max_entries: int

    def count(self) -> int:
        return self.entries


def policy_set() -> PolicySet:
    loaded, errors = parse_text(POLICY, "/etc/enforcer/policies/base.yaml")
    assert not errors
    bad = FileResult(
        "/etc/enforcer/policies/broken.yaml",
        errors=(PolicyError("/etc/enforcer/policies/broken.yaml", 7, 9, "unknown key 'path'"),),
    )
    return PolicySet(entries=tuple(loaded), files=(FileResult(loaded[0].file, tuple(loaded)), bad))


def container(name: str = "web", cgroup_id: int = 4242) -> ContainerInfo:
    return ContainerInfo(
        id="eeb261d1124382de" + "0" * 48,
        name=name,
        image="nginx:1.25",
        labels={},
        pid=1234,
        cgroup=CgroupRef("/sys/fs/cgroup/x", cgroup_id),
    )


@dataclass
class FakeOpenCache:
    enabled: bool = True
    why_off: str | None = None


@dataclass
class FakeDaemon:
    """Implements what the operator services use: snapshot() and kernel_stats()."""

    stats: dict[str, int] = field(
        default_factory=lambda: {"STAT_EVENTS_LOST": 0, "STAT_DENIED": 3, "STAT_AUDITED": 1, "STAT_UNRESOLVED": 0}
    )
    counts: dict[int, dict[int, int]] = field(default_factory=dict)
    snapshots: int = 0
    open_cache: FakeOpenCache | None = None

    def __post_init__(self) -> None:
        self.table = RuleTable()
        self.shadow = self.table.id_for(RuleRef("protect-credentials", "file[0]"))
        self.hostname = self.table.id_for(RuleRef("protect-credentials", "file[1]"))
        self.apt = self.table.id_for(RuleRef("audit-package-managers", "exec[0]"))
        self.counts.setdefault(4242, {self.shadow: 3, self.hostname: 1, self.apt: 2})
        self.policies = policy_set()

    def kernel_stats(self) -> Mapping[str, int]:
        return dict(self.stats)

    def snapshot(self) -> StatusDocument:
        self.snapshots += 1
        return build(
            StatusInputs(
                started_at=time.time() - 3725,
                policies_dir=Path("/etc/enforcer/policies"),
                pin_root=Path("/nonexistent/pins"),
                policies=self.policies,
                table=self.table,
                containers=[TrackedContainer(container(), ("protect-credentials", "audit-package-managers"), 1)],
                counters=lambda cg: self.counts.get(cg, {}),
                kernel_stats=self.stats,
                enforcements=[type("Enf", (), {"name": "file"})()],
                maps={
                    "containers": FakeMap(1, 65536),
                    "counters": FakeMap(3, 262144),
                    "path_rules": FakeMap(60000, 65536),
                },
                audit_records=5,
                audit_events=9,
                audit_write_errors=0,
                audit_log="/var/log/enforcer/audit.jsonl",
                docker_connected=True,
                reload_failures=1,
                open_cache=self.open_cache,
            )
        )
