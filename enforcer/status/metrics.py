"""Prometheus metrics, computed from the status document at scrape time.

Nothing is counted twice: per-rule numbers come from the kernel's counters (exact), audit
totals from the audit writer and the kernel's stats map. The endpoint is off unless
`--metrics-addr` is given, and listens on loopback unless a host is named.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from enforcer.errors import EnforcerError
from enforcer.status.model import StatusDocument

log = structlog.get_logger(__name__)

DEFAULT_HOST = "127.0.0.1"


def parse_addr(text: str) -> tuple[str, int]:
    """ "9464" / ":9464" -> loopback; "0.0.0.0:9464", "[::1]:9464", "localhost:9464"."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = "", text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_s)
    except ValueError:
        raise EnforcerError(f"bad --metrics-addr {text!r}", hint="use HOST:PORT, e.g. 127.0.0.1:9464") from None
    if not 0 < port < 65536:
        raise EnforcerError(f"bad --metrics-addr {text!r}: port out of range")
    return host, port


class StatusCollector(Collector):
    def __init__(self, snapshot: Callable[[], StatusDocument]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        doc = self._snapshot()
        labels = ["container", "policy", "rule"]
        denials = CounterMetricFamily(
            "enforcer_denials", "Operations denied, per container and rule (kernel counters)", labels=labels
        )
        audits = CounterMetricFamily(
            "enforcer_audits", "Operations audited, per container and rule (kernel counters)", labels=labels
        )
        for c in doc.containers:
            for rc in c.counters:
                (denials if rc.action == "deny" else audits).add_metric([c.name, rc.policy, rc.rule], rc.count)
        yield denials
        yield audits
        a = doc.audit
        for name, help_, value in (
            ("enforcer_kernel_denials", "Operations denied since the programs were loaded", a.denied),
            ("enforcer_kernel_audits", "Operations audited since the programs were loaded", a.audited),
            ("enforcer_audit_records", "Audit records written", a.records),
            ("enforcer_audit_events", "Events covered by the written records (sum of count)", a.events),
            ("enforcer_audit_events_folded", "Events folded into an earlier record (count > 1)", a.folded),
            ("enforcer_audit_events_dropped", "Events whose record was lost: kernel ring buffer full", a.dropped),
            ("enforcer_audit_write_errors", "Records that could not be written to the audit log", a.write_errors),
            ("enforcer_unresolved_paths", "Opens denied because the path could not be resolved", a.unresolved),
            ("enforcer_scratch_busy", "Operations denied because no scratch slot was free", a.scratch_busy),
            ("enforcer_counter_map_full", "Counted denials with no room in the per-rule counter map", a.counter_full),
            ("enforcer_cgroup_kill_failed", "clone3 calls out of the container not stopped", a.kill_failed),
            (
                "enforcer_policy_reload_failures",
                "Policy reloads that rejected a changed file",
                doc.policy_reload_failures,
            ),
            (
                "enforcer_enforcement_failures",
                "Container enforcement attempts that failed (map full, ENOMEM, EPERM; retries included)",
                doc.enforcement_failures,
            ),
        ):
            yield CounterMetricFamily(name, help_, value=value)
        if doc.open_cache is not None:
            yield CounterMetricFamily(
                "enforcer_open_cache_hits",
                "Opens allowed from the kernel's decision cache, with no path walk",
                value=doc.open_cache.hits,
            )
        yield GaugeMetricFamily(
            "enforcer_containers_tracked", "Containers under enforcement", value=len(doc.containers)
        )
        yield GaugeMetricFamily(
            "enforcer_containers_not_enforced",
            "Running containers with no ruleset in force (enforcement failed, retrying)",
            value=sum(1 for c in doc.containers if not c.enforced),
        )
        failing = GaugeMetricFamily(
            "enforcer_container_enforcement_failing",
            "1 per container whose last enforcement attempt failed; enforced=0 when nothing is in force",
            labels=["container", "enforced"],
        )
        for c in doc.containers:
            if c.error:
                failing.add_metric([c.name, str(int(c.enforced))], 1)
        yield failing
        files = GaugeMetricFamily("enforcer_policy_files", "Policy files by last load result", labels=["result"])
        files.add_metric(["ok"], sum(1 for f in doc.policy_files if f.ok))
        files.add_metric(["rejected"], sum(1 for f in doc.policy_files if not f.ok))
        yield files
        entries = GaugeMetricFamily("enforcer_map_entries", "Entries in a BPF map", labels=["map"])
        capacity = GaugeMetricFamily("enforcer_map_max_entries", "Capacity of a BPF map", labels=["map"])
        fill = GaugeMetricFamily("enforcer_map_fill_ratio", "entries / max_entries of a BPF map", labels=["map"])
        for m in doc.maps:
            entries.add_metric([m.name], m.entries)
            capacity.add_metric([m.name], m.max_entries)
            fill.add_metric([m.name], m.ratio)
        yield entries
        yield capacity
        yield fill
        ne = GaugeMetricFamily(
            "enforcer_rules_not_enforced",
            "1 per rule kind a loaded policy uses that this host does not enforce",
            labels=["kind"],
        )
        for n in doc.not_enforced:
            ne.add_metric([n.what], 1)
        yield ne
        yield GaugeMetricFamily(
            "enforcer_docker_connected", "1 when the Docker event stream is connected", value=int(doc.docker_connected)
        )


class MetricsServer:
    def __init__(self, addr: tuple[str, int], snapshot: Callable[[], StatusDocument]) -> None:
        self.host, self.port = addr
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(snapshot))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, self.host, registry=self.registry)
        except OSError as exc:
            raise EnforcerError(
                f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}",
                hint="pick a free port with --metrics-addr HOST:PORT",
            ) from exc
        self.port = self._server.server_port  # port 0 -> the one the kernel chose
        public = not _is_loopback(self.host)
        log.info(
            "metrics endpoint listening",
            url=f"http://{self.host}:{self.port}/metrics",
            **({"warning": "not loopback: anyone who can reach it sees container names"} if public else {}),
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread:
                self._thread.join(timeout=5)
            self._server = None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
