"""`enforcer run`: keep every running container under the policies that select it.

Docker (DockerTracker) reports containers; each container's selected policies are merged
and compiled into a ruleset, shared by every container that selects the same policies,
and the container's cgroup id is pointed at it. Events from the kernel become audit records.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from enforcer.audit.events import EventDecoder, FileEvent
from enforcer.audit.records import UNRESOLVED, AuditRecord, AuditWriter
from enforcer.compiler.paths import CompiledPaths, compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.containers.model import ContainerInfo
from enforcer.containers.tracker import DockerTracker
from enforcer.kernel.build import ensure_built
from enforcer.kernel.loader import DEFAULT_PIN_ROOT, Loaded, load_lsm
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import PolicySet, load_directory, policy_digest
from enforcer.policy.merge import merge
from enforcer.policy.selector import policies_for
from enforcer.pybpf import RingBuffer

log = structlog.get_logger(__name__)


@dataclass
class _Ruleset:
    id: int
    compiled: CompiledPaths
    users: set[str] = field(default_factory=set)  # container ids


class Daemon:
    def __init__(
        self,
        policies_dir: Path,
        audit: AuditWriter,
        *,
        pin_root: Path = DEFAULT_PIN_ROOT,
        docker_host: str | None = None,
    ) -> None:
        self._policies_dir = policies_dir
        self._audit = audit
        self._pin_root = pin_root
        self._docker_host = docker_host
        self._lock = threading.RLock()
        self._table = RuleTable()
        self._rulesets: dict[tuple[str, ...], _Ruleset] = {}
        self._next_ruleset = 1
        self._containers: dict[str, tuple[ContainerInfo, tuple[str, ...]]] = {}
        self._by_cgroup: dict[int, ContainerInfo] = {}
        self._policies: PolicySet | None = None
        self._loaded: Loaded | None = None
        self._maps: PolicyMaps | None = None

    # ----- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._policies = load_directory(self._policies_dir)
        for err in self._policies.errors:
            log.error("policy file rejected", error=str(err))
        log.info("policies loaded", count=len(self._policies.policies), directory=str(self._policies_dir))
        self._loaded = load_lsm(ensure_built(), self._pin_root)
        self._maps = PolicyMaps(self._loaded.abi, self._loaded.maps)
        decoder = EventDecoder(self._loaded.abi)
        ring = RingBuffer(self._loaded.maps["events"], lambda raw: self._on_event(decoder.decode(raw)))
        events = threading.Thread(target=self._poll, args=(ring, stop), name="ringbuf", daemon=True)
        events.start()
        tracker = DockerTracker(self, base_url=self._docker_host)
        try:
            tracker.run(stop)
        finally:
            stop.set()
            events.join()
            ring.close()
            # Links and maps stay pinned: enforcement outlives the daemon (`enforcer unload`).
            self._loaded.close()

    @staticmethod
    def _poll(ring: RingBuffer, stop: threading.Event) -> None:
        while not stop.is_set():
            ring.poll(200)
        ring.consume()

    # ----- containers (ContainerListener) ---------------------------------------------------
    def container_started(self, info: ContainerInfo) -> None:
        assert self._maps is not None and self._policies is not None
        selected = policies_for(self._policies, info.name, info.image, info.labels)
        key = tuple(f"{p.name}@{policy_digest(p)}" for p in selected)
        with self._lock:
            self._forget(info.id)
            rs = self._rulesets.get(key)
            if rs is None:
                rs = _Ruleset(self._next_ruleset, compile_paths(merge(selected), self._table))
                self._next_ruleset += 1
                self._maps.write_ruleset(rs.id, rs.compiled)
                self._rulesets[key] = rs
            rs.users.add(info.id)
            self._maps.set_container(info.cgroup.id, rs.id, rs.compiled)
            self._containers[info.id] = (info, key)
            self._by_cgroup[info.cgroup.id] = info
        log.info("container enforced", container=info.name, image=info.image,
                 policies=[p.name for p in selected], cgroup_id=info.cgroup.id)  # fmt: skip

    def container_renamed(self, info: ContainerInfo) -> None:
        self.container_started(info)  # a name can change which policies select it

    def container_stopped(self, container_id: str) -> None:
        with self._lock:
            if self._forget(container_id):
                log.info("container released", container_id=container_id[:12])

    def _forget(self, container_id: str) -> bool:
        assert self._maps is not None
        entry = self._containers.pop(container_id, None)
        if entry is None:
            return False
        info, key = entry
        self._maps.remove_container(info.cgroup.id)
        self._by_cgroup.pop(info.cgroup.id, None)
        rs = self._rulesets.get(key)
        if rs is not None:
            rs.users.discard(container_id)
            if not rs.users:
                self._maps.delete_ruleset(rs.id, rs.compiled)
                del self._rulesets[key]
        return True

    # ----- audit ----------------------------------------------------------------------------
    def _on_event(self, event: FileEvent | None) -> None:
        if event is None:
            return
        rule = self._table.ref_for(event.rule_id) or UNRESOLVED
        with self._lock:
            container = self._by_cgroup.get(event.cgroup_id)
        self._audit.write(AuditRecord(event, rule, container))
