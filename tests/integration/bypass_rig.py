"""The bypass suite's kernel side: LSM programs under a private pin root, policies compiled
and written for one container exactly as the daemon does (FileEnforcement with inode rules),
and the ring buffer's events collected for the assertions."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from enforcer.audit.events import EventDecoder, FileEvent
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.compiler.ruleset import compile_ruleset
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.containers.model import ContainerInfo
from enforcer.kernel.build import ensure_built
from enforcer.kernel.enforcement import FileEnforcement, RulesetPart
from enforcer.kernel.inode_rules import InodeRules
from enforcer.kernel.loader import Loaded, load_lsm, unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge
from enforcer.policy.model import Policy
from enforcer.pybpf import RingBuffer
from tests.integration.dockerd import Container

EPERM = 1
RULESET = 1


@dataclass
class Rig:
    loaded: Loaded
    maps: PolicyMaps
    table: RuleTable
    files: FileEnforcement
    part: RulesetPart
    events: list[FileEvent] = field(default_factory=list)
    ring: RingBuffer | None = None

    def drain(self) -> None:
        assert self.ring is not None
        self.ring.consume()
        self.events.clear()

    def wait_events(self, n: int = 1, timeout: float = 5.0) -> list[FileEvent]:
        """Events so far, waiting until there are `n` (a short grace for stragglers)."""
        assert self.ring is not None
        end = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < end:
            self.ring.poll(100)
        self.ring.poll(50)
        return list(self.events)

    def rule(self, event: FileEvent) -> RuleRef | None:
        return self.table.ref_for(event.rule_id)


def _policies(files: Sequence[Path], extra: str) -> list[Policy]:
    out: list[Policy] = []
    for name, text in [(str(f), f.read_text()) for f in files] + [("test.yaml", extra)]:
        loaded, errors = parse_text(text, name)
        assert not errors, errors
        out += [p.policy for p in loaded]
    return out


@contextmanager
def load_rig(policy_files: Sequence[Path], policy_text: str) -> Iterator[Rig]:
    pin_root = Path(f"/sys/fs/bpf/enforcer-bypass-{os.getpid()}")
    loaded = load_lsm(ensure_built(), pin_root)
    try:
        maps = PolicyMaps(loaded.abi, loaded.maps)
        table = RuleTable()
        files = FileEnforcement(maps, InodeRules(loaded.abi, loaded.maps, maps))
        compiled = compile_ruleset(merge(_policies(policy_files, policy_text)), table, loaded.abi)
        part = files.write_ruleset(RULESET, compiled)
        rig = Rig(loaded, maps, table, files, part)
        decoder = EventDecoder(loaded.abi)

        def collect(raw: bytes) -> None:
            event = decoder.decode(raw)
            if isinstance(event, FileEvent):
                rig.events.append(event)

        rig.ring = RingBuffer(loaded.maps["events"], collect)
        try:
            yield rig
        finally:
            rig.ring.close()
    finally:
        loaded.close()
        unload(pin_root)


@contextmanager
def police(rig: Rig, container: Container) -> Iterator[ContainerInfo]:
    """Put `container` under the rig's ruleset as the daemon would (inode rules first)."""
    pid = container.pid
    info = ContainerInfo(container.id, container.name, "enforcer-testbox:latest", {}, pid, cgroup_of_pid(pid))
    rig.files.attach(info)
    rig.files.assign(info, RULESET, rig.part)
    rig.maps.set_container(info.cgroup.id, RULESET, rig.part.container_fields)
    try:
        yield info
    finally:
        rig.maps.remove_container(info.cgroup.id)
        rig.files.detach(info)
