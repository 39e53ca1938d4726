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
from typing import Any

import structlog

from enforcer.audit.events import Event, EventDecoder
from enforcer.audit.records import UNRESOLVED, AuditFolder, AuditRecord, AuditWriter
from enforcer.compiler.rules import RuleTable
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.containers.model import ContainerInfo
from enforcer.containers.tracker import DockerTracker
from enforcer.errors import EnforcerError
from enforcer.kernel.build import ensure_built
from enforcer.kernel.enforcement import (
    Enforcement, PerContainerRules, RulesetPart, merge_container_fields,
)  # fmt: skip
from enforcer.kernel.loader import DEFAULT_PIN_ROOT, Loaded
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.kernel.state import STATE_DIR, RuleTableStore, state_file
from enforcer.kernel.startup import kernel_enforcements, load_kernel
from enforcer.policy.loader import ParseCache, PolicySet, load_directory, policy_digest
from enforcer.policy.merge import merge
from enforcer.policy.selector import policies_for
from enforcer.policy.watch import PolicyWatcher
from enforcer.pybpf import RingBuffer
from enforcer.runtime.registrar import RegistrationServer
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
    runtime_socket: Path | None = None  # enforcer-runc asks here (None: no registration)
    state_dir: Path = STATE_DIR  # rule ids that must outlive the daemon (enforcer.kernel.state)
    watch_policies: bool = True  # hot reload on edits in policies_dir
    reload_quiet: float = 0.2  # seconds of quiet before an edit is read (editors save in steps)


