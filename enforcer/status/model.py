"""The status document: what `enforcer status` shows and what metrics are derived from.

One pydantic model, produced by the daemon (Daemon.snapshot()), sent as JSON over the
status socket and parsed again by the client, so both ends agree on every field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

STATUS_VERSION = 1


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # newer daemons may add fields


class RuleCounter(_Doc):
    """Operations one rule denied (or audited) in one container, counted in the kernel."""

    policy: str
    rule: str  # "file[0]"
    action: str  # deny | audit (what the rule does in this container)
    count: int


class ContainerStatus(_Doc):
    id: str
    name: str
    image: str
    cgroup_id: int
    policies: tuple[str, ...]
    ruleset: int | None = None
    counters: tuple[RuleCounter, ...] = ()
    # enforced False: no ruleset of its is in force (writing it or attaching failed; retried
    # with backoff). error set with enforced True: an update failed, the previous ruleset
    # stays in force.
    enforced: bool = True
    error: str | None = None
    # Seconds it ran before all its policies were in force (policies selecting every
    # container held throughout): 0 registered by enforcer-runc before its first
    # instruction; None taken over from an earlier run of the daemon.
    start_window_seconds: float | None = None

    @property
    def denied(self) -> int:
        return sum(c.count for c in self.counters if c.action == "deny")

    @property
    def audited(self) -> int:
        return sum(c.count for c in self.counters if c.action == "audit")


class PolicyFileStatus(_Doc):
    file: str
    ok: bool
    policies: tuple[str, ...] = ()  # the policies in force from this file
    errors: tuple[str, ...] = ()  # FILE:LINE:COL: message
    kept_previous: bool = False  # invalid now; its last good version stays in force


class NotEnforced(_Doc):
    """Something a loaded policy asks for that this host or build does not enforce."""

    what: str  # "device rules", "file rules"
    why: str
    policies: tuple[str, ...] = ()  # loaded policies that have such rules


class MapFill(_Doc):
    name: str
    entries: int
    max_entries: int

    @property
    def ratio(self) -> float:
        return self.entries / self.max_entries if self.max_entries else 0.0


class OpenCacheStatus(_Doc):
    """The kernel's file_open decision cache: silent allows answered without a path walk."""

    enabled: bool
    why_off: str | None = None  # what keeps it off, when it is
    hits: int = 0  # opens allowed from the cache since the programs were loaded


class AuditStats(_Doc):
    """Userspace (records written) and kernel (ring buffer) side of the audit trail.

    `dropped`: events the kernel could not put in the ring buffer (the operation was still
    decided and counted per rule, so status totals stay exact; only its record is missing).
    `write_errors`: records that could not be written to the audit log (disk full, ...).
    """

    records: int = 0
    events: int = 0  # sum of `count` over records: records + events folded into them
    dropped: int = 0
    write_errors: int = 0
    denied: int = 0  # kernel totals since the programs were loaded
    audited: int = 0
    unresolved: int = 0  # paths too long/deep to resolve (denied, fail closed)
    scratch_busy: int = 0  # no scratch slot free (denied, fail closed)
    counter_full: int = 0  # per-rule counter map full (counted in `denied` only)
    kill_failed: int = 0  # clone3 into an outside cgroup whose caller could not be killed
    log: str = "-"  # where records go ("-" = stdout)
    losses: int = 0  # denials/audits not itemised, accounted in audit_loss records

    @property
    def folded(self) -> int:
        return self.events - self.records


class StatusDocument(_Doc):
    version: int = STATUS_VERSION
    pid: int
    started_at: str  # ISO 8601 UTC
    uptime_seconds: float
    docker_connected: bool = False
    policies_dir: str
    pin_root: str
    kernel_features: tuple[str, ...] = ()
    containers: tuple[ContainerStatus, ...] = ()
    policy_files: tuple[PolicyFileStatus, ...] = ()
    policy_reload_failures: int = 0
    enforcement_failures: int = 0  # container enforcement attempts that failed (retries too)
    not_enforced: tuple[NotEnforced, ...] = ()
    # Set when containers started without the runtime wrapper while policies with a
    # selector were loaded: what that means and how to close the window.
    start_window: str | None = None
    audit: AuditStats = AuditStats()
    open_cache: OpenCacheStatus | None = None  # None: the file programs are not loaded
    maps: tuple[MapFill, ...] = ()
