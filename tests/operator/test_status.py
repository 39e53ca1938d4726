"""`enforcer status`: the document, the root-only socket, the CLI in both formats.

The daemon side is a fake implementing snapshot() (tests/operator/fakes.py) over the real
collector; the socket, server thread, client and CLI are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from enforcer.cli import cli
from enforcer.compiler.rules import RuleRef
from enforcer.errors import EnforcerError
from enforcer.policy.loader import parse_text
from enforcer.status.client import fetch_status
from enforcer.status.collect import TrackedContainer, rule_action, start_window_note
from enforcer.status.model import StatusDocument
from enforcer.status.render import render
from enforcer.status.server import StatusServer
from tests.operator.fakes import FakeDaemon, FakeOpenCache, container, policy_set
from tests.unix_peer import request_as

NOBODY = 65534
STATUS_REQUEST = b'{"request": "status"}\n'


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
def served(tmp_path: Path, daemon: FakeDaemon) -> Iterator[Path]:
    path = tmp_path / "run" / "enforcer" / "enforcer.sock"
    with StatusServer(path, daemon.snapshot):
        yield path


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, standalone_mode=False)
    return result.exit_code, result.output


# ----- the document -----------------------------------------------------------------------


def test_counters_name_policy_rule_and_action(daemon: FakeDaemon) -> None:
    (web,) = daemon.snapshot().containers
    got = {(c.policy, c.rule): (c.action, c.count) for c in web.counters}
    assert got == {
        ("protect-credentials", "file[0]"): ("deny", 3),
        ("protect-credentials", "file[1]"): ("audit", 1),
        ("audit-package-managers", "exec[0]"): ("audit", 2),  # deny rule, audit-mode policy
    }
    assert (web.denied, web.audited) == (3, 3)


def test_rule_action_of_internal_refs_is_deny() -> None:
    assert rule_action(policy_set(), RuleRef("enforcer", "unresolved-path")) == "deny"


def test_failed_policy_file_reported_with_file_line_col(daemon: FakeDaemon) -> None:
    files = {f.file: f for f in daemon.snapshot().policy_files}
    broken = files["/etc/enforcer/policies/broken.yaml"]
    assert not broken.ok
    assert broken.errors == ("/etc/enforcer/policies/broken.yaml:7:9: unknown key 'path'",)


def test_rule_kinds_without_enforcement_are_reported_with_the_policies_using_them(daemon: FakeDaemon) -> None:
    doc = daemon.snapshot()
    assert [(n.what, n.policies) for n in doc.not_enforced] == [("device rules", ("protect-credentials",))]
    assert "device" in doc.not_enforced[0].why
    assert "file rules" in doc.kernel_features and "exec rules" in doc.kernel_features


def test_audit_stats_carry_kernel_drops(daemon: FakeDaemon) -> None:
    daemon.stats["STAT_EVENTS_LOST"] = 7
    a = daemon.snapshot().audit
    assert (a.dropped, a.denied, a.records, a.events, a.folded) == (7, 3, 5, 9, 4)


@pytest.mark.parametrize(
    ("cache", "shown"),
    [
        (FakeOpenCache(), "opens allowed from the decision cache 41"),
        (FakeOpenCache(False, "mount_lock not in /proc/kallsyms"), "off: mount_lock not in /proc/kallsyms"),
    ],
    ids=["on", "off"],
)
def test_the_decision_cache_shows_its_hits_or_why_it_is_off(
    daemon: FakeDaemon, cache: FakeOpenCache, shown: str
) -> None:
    daemon.stats["STAT_OPEN_CACHED"] = 41
    daemon.open_cache = cache
    console = Console(record=True, width=200)
    render(daemon.snapshot(), console)
    assert shown in " ".join(console.export_text().replace("│", " ").split())


def test_no_decision_cache_is_shown_without_the_file_programs(daemon: FakeDaemon) -> None:
    assert daemon.snapshot().open_cache is None


# ----- the socket -------------------------------------------------------------------------


def test_socket_is_root_only(served: Path) -> None:
    assert stat.S_IMODE(served.stat().st_mode) == 0o600
    assert stat.S_IMODE(served.parent.stat().st_mode) == 0o700
    assert served.stat().st_uid == os.geteuid() == 0


def test_other_users_cannot_connect(served: Path) -> None:
    assert request_as(NOBODY, served, STATUS_REQUEST) == "ERR 13"  # EACCES from the 0700 directory / 0600 socket


def test_peer_uid_is_checked_even_if_the_file_mode_is_loosened(daemon: FakeDaemon) -> None:
    base = Path(tempfile.mkdtemp(prefix="enforcer-status-"))  # /tmp/pytest-of-root is 0700
    try:
        path = base / "run" / "enforcer.sock"
        with StatusServer(path, daemon.snapshot):
            for p, mode in ((base, 0o755), (path.parent, 0o755), (path, 0o666)):
                os.chmod(p, mode)
            reply = json.loads(request_as(NOBODY, path, STATUS_REQUEST))
        assert "permission denied" in reply["error"] and "pid" not in reply
    finally:
        shutil.rmtree(base)


def test_stale_socket_is_replaced(tmp_path: Path, daemon: FakeDaemon) -> None:
    path = tmp_path / "s.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a daemon killed with -9
    with StatusServer(path, daemon.snapshot):
        assert fetch_status(path).containers[0].name == "web"
    assert not path.exists()  # removed on stop


def test_a_live_socket_is_not_stolen(served: Path, daemon: FakeDaemon) -> None:
    with pytest.raises(EnforcerError, match="another enforcer"):
        StatusServer(served, daemon.snapshot).start()
    assert fetch_status(served).pid == os.getpid()


def test_snapshot_failure_is_an_error_reply_not_a_dead_server(tmp_path: Path, daemon: FakeDaemon) -> None:
    calls = iter([RuntimeError("boom")])

    def flaky() -> StatusDocument:
        for exc in calls:
            raise exc
        return daemon.snapshot()

    path = tmp_path / "s.sock"
    with StatusServer(path, flaky):
        with pytest.raises(EnforcerError, match="boom"):
            fetch_status(path)
        assert fetch_status(path).containers  # still serving


# ----- the CLI ----------------------------------------------------------------------------


def test_status_json(served: Path) -> None:
    code, out = run_cli("status", "--json", "--socket", str(served))
    assert code == 0
    doc = json.loads(out)
    web = doc["containers"][0]
    assert web["name"] == "web" and web["policies"] == ["protect-credentials", "audit-package-managers"]
    assert {"policy": "protect-credentials", "rule": "file[0]", "action": "deny", "count": 3} in web["counters"]
    assert doc["audit"]["log"] == "/var/log/enforcer/audit.jsonl"


def test_status_table(served: Path) -> None:
    code, out = run_cli("status", "--socket", str(served))
    assert code == 0
    for text in (
        "web",
        "nginx:1.25",
        "protect-credentials/file[0]",
        "deny",
        "broken.yaml:7:9: unknown key 'path'",
        "device rules",
        "records dropped",
        "path_rules",
        "up 1h2m",
    ):
        assert text in out, text


SELECTED = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: web-only}
spec:
  selector: {containerNames: ["web*"]}
  file:
    - {action: deny, paths: [/etc/hosts]}
"""


