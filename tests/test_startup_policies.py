"""A policy file that does not validate at start never leaves containers without it in
silence (issue 13 item 6): with the versions an earlier run had in force, the daemon keeps
that file's last good version (as a hot reload does) and says so loudly; with none, it
refuses to start with FILE:LINE:COL and exit 1, before touching the kernel."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enforcer.audit.records import AuditWriter
from enforcer.daemon import Daemon, DaemonConfig
from enforcer.errors import EnforcerError
from enforcer.kernel.state import PolicyStore, policies_file
from enforcer.policy.loader import ParseCache, load_directory

GOOD = """apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: creds}
spec:
  file:
    - {action: deny, paths: [/etc/shadow]}
"""
BROKEN = GOOD.replace("paths:", "pathz:")  # an unknown key at line 6, col 22
OTHER = GOOD.replace("creds", "other").replace("/etc/shadow", "/etc/gshadow")


def _daemon(tmp_path: Path) -> Daemon:
    config = DaemonConfig(
        tmp_path / "policies", pin_root=Path("/sys/fs/bpf/enforcer-test-startup"), state_dir=tmp_path / "state"
    )
    return Daemon(config, AuditWriter(io.StringIO()))


def _in_force_before(tmp_path: Path) -> None:
    """What an earlier run left: the good version was in force."""
    store = PolicyStore(policies_file(Path("/sys/fs/bpf/enforcer-test-startup"), tmp_path / "state"))
    parsed: ParseCache = {}
    store.save(load_directory(tmp_path / "policies", cache=parsed), parsed)


def test_a_broken_file_with_a_version_in_force_before_keeps_that_version(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "creds.yaml").write_text(GOOD)
    (tmp_path / "policies" / "other.yaml").write_text(OTHER)
    _in_force_before(tmp_path)
    (tmp_path / "policies" / "creds.yaml").write_text(BROKEN)  # edited while the daemon was down

    policies = _daemon(tmp_path).startup_policies()

    assert policies.names == ("creds", "other")  # the old creds, the current other
    [creds] = [f for f in policies.files if f.file.endswith("creds.yaml")]
    assert creds.kept_previous and str(creds.errors[0]).startswith(f"{tmp_path}/policies/creds.yaml:6:")
    assert policies.get("creds").spec.file[0].paths == ("/etc/shadow",)  # type: ignore[union-attr]


def test_a_broken_file_with_nothing_from_before_stops_the_start_with_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "creds.yaml").write_text(BROKEN)
    with pytest.raises(EnforcerError, match=r"creds\.yaml:6:\d+: .*pathz"):
        _daemon(tmp_path).startup_policies()


def test_a_new_broken_file_beside_kept_state_still_stops_the_start(tmp_path: Path) -> None:
    """Its policies were never in force: nothing could be kept for it."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "other.yaml").write_text(OTHER)
    _in_force_before(tmp_path)
    (tmp_path / "policies" / "creds.yaml").write_text(BROKEN)
    with pytest.raises(EnforcerError, match=r"creds\.yaml:6:"):
        _daemon(tmp_path).startup_policies()


def test_an_unreadable_saved_state_is_no_excuse_to_start_without_a_policy(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "creds.yaml").write_text(BROKEN)
    path = policies_file(Path("/sys/fs/bpf/enforcer-test-startup"), tmp_path / "state")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(EnforcerError, match=r"creds\.yaml:6:"):
        _daemon(tmp_path).startup_policies()


def test_the_saved_state_is_private(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "creds.yaml").write_text(GOOD)
    _in_force_before(tmp_path)
    path = policies_file(Path("/sys/fs/bpf/enforcer-test-startup"), tmp_path / "state")
    assert path.stat().st_mode & 0o077 == 0
    assert PolicyStore(path).load().names == ("creds",)  # type: ignore[union-attr]


def test_enforcer_run_refuses_a_broken_policy_directory_with_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "creds.yaml").write_text(BROKEN)
    pin_root = f"/sys/fs/bpf/enforcer-test-startup-{os.getpid()}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "enforcer",
            "run",
            "--policies",
            str(tmp_path / "policies"),
            "--pin-root",
            pin_root,
            "--status-socket",
            "",
            "--runtime-socket",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("enforcer: policy files do not validate") and "creds.yaml:6:" in last
    assert "Traceback" not in proc.stderr
    assert not Path(pin_root).exists()  # refused before anything was loaded or pinned