class Daemon:
    def __init__(self, config: DaemonConfig, audit: AuditWriter) -> None:
        self._config = config
        self._writer = audit
        self._audit = AuditFolder(audit, config.fold_window)
        self._started = time.time()
        self._tracker: DockerTracker | None = None
        self.reload_failures = 0  # policy reloads that rejected a changed file (status, metrics)
        self._lock = threading.RLock()
        self._store = RuleTableStore(state_file(config.pin_root, config.state_dir))
        self._table: RuleTable = self._store.load()
        self._rulesets: dict[RulesetKey, _Ruleset] = {}
        self._next_ruleset = 1
        self._containers: dict[str, tuple[ContainerInfo, RulesetKey]] = {}
        self._by_cgroup: dict[int, ContainerInfo] = {}
        self._policies: PolicySet | None = None
        self._loaded: Loaded | None = None
        self._maps: PolicyMaps | None = None
        self._enforcements: list[Enforcement] = []
        self._parsed: ParseCache = {}  # policy texts already parsed (hot reload reparses edits only)
        self._inherited: dict[int, int] = {}  # cgroup id -> ruleset, left by an earlier run
        self._docker: Any = None  # client for the runtime shim's lookups (lazy)

    # ----- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._policies = load_directory(self._config.policies_dir, cache=self._parsed)
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
        watcher = registrar = None
        try:
            if self._config.watch_policies:
                watcher = PolicyWatcher(self._config.policies_dir, self.reload, self._config.reload_quiet)
                watcher.start()
            if self._config.runtime_socket is not None:
                registrar = RegistrationServer(self._config.runtime_socket, self.register_from_runtime)
                registrar.start()
            tracker.run(stop)
        finally:
            stop.set()
            if watcher is not None:
                watcher.stop()
            if registrar is not None:
                registrar.close()
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
        self._take_over()

    def _take_over(self) -> None:
        """Adopt what an earlier run left pinned: its containers stay under their old
        rulesets until the first reconcile flips each to a fresh one (ids above every id
        in the kernel), then whatever nobody uses any more is deleted."""
        assert self._maps is not None
        self._inherited = self._maps.container_entries()
        in_kernel = set(self._inherited.values())
        for enf in self._enforcements:
            in_kernel |= enf.rulesets_in_kernel()
        self._next_ruleset = max(in_kernel, default=0) + 1
        if self._inherited:
            log.info("taking over from an earlier run", containers=len(self._inherited),
                     rulesets=len(in_kernel))  # fmt: skip

    def containers_reconciled(self, running: set[str]) -> None:
        """DockerTracker hook: the running set is complete. Drop inherited entries of
        containers that are gone, and rulesets no container uses."""
        assert self._maps is not None
        with self._lock:
            live = {info.cgroup.id for info, _ in self._containers.values()}
            gone = [cg for cg in self._inherited if cg not in live]
            for cgroup_id in gone:
                self._maps.remove_container(cgroup_id)
            self._inherited.clear()
            keep = {rs.id for rs in self._rulesets.values()}
            for enf in self._enforcements:
                enf.prune(keep)
        if gone:
            log.info("dropped containers that went away while the daemon was down", count=len(gone))

    def _poll(self, ring: RingBuffer, stop: threading.Event) -> None:
        next_sweep = time.monotonic() + 5
        while not stop.is_set():
            ring.poll(200)
            self._audit.flush_due()
            if time.monotonic() >= next_sweep:
                self._sweep()
                next_sweep = time.monotonic() + 5
        ring.consume()

    def _sweep(self) -> None:
        """Containers the runtime shim registered but Docker never reported running (their
        start failed after `runc create`) are released once their cgroup is gone."""
        known = self._tracker.known() if self._tracker else {}
        with self._lock:
            orphans = [cid for cid, (info, _) in self._containers.items()
                       if cid not in known and not Path(info.cgroup.path).exists()]  # fmt: skip
        for cid in orphans:
            self.container_stopped(cid)

    # ----- hot reload -----------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the policy directory and move every container whose policies changed to
        its new ruleset: written first, then one map update per container, so each open is
        judged entirely by the old version or entirely by the new one."""
        t0 = time.monotonic()
        with self._lock:
            old = self._policies
            try:
                new = load_directory(self._config.policies_dir, previous=old, cache=self._parsed)
            except EnforcerError as err:
                self.reload_failures += 1
                log.error("policy directory unreadable; keeping the policies in force",
                          error=str(err))  # fmt: skip
                return
            for problem in new.errors:
                log.error("policy file rejected; its previous version stays in force",
                          error=str(problem))  # fmt: skip
            if new.errors:
                self.reload_failures += 1
            self._policies = new
            if old is not None and new.digest == old.digest:
                return
            diff = new.diff(old) if old is not None else None
            for info, _ in list(self._containers.values()):
                self.container_started(info)
        log.info("policies reloaded", seconds=round(time.monotonic() - t0, 3),
                 added=list(diff.added) if diff else [], removed=list(diff.removed) if diff else [],
                 changed=list(diff.changed) if diff else [])  # fmt: skip

    # ----- runtime shim (start race) --------------------------------------------------------
    def register_from_runtime(self, container_id: str, pid: int, bundle: str) -> None:
        """enforcer-runc, between `runc create` and `runc start`: put the container under its
        policies now. dockerd holds this container's lock while it starts it, so it is not
        inspected: name, image and labels come from the container list (lock-free in dockerd)."""
        cgroup = cgroup_of_pid(pid)
        name, image, labels = self._created_container(container_id)
        self.container_started(ContainerInfo(id=container_id, name=name, image=image, labels=labels,
                                             pid=pid, cgroup=cgroup))  # fmt: skip

    def _created_container(self, container_id: str) -> tuple[str, str, dict[str, str]]:
        import docker

        if self._docker is None:
            self._docker = docker.APIClient(base_url=self._tracker.base_url if self._tracker
                                            else self._config.docker_host, timeout=10)  # fmt: skip
        found = self._docker.containers(all=True, filters={"id": container_id})
        match = [c for c in found if c.get("Id") == container_id]
        if not match:
            raise EnforcerError(f"container {container_id[:12]} is not known to Docker")
        c = match[0]
        names = c.get("Names") or ["/"]
        return str(names[0]).lstrip("/"), str(c.get("Image", "")), dict(c.get("Labels") or {})

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
                self._store.save(self._table)  # new rule ids must survive a kill -9
            rs.users.add(info.id)
            if previous is None:
                for enf in self._enforcements:
                    enf.attach(info)
            for enf in self._enforcements:
                if isinstance(enf, PerContainerRules):
                    enf.assign(info, rs.id, rs.parts[enf.name])
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
