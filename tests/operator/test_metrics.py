"""Prometheus metrics: off unless asked, loopback unless a host is named, numbers taken from
the status document at scrape time (so they equal what `enforcer status` shows)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from enforcer.errors import EnforcerError
from enforcer.status.metrics import MetricsServer, parse_addr
from tests.operator.fakes import FakeDaemon


@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, FakeDaemon]]:
    daemon = FakeDaemon()
    with socket.socket() as probe:  # a free port, given the way an operator would: no host
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    srv = MetricsServer(parse_addr(str(port)), daemon.snapshot)
    srv.start()
    try:
        yield srv, daemon
    finally:
        srv.stop()


def scrape(srv: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{srv.host}:{srv.port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_parse_addr_defaults_to_loopback() -> None:
    assert parse_addr("9464") == ("127.0.0.1", 9464)
    assert parse_addr(":9464") == ("127.0.0.1", 9464)
    assert parse_addr("[::1]:9464") == ("::1", 9464)
    assert parse_addr("0.0.0.0:9464") == ("0.0.0.0", 9464)
    with pytest.raises(EnforcerError):
        parse_addr("host:http")


def test_listens_on_loopback_only(server: tuple[MetricsServer, FakeDaemon]) -> None:
    srv, _ = server
    assert srv._server is not None and srv._server.server_address[0] == "127.0.0.1"


def test_metrics_per_container_policy_rule(server: tuple[MetricsServer, FakeDaemon]) -> None:
    srv, _daemon = server
    m = scrape(srv)

    def web(policy: str, rule: str) -> tuple[tuple[str, str], ...]:
        return (("container", "web"), ("policy", policy), ("rule", rule))

    assert m[("enforcer_denials_total", web("protect-credentials", "file[0]"))] == 3
    assert m[("enforcer_audits_total", web("protect-credentials", "file[1]"))] == 1
    assert m[("enforcer_audits_total", web("audit-package-managers", "exec[0]"))] == 2
    assert m[("enforcer_containers_tracked", ())] == 1
    assert m[("enforcer_audit_events_folded_total", ())] == 4
    assert m[("enforcer_audit_events_dropped_total", ())] == 0
    assert m[("enforcer_policy_reload_failures_total", ())] == 1
    assert m[("enforcer_policy_files", (("result", "rejected"),))] == 1
    assert m[("enforcer_map_fill_ratio", (("map", "path_rules"),))] == pytest.approx(60000 / 65536)
    assert m[("enforcer_rules_not_enforced", (("kind", "device rules"),))] == 1


def test_scrape_reads_live_numbers(server: tuple[MetricsServer, FakeDaemon]) -> None:
    srv, daemon = server
    daemon.stats["STAT_EVENTS_LOST"] = 9
    daemon.counts[4242][daemon.shadow] = 10
    m = scrape(srv)
    assert m[("enforcer_audit_events_dropped_total", ())] == 9
    assert (
        m[("enforcer_denials_total", (("container", "web"), ("policy", "protect-credentials"), ("rule", "file[0]")))]
        == 10
    )


def test_a_cgroup_escape_that_was_not_stopped_shows_in_status_and_metrics(
    server: tuple[MetricsServer, FakeDaemon],
) -> None:
    srv, daemon = server
    assert scrape(srv)[("enforcer_cgroup_kill_failed_total", ())] == 0
    daemon.stats["STAT_KILL_FAILED"] = 2
    assert daemon.snapshot().audit.kill_failed == 2
    assert scrape(srv)[("enforcer_cgroup_kill_failed_total", ())] == 2