def test_a_container_started_without_the_wrapper_shows_its_start_window_and_what_it_means() -> None:
    every = policy_set().policies
    loaded, errors = parse_text(SELECTED, "/etc/enforcer/policies/web.yaml")
    assert not errors
    selected = tuple(lp.policy for lp in loaded)
    late = TrackedContainer(container("web"), ("protect-credentials", "web-only"), 1, start_window=1.25)
    early = TrackedContainer(container("db", 7), ("protect-credentials",), 2, start_window=0.0)
    note = start_window_note((*every, *selected), [late, early])
    assert note is not None
    assert note.startswith("1 container(s) started without the enforcer-runc runtime wrapper")
    assert "policies with a selector (web-only)" in note and "1.250 s, web" in note
    assert "enforcer install-runtime" in note
    # every policy selects every container, or every container came through the wrapper: no window
    assert start_window_note(every, [late]) is None
    assert start_window_note((*every, *selected), [early]) is None


def test_status_table_and_json_show_the_start_window(daemon: FakeDaemon) -> None:
    doc = daemon.snapshot()
    web = doc.containers[0].model_copy(update={"start_window_seconds": 0.75})
    doc = doc.model_copy(update={"containers": (web,), "start_window": "1 container(s) started without"})
    console = Console(record=True, width=200)
    render(doc, console)
    out = console.export_text()
    assert "start window 0.750 s" in out and "Start window: 1 container(s) started without" in out
    assert json.loads(doc.model_dump_json())["containers"][0]["start_window_seconds"] == 0.75


def test_status_without_daemon_is_one_line_exit_1(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "enforcer", "status", "--socket", str(tmp_path / "none.sock")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "no enforcer daemon is listening" in out.stderr
