"""The audit log end to end on the host: AuditWriter -> RotatingFile (size rotation, reopen
on SIGHUP, write errors counted) -> `enforcer audit` (rotated and gzipped files, filters,
table and JSON lines, --follow across rotation). Denial drops are warned about."""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from enforcer.audit.drops import DropWatch
from enforcer.audit.events import FileEvent
from enforcer.audit.reader import Filter, Reader, Record, log_files, parse_since
from enforcer.audit.records import AuditRecord, AuditWriter
from enforcer.audit.sink import RotatingFile
from enforcer.cli import cli
from enforcer.commands.run import install_signal_handlers
from enforcer.compiler.rules import RuleRef
from enforcer.errors import EnforcerError
from enforcer.status.server import StatusServer
from tests.operator.fakes import FakeDaemon, container

ROOT = Path(__file__).resolve().parents[2]


def record(
    name: str = "web",
    path: str = "/etc/shadow",
    policy: str = "protect-credentials",
    action: str = "deny",
    count: int = 1,
    ago: float = 0.0,
) -> AuditRecord:
    ktime = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - int(ago * 1e9)
    event = FileEvent(
        hook="file_open",
        action=action,
        cgroup_id=4242,
        pid=1234,
        uid=0,
        comm="cat",
        rule_id=1,
        ktime_ns=ktime,
        path=path,
        access=frozenset({"read"}),
        truncated=False,
    )
    return AuditRecord(event, RuleRef(policy, "file[0]"), container(name), count)


def lines(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def cli_run(*args: str) -> tuple[int, str, str]:
    r = CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False, standalone_mode=False)
    return r.exit_code, r.stdout, r.stderr


# ----- writing ----------------------------------------------------------------------------


