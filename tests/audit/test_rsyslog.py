"""A real syslog receiver parses what --audit-syslog sends: a private rsyslogd (Debian's
package, scripts/provision) with its own config in a temp dir, listening on loopback UDP
and TCP ports, writing what its RFC 5424 parser made of each message to a file. Started
and stopped here, by its pid."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.audit.records import AuditRecord, AuditWriter
from enforcer.audit.syslog import SyslogSink, parse_target
from tests.audit.test_formats import EVENTS, RULE, WEB


def _free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    binary = shutil.which("rsyslogd")
    if binary is None:
        pytest.fail("rsyslogd is not installed: run scripts/provision (it installs Debian's rsyslog)")
    udp, tcp = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    out = tmp_path / "received.log"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{tmp_path}")
module(load="imudp")
module(load="imtcp")
template(name="parsed" type="string" string="%pri%|%app-name%|%procid%|%msgid%|%hostname%|%msg%\\n")
ruleset(name="audit") {{ action(type="omfile" file="{out}" template="parsed") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="audit")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="audit")
""")
    proc = subprocess.Popen(
        [binary, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # up when the TCP input accepts
            try:
                socket.create_connection(("127.0.0.1", tcp), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    pytest.fail(f"rsyslogd did not start: {why}")
                time.sleep(0.1)
        yield udp, tcp, out
    finally:
        proc.terminate()  # our own rsyslogd, by its pid
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _received(out: Path, n: int) -> list[list[str]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = out.read_text().splitlines() if out.exists() else []
        if len(lines) >= n:
            return [line.split("|", 5) for line in lines]
        time.sleep(0.1)
    pytest.fail(f"rsyslogd wrote {out.read_text() if out.exists() else 'nothing'}")


def test_rsyslog_parses_udp_and_tcp_messages_as_rfc5424(rsyslog: tuple[int, int, Path]) -> None:
    udp, tcp, out = rsyslog
    sent = io.StringIO()
    sinks = [
        SyslogSink(parse_target(f"udp://127.0.0.1:{udp}"), hostname="host1"),
        SyslogSink(parse_target(f"tcp://127.0.0.1:{tcp}"), hostname="host1"),
    ]
    writer = AuditWriter(sent, forward=sinks)
    writer.write(AuditRecord(EVENTS["file_open"], RULE, WEB))
    for s in sinks:
        s.close()
    got = _received(out, 2)
    record = json.loads(sent.getvalue())
    for pri, app, procid, msgid, host, msg in got:
        assert (pri, app, msgid, host) == (str(13 * 8 + 4), "enforcer", "file_open", "host1")
        assert procid.isdigit()
        assert json.loads(msg.lstrip().removeprefix("\ufeff")) == record
