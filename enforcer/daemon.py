"""`enforcer run`: keep every running container under the policies that select it.

Docker (DockerTracker) reports containers; the policies selecting a container are merged
into a ruleset, written by every kind of enforcement (enforcer.kernel.enforcement) under
one ruleset id and shared by every container that selects the same policies; the
container's cgroup id is then pointed at it with one map update. Kernel events become
audit records (folded, enforcer.audit.records).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from enforcer.audit.events import Event, EventDecoder
from enforcer.audit.records import UNRESOLVED, AuditFolder, AuditRecord, AuditWriter
from enforcer.compiler.rules import RuleTable
from enforcer.containers.model import ContainerInfo
from enforcer.containers.tracker import DockerTracker
from enforcer.kernel.build import ensure_built
from enforcer.kernel.enforcement import Enforcement, RulesetPart, merge_container_fields
from enforcer.kernel.loader import DEFAULT_PIN_ROOT, Loaded
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.kernel.startup import kernel_enforcements, load_kernel
from enforcer.policy.loader import PolicySet, load_directory, policy_digest
from enforcer.policy.merge import merge
from enforcer.policy.selector import policies_for
from enforcer.pybpf import RingBuffer
from enforcer.status.collect import StatusInputs, TrackedContainer, build
from enforcer.status.model import StatusDocument

log = structlog.get_logger(__name__)

RulesetKey = tuple[str, ...]  # "name@digest" of each selected policy, in selection order


@dataclass
class _Ruleset:
    id: int
    parts: dict[str, RulesetPart]
    users: set[str] = field(default_factory=set)  # container ids

    def container_fields(self) -> dict[str, int]:
        return merge_container_fields(list(self.parts.values()))


@dataclass(frozen=True)
class DaemonConfig:
    policies_dir: Path
    pin_root: Path = DEFAULT_PIN_ROOT
    docker_host: str | None = None
    fold_window: float = 1.0  # seconds within which identical audit events share a record
    allow_missing_lsm: bool = False  # without BPF-LSM, run with device/network/socket rules only


class Daemon:
    def __init__(self, config: DaemonConfig, audit: AuditWriter) -> None:
        self._config = config
        self._writer = audit
        self._audit = AuditFolder(audit, config.fold_window)
        self._started = time.time()
        self._tracker: DockerTracker | None = None
        self.reload_failures = 0  # policy reloads that rejected a changed file (status, metrics)
        self._lock = threading.RLock()
        self._table = RuleTable()
        self._rulesets: dict[RulesetKey, _Ruleset] = {}
        self._next_ruleset = 1
        self._containers: dict[str, tuple[ContainerInfo, RulesetKey]] = {}
        self._by_cgroup: dict[int, ContainerInfo] = {}
        self._policies: PolicySet | None = None
        self._loaded: Loaded | None = None
        self._maps: PolicyMaps | None = None
        self._enforcements: list[Enforcement] = []

    # ----- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._policies = load_directory(self._config.policies_dir)
        for err in self._policies.errors:
            log.error("policy file rejected", error=str(err))
        log.info("policies loaded", count=len(self._policies.policies),
                 directory=str(self._config.policies_dir))  # fmt: skip
        loaded = load_kernel(ensure_built(), self._config.pin_root, self._policies.policies,
                             allow_missing_lsm=self._config.allow_missing_lsm)  # fmt: skip
        self.use_kernel(loaded)
        decoder = EventDecoder(loaded.abi)
        ring = RingBuffer(loaded.maps["events"], lambda raw: self._on_event(decoder.decode(raw)))
        events = threading.Thread(target=self._poll, args=(ring, stop), name="ringbuf", daemon=True)
        events.start()
        tracker = self._tracker = DockerTracker(self, base_url=self._config.docker_host)
        try:
            tracker.run(stop)
        finally:
            stop.set()
            events.join()
            ring.close()
            self._audit.flush_all()
            # Links and maps stay pinned: enforcement outlives the daemon (`enforcer unload`).
            loaded.close()

    def use_kernel(self, loaded: Loaded, policies: PolicySet | None = None) -> None:
        """Take the loaded objects' maps; run() does this, tests may call it directly."""
        self._loaded = loaded
        self._maps = PolicyMaps(loaded.abi, loaded.maps)
        self._enforcements = kernel_enforcements(loaded, self._maps, self._table, self._config.pin_root)
        if policies is not None:
            self._policies = policies

    def _poll(self, ring: RingBuffer, stop: threading.Event) -> None:
        while not stop.is_set():
            ring.poll(200)
            self._audit.flush_due()
        ring.consume()

    # ----- containers (ContainerListener) ---------------------------------------------------
    def container_started(self, info: ContainerInfo) -> None:
        assert self._maps is not None and self._policies is not None
        selected = policies_for(self._policies, info.name, info.image, info.labels)
        key = tuple(f"{p.name}@{policy_digest(p)}" for p in selected)
        with self._lock:
            previous = self._containers.get(info.id)
            rs = self._rulesets.get(key)
            if rs is None:
                rs = self._write_ruleset(merge(selected))
                self._rulesets[key] = rs
            rs.users.add(info.id)
            if previous is None:
                for enf in self._enforcements:
                    enf.attach(info)
            # One update flips the container from its old ruleset (if any) to the new one.
            self._maps.set_container(info.cgroup.id, rs.id, rs.container_fields())
            self._containers[info.id] = (info, key)
            self._by_cgroup[info.cgroup.id] = info
            if previous is not None and previous[1] != key:
                self._release_ruleset(previous[1], info.id)
        log.info("container enforced", container=info.name, image=info.image,
                 policies=[p.name for p in selected], cgroup_id=info.cgroup.id,
                 ruleset=rs.id)  # fmt: skip

    def container_renamed(self, info: ContainerInfo) -> None:
        self.container_started(info)  # a name can change which policies select it

    def container_stopped(self, container_id: str) -> None:
        assert self._maps is not None
        with self._lock:
            entry = self._containers.pop(container_id, None)
            if entry is None:
                return
            info, key = entry
            self._maps.remove_container(info.cgroup.id)
            for enf in self._enforcements:
                enf.detach(info)
            self._by_cgroup.pop(info.cgroup.id, None)
            self._release_ruleset(key, container_id)
        log.info("container released", container=info.name, container_id=info.short_id)

    # ----- rulesets -------------------------------------------------------------------------
    def _write_ruleset(self, rules: tuple) -> _Ruleset:  # type: ignore[type-arg]
        rid = self._next_ruleset
        self._next_ruleset += 1
        parts: dict[str, RulesetPart] = {}
        for enf in self._enforcements:
            parts[enf.name] = enf.write_ruleset(rid, rules)
        return _Ruleset(rid, parts)

    def _release_ruleset(self, key: RulesetKey, container_id: str) -> None:
        rs = self._rulesets.get(key)
        if rs is None:
            return
        rs.users.discard(container_id)
        if not rs.users:
            for enf in self._enforcements:
                enf.delete_ruleset(rs.id, rs.parts[enf.name])
            del self._rulesets[key]

    # ----- audit ----------------------------------------------------------------------------
    def _on_event(self, event: Event | None) -> None:
        if event is None:
            return
        rule = self._table.ref_for(event.rule_id) or UNRESOLVED
        with self._lock:
            container = self._by_cgroup.get(event.cgroup_id)
        self._audit.add(AuditRecord(event, rule, container))

    # ----- operator view (enforcer status, metrics) ---------------------------------------
    def kernel_stats(self) -> dict[str, int]:
        """Kernel-wide counters (enum abi_stat names); cheap, polled for drop warnings."""
        return self._maps.stats() if self._maps else {}

    def snapshot(self) -> StatusDocument:
        with self._lock:
            tracked = [TrackedContainer(info, tuple(k.split("@", 1)[0] for k in key),
                                        rs.id if (rs := self._rulesets.get(key)) else None)
                       for info, key in self._containers.values()]  # fmt: skip
            policies, enforcements = self._policies, list(self._enforcements)
        maps = self._loaded.maps if self._loaded else {}
        return build(StatusInputs(
            started_at=self._started, policies_dir=self._config.policies_dir,
            pin_root=self._config.pin_root, policies=policies, table=self._table,
            containers=tracked,
            counters=self._maps.counters if self._maps else (lambda _cgroup: {}),
            kernel_stats=self.kernel_stats(), enforcements=enforcements, maps=maps,
            audit_records=self._writer.records, audit_events=self._writer.events,
            audit_write_errors=self._writer.write_errors, audit_log=self._writer.name,
            docker_connected=bool(self._tracker and self._tracker.connected.is_set()),
            reload_failures=self.reload_failures,
            not_enforced_reasons=self._not_enforced_reasons(),
        ))  # fmt: skip

    def _not_enforced_reasons(self) -> dict[str, str]:
        why = self._loaded.lsm_error if self._loaded else None
        if not why:
            return {}
        reason = f"the BPF-LSM programs did not load on this kernel: {why} (see `enforcer doctor`)"
        return {"file": reason, "exec": reason}