def test_size_rotation_keeps_n_backups_and_loses_no_record(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = RotatingFile(log, max_bytes=2000, backups=3)
    writer = AuditWriter(sink)
    for i in range(20):
        writer.write(record(path=f"/etc/secret-{i:02d}"))
    sink.close()
    files = log_files(log)
    assert [p.name for p in files] == ["audit.jsonl.3", "audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
    assert all(p.stat().st_size <= 2000 for p in files)
    assert oct(log.stat().st_mode & 0o777) == oct(0o640)
    # The newest records are all there, in order, with nothing cut: the oldest went with
    # the backup that fell off the end (retention), never in the middle.
    paths = [r["target"]["path"] for r in Reader().history(log)]
    assert paths == [f"/etc/secret-{i:02d}" for i in range(20 - len(paths), 20)]
    assert sink.rotations >= 3 and writer.records == 20


def test_sighup_reopens_the_log_after_logrotate_renamed_it(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = RotatingFile(log)
    writer = AuditWriter(sink)
    stop = threading.Event()
    old = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)}
    try:
        install_signal_handlers(stop, sink)
        writer.write(record(path="/before"))
        os.rename(log, tmp_path / "audit.jsonl.1")  # what logrotate does
        writer.write(record(path="/still-old-file"))  # no HUP yet: the open file is used
        os.kill(os.getpid(), signal.SIGHUP)
        writer.write(record(path="/after"))
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sink.close()
    assert [r["target"]["path"] for r in lines(tmp_path / "audit.jsonl.1")] == ["/before", "/still-old-file"]
    assert [r["target"]["path"] for r in lines(log)] == ["/after"]


class FullDisk:
    name = "/var/log/enforcer/audit.jsonl"

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass


def test_write_errors_are_counted_and_logged_not_silent() -> None:
    writer = AuditWriter(FullDisk())
    with capture_logs() as logs:
        writer.write(record(count=3))
    assert (writer.records, writer.write_errors, writer.events_lost) == (0, 1, 3)
    (entry,) = [e for e in logs if e["event"] == "audit record not written"]
    assert entry["log_level"] == "error" and "/etc/shadow" in entry["record"]


def test_drop_watch_warns_when_kernel_drops_grow() -> None:
    stats = {"STAT_EVENTS_LOST": 5}
    watch = DropWatch(lambda: stats)
    with capture_logs() as logs:
        assert watch.check() == 0  # baseline (earlier drops are reported once, as old)
        assert watch.check() == 0
        stats["STAT_EVENTS_LOST"] = 12
        assert watch.check() == 7
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [w.get("dropped") for w in warnings] == [None, 7]
    assert warnings[1]["dropped_total"] == 12


# ----- reading ----------------------------------------------------------------------------


@pytest.fixture
def rotated_log(tmp_path: Path) -> Path:
    """audit.jsonl.2.gz (oldest, compressed by logrotate), audit.jsonl.1, audit.jsonl."""
    log = tmp_path / "audit.jsonl"
    for i, (name, path, policy, ago) in enumerate(
        [
            ("web", "/etc/shadow", "protect-credentials", 7200),
            ("db", "/root/.ssh/id_rsa", "protect-credentials", 3000),
            ("web-2", "/usr/bin/apt", "audit-package-managers", 60),
        ]
    ):
        sink = RotatingFile(log)
        AuditWriter(sink).write(record(name=name, path=path, policy=policy, ago=ago))
        sink.close()
        if i < 2:
            RotatingFile(log).rotate()
    with open(tmp_path / "audit.jsonl.2", "rb") as f, gzip.open(tmp_path / "audit.jsonl.2.gz", "wb") as g:
        g.write(f.read())
    (tmp_path / "audit.jsonl.2").unlink()
    with log.open("a") as f:
        f.write('{"timestamp": "2026-11-2\n')  # a line cut by a crash
    return log


def test_reads_rotated_and_gzipped_logs_oldest_first(rotated_log: Path) -> None:
    reader = Reader()
    names = [r["container"]["name"] for r in reader.history(rotated_log)]
    assert names == ["web", "db", "web-2"]
    assert reader.skipped == 1


def test_filters() -> None:
    r = record(name="web-1").to_json()
    assert Filter(container="web-*")(r) and Filter(container="eeb261d1")(r)
    assert not Filter(container="web")(r) and not Filter(policy="other")(r)
    assert Filter(policy="protect-*", since=datetime.now(UTC) - timedelta(minutes=1))(r)
    assert not Filter(since=datetime.now(UTC) + timedelta(minutes=1))(r)


def test_parse_since() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_since("1h30m", now) == now - timedelta(minutes=90)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-11-24T18:00:00Z", now) == datetime(2026, 11, 24, 18, tzinfo=UTC)
    with pytest.raises(EnforcerError, match="bad --since"):
        parse_since("yesterday", now)


def test_cli_table_finds_a_denial(rotated_log: Path) -> None:
    code, out, err = cli_run("audit", "--log", str(rotated_log), "--container", "db")
    assert code == 0
    assert "db" in out and "/root/.ssh/id_rsa (read)" in out and "protect-credentials" in out
    assert "web" not in out and "1 record(s)" in err  # piped: whole lines, the summary aside
    assert "skipped 1 line" in err


def test_piped_output_is_one_whole_record_per_line_at_80_columns(tmp_path: Path) -> None:
    """`enforcer audit | grep PATH` finds what the table shows: nothing wrapped or cut."""
    log = tmp_path / "audit.jsonl"
    deep = "/var/lib/app/" + "/".join(f"directory-{i}" for i in range(12)) + "/shadow"
    writer = AuditWriter(RotatingFile(log))
    writer.write(record(name="a-container-with-a-long-name", path=deep))
    writer.write(record(path="/etc/shadow"))
    out = subprocess.run(
        [sys.executable, "-m", "enforcer", "audit", "--log", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert len(rows) == 2
    assert deep in rows[0] and "a-container-with-a-long-name" in rows[0] and "protect-credentials" in rows[0]
    assert "/etc/shadow" in rows[1] and "2 record(s)" in out.stderr


def test_without_log_it_reads_the_file_the_running_daemon_writes(tmp_path: Path) -> None:
    log = tmp_path / "elsewhere" / "trail.jsonl"
    AuditWriter(RotatingFile(log)).write(record(name="db", path="/root/.ssh/id_rsa"))
    doc = FakeDaemon().snapshot()
    doc = doc.model_copy(update={"audit": doc.audit.model_copy(update={"log": str(log)})})
    sock = tmp_path / "enforcer.sock"
    with StatusServer(sock, lambda: doc):
        code, out, _ = cli_run("audit", "--socket", str(sock), "--json")
    assert code == 0 and json.loads(out)["target"]["path"] == "/root/.ssh/id_rsa"


def test_without_log_or_daemon_it_reads_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "audit.jsonl"
    AuditWriter(RotatingFile(default)).write(record(name="web"))
    monkeypatch.setattr("enforcer.commands.audit.DEFAULT_LOG", default)
    code, out, _ = cli_run("audit", "--socket", str(tmp_path / "no-daemon.sock"), "--json")
    assert code == 0 and json.loads(out)["container"]["name"] == "web"


def test_cli_json_lines_with_since_and_policy(rotated_log: Path) -> None:
    code, out, _ = cli_run("audit", "--log", str(rotated_log), "--json", "--since", "1h", "--policy", "audit-*")
    assert code == 0
    (r,) = [json.loads(line) for line in out.splitlines()]
    assert r["container"]["name"] == "web-2" and r["errno"] == "EPERM" and r["count"] == 1


def test_cli_missing_log_is_one_line_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "enforcer", "audit", "--log", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 1 and "no audit log at" in out.stderr and "Traceback" not in out.stderr


# ----- following --------------------------------------------------------------------------


def _follow(log: Path) -> tuple[Iterator[Record], threading.Event]:
    stop = threading.Event()
    return Reader().follow(log, stop=stop.is_set, poll=0.02), stop


def test_follow_survives_size_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = RotatingFile(log, max_bytes=1500, backups=10)
    writer = AuditWriter(sink)
    writer.write(record(path="/first"))
    seen: list[str] = []
    it, stop = _follow(log)

    def consume() -> None:
        for r in it:
            seen.append(r["target"]["path"])

    t = threading.Thread(target=consume)
    t.start()
    try:
        for i in range(12):  # several rotations while following
            writer.write(record(path=f"/p{i}"))
            time.sleep(0.03)
        deadline = time.monotonic() + 10
        while len(seen) < 13 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen == ["/first"] + [f"/p{i}" for i in range(12)]
        assert sink.rotations >= 3
        sink.max_bytes = 0
        for i in range(3):
            writer.write(record(path=f"/q{i}"))
        while len(seen) < 16 and time.monotonic() < deadline:
            time.sleep(0.02)
        # logrotate copytruncate: the file shrinks under the reader (seen when it shrinks
        # below what was read, as with tail -F)
        os.truncate(log, 0)
        writer.write(record(path="/after-truncate"))
        while len(seen) < 17 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen[-1] == "/after-truncate"
    finally:
        stop.set()
        t.join(5)
        sink.close()


def test_cli_follow_prints_new_records(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = RotatingFile(log)
    writer = AuditWriter(sink)
    writer.write(record(name="old"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "enforcer", "audit", "--log", str(log), "--follow", "--json", "--container", "web*"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        writer.write(record(name="other"))
        writer.write(record(name="web-9", path="/etc/gshadow"))
        assert proc.stdout is not None
        got = json.loads(proc.stdout.readline())
        assert got["container"]["name"] == "web-9" and got["target"]["path"] == "/etc/gshadow"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        sink.close()
