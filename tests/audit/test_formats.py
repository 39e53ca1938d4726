"""Formats SIEMs ingest: OCSF 1.1.0 events (validated against a JSON Schema of the classes
used, written from the OCSF 1.1.0 definitions) and RFC 5424 syslog messages, parsed as a
receiver sees them (unix datagram, UDP, TCP with octet counting, on loopback)."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from enforcer.audit.events import DeviceEvent, Event, FileEvent, NetEvent, SockEvent
from enforcer.audit.losses import Loss
from enforcer.audit.ocsf import from_record
from enforcer.audit.records import AuditRecord, AuditWriter, LossRecord
from enforcer.audit.syslog import SyslogSink, parse_target
from enforcer.compiler.rules import RuleRef
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo
from enforcer.errors import EnforcerError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).with_name("ocsf-1.1.0.schema.json")).read_text())
WEB = ContainerInfo(
    id="e" * 64, name="web", image="nginx:1.25", labels={}, pid=10, cgroup=CgroupRef("/sys/fs/cgroup/docker/x", 77)
)
RULE = RuleRef("protect-credentials", "file[0]")
# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG
RFC5424 = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) \ufeff(.*)", re.S)


def _hdr(hook: str, action: str = "deny") -> dict[str, Any]:
    return {
        "hook": hook,
        "action": action,
        "cgroup_id": 77,
        "pid": 1234,
        "uid": 0,
        "comm": "cat",
        "rule_id": 1,
        "ktime_ns": time.clock_gettime_ns(time.CLOCK_BOOTTIME),
    }


EVENTS: dict[str, Event] = {
    "file_open": FileEvent(**_hdr("file_open"), path="/etc/shadow", access=frozenset({"read"}), truncated=False),
    "path_unlink": FileEvent(**_hdr("path_unlink"), path="/etc/passwd", access=frozenset({"write"}), truncated=False),
    "exec": FileEvent(**_hdr("exec"), path="/usr/bin/nc", access=frozenset({"exec"}), truncated=False),
    "device": DeviceEvent(**_hdr("device"), type="char", major=1, minor=5, access=frozenset({"read"})),
    "connect": NetEvent(**_hdr("connect"), family="inet", protocol="tcp", address="127.0.0.2", port=8080),
    "bind": NetEvent(**_hdr("bind", "audit"), family="inet6", protocol="tcp", address="::1", port=9090),
    "egress": NetEvent(**_hdr("egress"), family="inet", protocol="udp", address="127.0.0.3", port=53),
    "sock_create": SockEvent(**_hdr("sock_create"), family="packet", type="raw", protocol=0),
}
CLASSES = {
    "file_open": (1001, 14),
    "path_unlink": (1001, 4),
    "exec": (1007, 1),
    "device": (1001, 2),
    "connect": (4001, 1),
    "bind": (4001, 7),
    "egress": (4001, 6),
    "sock_create": (4001, 99),
}


def _native(hook: str) -> dict[str, Any]:
    return AuditRecord(EVENTS[hook], RULE, WEB, count=3).to_json()


@pytest.mark.parametrize("hook", sorted(EVENTS))
def test_every_record_is_a_valid_ocsf_event_of_its_class(hook: str) -> None:
    ev = from_record(_native(hook), hostname="host1")
    jsonschema.validate(ev, SCHEMA)
    class_uid, activity = CLASSES[hook]
    assert (ev["class_uid"], ev["activity_id"], ev["type_uid"]) == (class_uid, activity, class_uid * 100 + activity)
    assert ev["count"] == 3 and ev["metadata"]["version"] == "1.1.0"
    assert ev["container"] == {"uid": "e" * 64, "name": "web", "image": {"name": "nginx:1.25"}}
    assert ev["unmapped"]["policy"] == "protect-credentials" and ev["unmapped"]["hook"] == hook
    if EVENTS[hook].action == "deny":
        assert (ev["action_id"], ev["disposition"], ev["status_detail"]) == (2, "Blocked", "EPERM")
    else:
        assert (ev["action_id"], ev["disposition"]) == (1, "Logged")
    assert ev["actor"]["process"] == {"pid": 1234, "name": "cat", "user": {"uid": "0"}}


def test_ocsf_fields_carry_the_target() -> None:
    assert from_record(_native("file_open"), "h")["file"]["path"] == "/etc/shadow"
    assert from_record(_native("exec"), "h")["process"]["file"]["path"] == "/usr/bin/nc"
    assert from_record(_native("connect"), "h")["dst_endpoint"] == {"ip": "127.0.0.2", "port": 8080}
    dev = from_record(_native("device"), "h")["file"]
    assert (dev["path"], dev["type_id"]) == ("/dev/char/1:5", 3)


def test_a_loss_record_is_a_valid_base_event() -> None:
    rec = LossRecord(Loss(77, 1, 12, 20, 8, "deny"), RULE, WEB, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    ev = from_record(rec.to_json(), "h")
    jsonschema.validate(ev, SCHEMA)
    assert (ev["class_uid"], ev["count"], ev["unmapped"]["hook"]) == (0, 12, "audit_loss")


def test_a_schema_violation_is_caught() -> None:  # the schema is not vacuous
    ev = from_record(_native("connect"), "h")
    del ev["dst_endpoint"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(ev, SCHEMA)


def test_the_writer_writes_ocsf_lines() -> None:
    out = io.StringIO()
    AuditWriter(out, fmt=lambda r: from_record(r, "h")).write(AuditRecord(EVENTS["exec"], RULE, WEB))
    jsonschema.validate(json.loads(out.getvalue()), SCHEMA)


# ----- syslog ---------------------------------------------------------------------------
class Receiver:
    """A loopback/unix syslog receiver that keeps what arrives, message by message."""

    def __init__(self, kind: str, path: Path | None = None) -> None:
        self.kind = kind
        self.messages: list[str] = []
        if kind == "unix":
            assert path is not None
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(str(path))
            self.target = str(path)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.target = f"{kind}://127.0.0.1:{self.sock.getsockname()[1]}"
            if kind == "tcp":
                self.sock.listen(1)
        self.sock.settimeout(5)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        if self.kind != "tcp":
            while True:
                try:
                    self.messages.append(self.sock.recv(65536).decode())
                except OSError:
                    return
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        buf = b""
        with conn:
            while chunk := conn.recv(65536):
                buf += chunk
                while b" " in buf:  # RFC 6587 octet counting: LEN SP MSG
                    n, rest = buf.split(b" ", 1)
                    if len(rest) < int(n):
                        break
                    self.messages.append(rest[: int(n)].decode())
                    buf = rest[int(n) :]

    def wait(self, n: int) -> list[str]:
        deadline = time.monotonic() + 5
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["unix", "udp", "tcp"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(request.param, tmp_path / "log.sock")
    yield r
    r.close()


def test_syslog_messages_are_rfc5424_and_carry_the_record(receiver: Receiver) -> None:
    sink = SyslogSink(parse_target(receiver.target), hostname="host1")
    out = io.StringIO()
    writer = AuditWriter(out, forward=[sink])
    writer.write(AuditRecord(EVENTS["file_open"], RULE, WEB))
    writer.write(AuditRecord(EVENTS["bind"], RULE, WEB))
    sink.close()
    msgs = receiver.wait(2)
    assert len(msgs) == 2 and writer.forward_errors == 0
    parsed = [RFC5424.fullmatch(m) for m in msgs]
    assert all(parsed), msgs
    pri, ts, host, app, _pid, msgid, sd, body = parsed[0].groups()  # type: ignore[union-attr]
    assert (int(pri), host, app, msgid, sd) == (13 * 8 + 4, "host1", "enforcer", "file_open", "-")
    assert ts.endswith("Z") and json.loads(body) == json.loads(out.getvalue().splitlines()[0])
    assert int(parsed[1].group(1)) == 13 * 8 + 5  # type: ignore[union-attr]  # an audit match: notice


@pytest.mark.parametrize(
    "target", ["relative/log", "udp://127.0.0.1", "http://127.0.0.1:514", "tcp://:514", "/nonexistent/dev/log"]
)
def test_a_bad_syslog_target_is_a_one_line_error_and_exit_1(target: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "enforcer", "run", "--audit-syslog", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "--audit-syslog" in run.stderr and "Traceback" not in run.stderr


def test_a_tcp_target_nobody_listens_on_is_refused_at_start() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(EnforcerError, match="cannot reach the syslog target"):
        SyslogSink(parse_target(f"tcp://127.0.0.1:{port}"))
