"""`enforcer run`: keep every running container under the policies that select it.

Docker (DockerTracker) reports containers; the policies selecting a container are merged
into a ruleset, written by every kind of enforcement (enforcer.kernel.enforcement) under
one ruleset id and shared by every container that selects the same policies; the
container's cgroup id is then pointed at it with one map update (enforcer.rulesets keeps
the shared rulesets). Kernel events become audit records through enforcer.audit.routing;
the daemon only says which container and policy rule an event names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from enforcer.audit.events import EventDecoder
from enforcer.audit.losses import LossAccountant
from enforcer.audit.records import UNRESOLVED, AuditWriter
from enforcer.audit.routing import AuditRouter
from enforcer.compiler.postures import CompiledPostures, posture_ref
from enforcer.compiler.rules import RuleRef, RuleTable, reserved_refs
from enforcer.containers.created import CreatedContainers
from enforcer.containers.failures import RETRY_BACKOFF, Failures
from enforcer.containers.model import ContainerInfo
from enforcer.containers.startwindow import process_age_seconds
from enforcer.containers.tracker import DockerTracker
from enforcer.errors import EnforcerError, undo_quietly
from enforcer.kernel.build import ensure_built
from enforcer.kernel.enforcement import (
    Enforcement,
    PerContainerRules,
)
from enforcer.kernel.loader import DEFAULT_PIN_ROOT, Loaded
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.kernel.postures import PostureState
from enforcer.kernel.startup import kernel_enforcements, load_kernel
from enforcer.kernel.state import (
    STATE_DIR,
    PolicyStore,
    RuleTableStore,
    policies_file,
    state_file,
)
from enforcer.learn.recording import ContainerFacts
from enforcer.learn.session import Channel, LearnSessions, LearnTarget, serve_learn
from enforcer.policy.loader import ParseCache, PolicySet, load_directory
from enforcer.policy.model import Policy
from enforcer.policy.selector import every_container_policies, policies_for
from enforcer.policy.watch import PolicyWatcher
from enforcer.pybpf import RingBuffer
from enforcer.rulesets import RulesetKey, Rulesets, policy_names, ruleset_key
from enforcer.runtime.registrar import RegistrationServer
from enforcer.status.collect import StatusInputs, TrackedContainer, build
from enforcer.status.model import StatusDocument

log = structlog.get_logger(__name__)

_UNDO = "cleanup after a failed enforcement failed"

# The user of the ruleset that containers not registered yet get (CT_KEY_STARTING).
STARTING = "(containers not registered yet)"


@dataclass(frozen=True)
class DaemonConfig:
    policies_dir: Path
    pin_root: Path = DEFAULT_PIN_ROOT
    docker_host: str | None = None
    fold_window: float = 1.0  # seconds within which identical audit events share a record
    loss_interval: float = 1.0  # seconds between checks of kernel counters vs itemised events
    allow_missing_lsm: bool = False  # without BPF-LSM, run with device/network/socket rules only
    runtime_socket: Path | None = None  # enforcer-runc asks here (None: no registration)
    runtime_socket_uids: tuple[int, ...] = ()  # besides root and our own uid, who may register
    state_dir: Path = STATE_DIR  # rule ids that must outlive the daemon (enforcer.kernel.state)
    watch_policies: bool = True  # hot reload on edits in policies_dir
    reload_quiet: float = 0.2  # seconds of quiet before an edit is read (editors save in steps)


class Daemon:
    def __init__(self, config: DaemonConfig, audit: AuditWriter, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._failed = Failures()  # containers not (fully) enforced: why, and when to retry
        self.enforcement_failures = 0  # attempts that failed, retries included (metrics)
        self.learning = LearnSessions()  # containers under `enforcer learn`
        self.audit = AuditRouter(audit, config.fold_window, self.learning, self._who)
        self._started = time.time()
        self._tracker: DockerTracker | None = None
        self.reload_failures = 0  # policy reloads that rejected a changed file (status, metrics)
        self._lock = threading.RLock()
        self._store = RuleTableStore(state_file(config.pin_root, config.state_dir))
        self._policy_store = PolicyStore(policies_file(config.pin_root, config.state_dir))
        self._table: RuleTable = self._store.load()
        self._rulesets = Rulesets(on_written=lambda: self._store.save(self._table))
        self._containers: dict[str, tuple[ContainerInfo, RulesetKey]] = {}
        self._by_cgroup: dict[int, ContainerInfo] = {}
        self._policies: PolicySet | None = None
        self._loaded: Loaded | None = None
        self._maps: PolicyMaps | None = None
        self._enforcements: list[Enforcement] = []
        self._parsed: ParseCache = {}  # policy texts already parsed (hot reload reparses edits only)
        self._inherited: dict[int, int] = {}  # cgroup id -> ruleset, left by an earlier run
        self._created = CreatedContainers(config.docker_host)  # what enforcer-runc registers
        self._starting_key: RulesetKey | None = None  # ruleset of the CT_KEY_STARTING entry
        self._starting_retry_at: float | None = None  # its last write failed: retry then
        self._registered_early: set[str] = set()  # container ids enforcer-runc registered
        self._start_windows: dict[str, float | None] = {}  # container id -> seconds (status)

    # ----- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._policies = self.startup_policies()
        log.info("policies loaded", count=len(self._policies.policies), directory=str(self._config.policies_dir))
        loaded = load_kernel(
            ensure_built(),
            self._config.pin_root,
            self._policies.policies,
            allow_missing_lsm=self._config.allow_missing_lsm,
        )
        self.use_kernel(loaded)
        self._policy_store.save(self._policies, self._parsed)
        ring = RingBuffer(loaded.maps["events"], self.audit.sink(EventDecoder(loaded.abi)))
        events = threading.Thread(target=self._poll, args=(ring, stop), name="ringbuf", daemon=True)
        events.start()
        tracker = self._tracker = DockerTracker(self, base_url=self._config.docker_host)
        watcher = registrar = None
        try:
            if self._config.watch_policies:
                watcher = PolicyWatcher(self._config.policies_dir, self.reload, self._config.reload_quiet)
                watcher.start()
            if self._config.runtime_socket is not None:
                registrar = RegistrationServer(
                    self._config.runtime_socket, self.register_from_runtime, self._config.runtime_socket_uids
                )
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
            self.audit.folder.flush_all()
            # Links and maps stay pinned: enforcement outlives the daemon (`enforcer unload`).
            # Under the lock: a SIGTERM during a reload lets the reload finish first.
            with self._lock:
                loaded.close()

    def startup_policies(self) -> PolicySet:
        """The policy directory as the daemon starts. A file that does not validate keeps
        the version an earlier run had in force (kept beside the pinned state), as a reload
        would, and the log says so loudly; a file with no such version stops the start:
        EnforcerError with every FILE:LINE:COL (the CLI exits 1), so no container runs
        without a policy in silence."""
        previous = self._policy_store.load()
        policies = load_directory(self._config.policies_dir, previous=previous, cache=self._parsed)
        unkept = [str(e) for f in policies.files if f.errors and not f.kept_previous for e in f.errors]
        if unkept:
            raise EnforcerError(
                "policy files do not validate, and no earlier version of them is in force: " + "; ".join(unkept),
                hint="fix them (`enforcer check " + str(self._config.policies_dir) + "`) and start again",
            )
        for f in policies.files:
            for err in f.errors:  # all kept_previous here
                log.error(
                    "POLICY FILE REJECTED AT START: the version in force before this restart "
                    "stays in force until the file validates",
                    error=str(err),
                    policies=[lp.policy.name for lp in f.policies],
                )
        if policies.errors:
            self.reload_failures += 1
        return policies

    def use_kernel(self, loaded: Loaded, policies: PolicySet | None = None) -> None:
        """Take the loaded objects' maps; run() does this, tests may call it directly."""
        self._loaded = loaded
        self._table.reserve(reserved_refs(loaded.abi.consts))  # records name the kernel's own denials
        self._maps = PolicyMaps(loaded.abi, loaded.maps, round(self._config.fold_window * 1000))
        self.audit.use_counters(LossAccountant(self._maps.all_counters), self._maps.take_folds)
        self._enforcements = kernel_enforcements(loaded, self._maps, self._config.pin_root)
        if policies is not None:
            self._policies = policies
        self._take_over()
        self._write_starting_entry()

    def _take_over(self) -> None:
        """Adopt what an earlier run left pinned: its containers stay under their old
        rulesets until the first reconcile flips each to a fresh one (ids above every id
        in the kernel), then whatever nobody uses any more is deleted."""
        assert self._maps is not None
        self._inherited = self._maps.container_entries()
        in_kernel = set(self._inherited.values())
        self._inherited.pop(self._starting_cgroup_key(), None)  # rewritten, not a container
        for enf in self._enforcements:
            in_kernel |= enf.rulesets_in_kernel()
        assert self._loaded is not None
        self._rulesets.use(self._enforcements, in_kernel, self._table, self._loaded.abi)
        if self._inherited:
            log.info("taking over from an earlier run", containers=len(self._inherited), rulesets=len(in_kernel))

    def containers_reconciled(self, running: set[str]) -> None:
        """DockerTracker hook: the running set is complete. Drop inherited entries of
        containers that are gone, and rulesets no container uses."""
        assert self._maps is not None
        with self._lock:
            live = {info.cgroup.id for info, _ in self._containers.values()}
            # A running container whose enforcement failed keeps what an earlier run left
            # for it (its old ruleset) until a retry succeeds: never less than before.
            live |= {f.info.cgroup.id for f in self._failed.values()}
            gone = [cg for cg in self._inherited if cg not in live]
            for cgroup_id in gone:
                self._maps.remove_container(cgroup_id)
            self._inherited = {
                cg: rs
                for cg, rs in self._inherited.items()
                if cg in live and cg not in {i.cgroup.id for i, _ in self._containers.values()}
            }
            keep = self._rulesets.ids()
            for enf in self._enforcements:
                enf.prune(keep)
        if gone:
            log.info("dropped containers that went away while the daemon was down", count=len(gone))

    def _poll(self, ring: RingBuffer, stop: threading.Event) -> None:
        next_sweep = time.monotonic() + 5
        next_losses = time.monotonic() + self._config.loss_interval
        while not stop.is_set():
            ring.poll(200)
            self.audit.folder.flush_due()
            self.retry_failed()
            if time.monotonic() >= next_losses:
                self.audit.account_losses(ring.consume, self.kernel_stats())
                next_losses = time.monotonic() + self._config.loss_interval
            if time.monotonic() >= next_sweep:
                self._sweep()
                next_sweep = time.monotonic() + 5
        self.audit.final_losses(ring.consume, self.kernel_stats)

    def _sweep(self) -> None:
        """Containers the runtime shim registered but Docker never reported running (their
        start failed after `runc create`) are released once their cgroup is gone."""
        known = self._tracker.known() if self._tracker else {}
        with self._lock:
            orphans = [
                cid
                for cid, (info, _) in self._containers.items()
                if cid not in known and not Path(info.cgroup.path).exists()
            ]
            orphans += [
                cid for cid, f in self._failed.items() if cid not in known and not Path(f.info.cgroup.path).exists()
            ]
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
                log.error("policy directory unreadable; keeping the policies in force", error=str(err))
                return
            for problem in new.errors:
                log.error("policy file rejected; its previous version stays in force", error=str(problem))
            if new.errors:
                self.reload_failures += 1
            self._policies = new
            self._policy_store.save(new, self._parsed)  # a restart meeting a broken file keeps this version
            if old is not None and new.digest == old.digest:
                return
            diff = new.diff(old) if old is not None else None
            # Failed containers too: the new version may fit where the old one did not.
            for info in [i for i, _ in self._containers.values()] + [f.info for f in self._failed.values()]:
                self.container_started(info)
            self._write_starting_entry()
        log.info(
            "policies reloaded",
            seconds=round(time.monotonic() - t0, 3),
            added=list(diff.added) if diff else [],
            removed=list(diff.removed) if diff else [],
            changed=list(diff.changed) if diff else [],
        )

    # ----- runtime shim (start race) --------------------------------------------------------
    def register_from_runtime(self, container_id: str, pid: int, bundle: str) -> None:
        """enforcer-runc, between `runc create` and `runc start`: put the container under its
        policies now (what Docker knows of it: enforcer.containers.created)."""
        info = self._created.info(container_id, pid)
        with self._lock:
            self._registered_early.add(container_id)  # before its first instruction: no window
        try:
            self.enforce(info)
        except Exception as err:
            # Recorded and retried like any failure; raised so that, fail-closed, the shim
            # refuses to start a container whose policy is not in force.
            self._record_failure(info, err)
            raise

    # ----- containers (ContainerListener) ---------------------------------------------------
    def container_started(self, info: ContainerInfo) -> None:
        """Put the container under the policies that select it now. A failure is not
        raised to the tracker: it is recorded, shown by `status`, and retried."""
        try:
            self.enforce(info)
        except Exception as err:  # noqa: BLE001 - any failure leaves the container recorded
            self._record_failure(info, err)

    def enforce(self, info: ContainerInfo) -> None:
        """Select, write and point, all under the lock (a reload cannot slip in between
        choosing the policies and writing them). All or nothing: on any error the ruleset
        written for it, and its attachments if it had none before, are removed again and
        the container keeps what it had (its previous ruleset, or nothing); then raises."""
        assert self._maps is not None
        with self._lock:
            assert self._policies is not None
            selected = self.learning.selection(
                info.id, policies_for(self._policies, info.name, info.image, info.labels)
            )
            key = ruleset_key(selected)
            previous = self._containers.get(info.id)
            rs = self._rulesets.get_or_write(key, selected)
            # Attachments made here are undone on failure, unless the cgroup was already
            # enforced (by this run, or pinned by an earlier one): that must stay.
            fresh = previous is None and info.cgroup.id not in self._inherited
            try:
                if previous is None:
                    for enf in self._enforcements:
                        enf.attach(info)
                for enf in self._enforcements:
                    if isinstance(enf, PerContainerRules):
                        enf.assign(info, rs.id, rs.parts[enf.name])
                self._posture_state(info, first=previous is None)
                # One update flips the container from its old ruleset (if any) to the new one.
                self._maps.set_container(info.cgroup.id, rs.id, rs.container_fields(self._abi()))
            except Exception:  # (a BaseException is the process dying: a restart takes over)
                if fresh:
                    for enf in self._enforcements:
                        undo_quietly(enf.detach, info, what=_UNDO, container=info.name)
                if not rs.users:
                    undo_quietly(self._rulesets.release, key, "", what=_UNDO, container=info.name)
                raise
            if previous is None:
                self._start_windows[info.id] = self._start_window(info)
            rs.users.add(info.id)
            self._containers[info.id] = (info, key)
            self._by_cgroup[info.cgroup.id] = info
            self._inherited.pop(info.cgroup.id, None)
            if previous is not None and previous[1] != key:
                self._rulesets.release(previous[1], info.id)
            recovered = self._failed.pop(info.id, None)
        if recovered is not None:
            log.warning(
                "container enforced after failing",
                container=info.name,
                attempts=recovered.attempts,
                earlier_error=recovered.reason,
            )
        log.info(
            "container enforced",
            container=info.name,
            image=info.image,
            policies=[p.name for p in selected],
            cgroup_id=info.cgroup.id,
            ruleset=rs.id,
            start_window_s=self._start_windows.get(info.id),
        )

    def _start_window(self, info: ContainerInfo) -> float | None:
        """Seconds the container ran before this first entry (enforcer.containers.startwindow)."""
        if info.id in self._registered_early:
            return 0.0
        if info.cgroup.id in self._inherited:
            return None  # an earlier run enforced it; its window is not ours to know
        return process_age_seconds(info.pid)

    def _record_failure(self, info: ContainerInfo, err: BaseException) -> None:
        with self._lock:
            self.enforcement_failures += 1
            failure, delay = self._failed.record(info, err, self._clock())
            kept = info.id in self._containers or info.cgroup.id in self._inherited
        log.error(
            "container NOT ENFORCED by its current policies"
            if not kept
            else "container's policy update failed; its previous ruleset stays in force",
            container=info.name,
            container_id=info.short_id,
            error=failure.reason,
            attempts=failure.attempts,
            retry_in=round(delay, 2),
        )

    def retry_failed(self) -> None:
        """Retry every failed container whose backoff has run out (the event loop calls
        this every poll; cheap when nothing failed)."""
        now = self._clock()
        if self._starting_retry_at is not None and self._starting_retry_at <= now:
            self._write_starting_entry()
        if not self._failed:
            return
        with self._lock:
            due = self._failed.due(now)
        for info in due:
            self.container_started(info)

    def not_enforced(self) -> dict[str, str]:
        """container id -> why its current policies are not in force (status, tests)."""
        with self._lock:
            return self._failed.reasons()

    def container_renamed(self, info: ContainerInfo) -> None:
        self.container_started(info)  # a name can change which policies select it

    def container_stopped(self, container_id: str) -> None:
        assert self._maps is not None
        self.learning.container_gone(container_id)
        with self._lock:
            failed = self._failed.pop(container_id, None)
            entry = self._containers.pop(container_id, None)
            if entry is None:
                if failed is not None and failed.info.cgroup.id in self._inherited:
                    self._maps.remove_container(failed.info.cgroup.id)  # its old entry
                    for enf in self._enforcements:
                        undo_quietly(enf.detach, failed.info, what=_UNDO, container=failed.info.name)
                    self._inherited.pop(failed.info.cgroup.id, None)
                return
            info, key = entry
            self._maps.remove_container(info.cgroup.id)
            for enf in self._enforcements:
                enf.detach(info)
            self._by_cgroup.pop(info.cgroup.id, None)
            self._rulesets.release(key, container_id)
            self._registered_early.discard(container_id)
            self._start_windows.pop(container_id, None)
        log.info("container released", container=info.name, container_id=info.short_id)

    # ----- containers not registered yet ---------------------------------------------------
    def _starting_cgroup_key(self) -> int:
        return self._loaded.abi.const("CT_KEY_STARTING") if self._loaded else 0

    def _write_starting_entry(self) -> None:
        """Point CT_KEY_STARTING at the ruleset of the policies selecting every container: the
        LSM programs judge a Docker container's cgroup they find no entry for by it, so those
        policies hold from the container's first instruction without the runtime wrapper."""
        if self._maps is None or self._policies is None:
            return
        selected = every_container_policies(self._policies)
        key = ruleset_key(selected)
        cgroup_key = self._starting_cgroup_key()
        try:
            self._point_starting_entry(selected, key, cgroup_key)
        except Exception as err:  # noqa: BLE001 - written all or nothing: the previous entry stays in force
            self._starting_retry_at = self._clock() + RETRY_BACKOFF[0]
            log.error(
                "containers not registered yet keep their previous policies: writing the new ones failed (retried)",
                error=str(err) or type(err).__name__,
            )
            return
        self._starting_retry_at = None
        log.info("containers not registered yet are judged by", policies=[p.name for p in selected])

    def _point_starting_entry(self, selected: Sequence[Policy], key: RulesetKey, cgroup_key: int) -> None:
        maps = self._maps
        assert maps is not None  # _write_starting_entry returns early without maps
        with self._lock:
            previous = self._starting_key
            if not selected:
                maps.remove_container(cgroup_key)
                self._starting_key = None
            else:
                rs = self._rulesets.get_or_write(key, selected)
                rs.users.add(STARTING)
                maps.set_container(cgroup_key, rs.id, rs.container_fields(self._abi()))
                self._starting_key = key
            if previous is not None and previous != self._starting_key:
                self._rulesets.release(previous, STARTING)

    # ----- rulesets -------------------------------------------------------------------------
    def _abi(self) -> Any:
        return self._loaded.abi if self._loaded is not None else None

    def _posture_state(self, info: ContainerInfo, first: bool) -> None:
        """Before the container's entry is written: its created time (what `origin: image`
        compares a file's ctime with) and, the first time this run sees it, the posture
        flag of tasks that started before the programs could flag them."""
        if self._loaded is None:
            return
        state = PostureState(self._loaded.maps)
        state.set_image_time(info.cgroup.id, info.created_ns)
        if first:
            state.mark_judged(Path(info.cgroup.path), self._loaded.abi.const("TASK_JUDGED"))

    # ----- audit: who made an event ------------------------------------------------------
    def _who(self, cgroup_id: int, rule_id: int, ruleset: int | None) -> tuple[ContainerInfo | None, RuleRef]:
        """The container and the policy rule of a kernel event or loss (enforcer.audit.routing)."""
        with self._lock:
            return self._by_cgroup.get(cgroup_id), self._rule_ref(cgroup_id, rule_id, ruleset)

    # ----- enforcer learn ------------------------------------------------------------------
    def learn(self, request: dict[str, Any], channel: Channel) -> None:
        """A learn request from the status socket (enforcer.learn.session.serve_learn)."""
        serve_learn(self.learning, request, channel, self._learn_target, self._reenforce)

    def _learn_target(self, name: str) -> LearnTarget | None:
        with self._lock:
            if self._policies is None:
                return None
            for info, _key in self._containers.values():
                if info.name == name.lstrip("/") or (len(name) >= 12 and info.id.startswith(name)):
                    selected = policies_for(self._policies, info.name, info.image, info.labels)
                    facts = ContainerFacts(info.name, info.image, info.id, dict(info.labels))
                    return LearnTarget(facts, info.id, info.cgroup.id, selected)
        return None

    def _reenforce(self, container_id: str) -> None:
        with self._lock:
            entry = self._containers.get(container_id)
        if entry is None:
            raise EnforcerError("the container is no longer enforced by this daemon")
        self.enforce(entry[0])

    def _rule_ref(self, cgroup_id: int, rule_id: int, ruleset: int | None = None) -> RuleRef:
        """The policy and rule a kernel rule id names. A posture's id is one per class
        for every ruleset: the ruleset that decided (the event's) says which policy set
        the posture; without one (a loss, a ruleset of an earlier run), the container's."""
        ref = self._table.ref_for(rule_id)
        if ref is not None or self._loaded is None:
            return ref or UNRESOLVED
        postures = self._rulesets.postures_of(ruleset) if ruleset else None
        if postures is None:
            postures = self._postures_of(cgroup_id)
        return posture_ref(rule_id, self._loaded.abi, postures) or UNRESOLVED

    def _postures_of(self, cgroup_id: int) -> CompiledPostures | None:
        info = self._by_cgroup.get(cgroup_id)
        key = (
            self._containers[info.id][1] if info is not None and info.id in self._containers else self._starting_key
        )  # not registered yet: judged by the starting entry
        rs = self._rulesets.get(key)
        return rs.postures if rs is not None else None

    # ----- operator view (enforcer status, metrics) ---------------------------------------
    def kernel_stats(self) -> dict[str, int]:
        """Kernel-wide counters (enum abi_stat names); cheap, polled for drop warnings."""
        return self._maps.stats() if self._maps else {}

    def snapshot(self) -> StatusDocument:
        with self._lock:
            failed = dict(self._failed)
            tracked = [
                TrackedContainer(
                    info,
                    policy_names(key),
                    rs.id if (rs := self._rulesets.get(key)) else None,
                    error=failed[info.id].reason if info.id in failed else None,
                    start_window=self._start_windows.get(info.id),
                )
                for info, key in self._containers.values()
            ]
            # Failed before any ruleset of this run was in force: shown, not enforced.
            tracked += [
                TrackedContainer(
                    f.info,
                    (),
                    self._inherited.get(f.info.cgroup.id),
                    enforced=f.info.cgroup.id in self._inherited,
                    error=f.reason,
                )
                for cid, f in failed.items()
                if cid not in self._containers
            ]
            policies, enforcements = self._policies, list(self._enforcements)
        maps = self._loaded.maps if self._loaded else {}
        return build(
            StatusInputs(
                started_at=self._started,
                policies_dir=self._config.policies_dir,
                pin_root=self._config.pin_root,
                policies=policies,
                table=self._table,
                containers=tracked,
                counters=self._maps.counters if self._maps else (lambda _cgroup: {}),
                kernel_stats=self.kernel_stats(),
                enforcements=enforcements,
                maps=maps,
                audit_records=self.audit.writer.records,
                audit_events=self.audit.writer.events,
                audit_write_errors=self.audit.writer.write_errors,
                audit_log=self.audit.writer.name,
                audit_losses=self.audit.writer.losses,
                docker_connected=bool(self._tracker and self._tracker.connected.is_set()),
                reload_failures=self.reload_failures,
                enforcement_failures=self.enforcement_failures,
                not_enforced_reasons=self._not_enforced_reasons(),
                open_cache=self._maps.open_cache if self._maps else None,
            )
        )

    def _not_enforced_reasons(self) -> dict[str, str]:
        why = self._loaded.lsm_error if self._loaded else None
        if not why:
            return {}
        reason = f"the BPF-LSM programs did not load on this kernel: {why} (see `enforcer doctor`)"
        return {"file": reason, "exec": reason}
