"""OperatorServices, as `enforcer run` starts them around the daemon: the status socket,
the opt-in metrics endpoint and the drop watch come up together and go away together."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from enforcer.status.client import fetch_status
from enforcer.status.services import OperatorServices
from tests.operator.fakes import FakeDaemon


def test_start_and_stop_together(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    path = tmp_path / "run" / "enforcer.sock"
    reads: list[int] = []

    def kernel_stats() -> dict[str, int]:
        reads.append(1)
        return dict(daemon.stats)

    services = OperatorServices(daemon.snapshot, kernel_stats, path, ("127.0.0.1", 0), drop_interval=0.05)
    with capture_logs() as logs, services:
        assert services.metrics is not None
        port = services.metrics.port
        assert fetch_status(path).containers[0].name == "web"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "enforcer_denials_total" in body
        deadline = time.monotonic() + 5
        while not reads:  # the watch has taken its baseline
            assert time.monotonic() < deadline
            time.sleep(0.01)
        daemon.stats["STAT_EVENTS_LOST"] = 4  # the ring buffer overflowed
        while not any(e["event"].startswith("audit records dropped") for e in logs):
            assert time.monotonic() < deadline, logs
            time.sleep(0.05)
    assert not path.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_metrics_are_off_unless_asked(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    services = OperatorServices(daemon.snapshot, daemon.kernel_stats, tmp_path / "s.sock", None)
    assert services.metrics is None
    services_no_socket = OperatorServices(daemon.snapshot, daemon.kernel_stats, None, None)
    assert services_no_socket.status is None
