"""`enforcer install-service`: a unit systemd accepts, tied to dockerd, restarting on failure,
logging to the journal; /etc/enforcer seeded without overwriting an operator's policies."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

from click.testing import CliRunner

from enforcer.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def install(tmp_path: Path) -> tuple[int, str]:
    r = CliRunner().invoke(
        cli,
        ["install-service", "--unit-dir", str(tmp_path / "units"), "--etc", str(tmp_path / "etc"), "--no-reload"],
        catch_exceptions=False,
    )
    return r.exit_code, r.output


def unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(path.read_text().replace("\\\n", " "))
    return cp


def test_installed_unit(tmp_path: Path) -> None:
    code, out = install(tmp_path)
    assert code == 0, out
    u = unit(tmp_path / "units" / "enforcer.service")
    assert "docker.service" in u["Unit"]["Wants"] and "docker.service" in u["Unit"]["Before"]
    assert u["Service"]["Restart"] == "on-failure"
    assert u["Service"]["StandardError"] == "journal"
    start = u["Service"]["ExecStart"]
    assert "@ENFORCER@" not in start and " run " in start
    assert "--audit-log /var/log/enforcer/audit.jsonl" in start
    assert "--status-socket /run/enforcer/enforcer.sock" in start
    assert u["Service"]["RuntimeDirectoryMode"] == "0700"
    assert "docker.service" in u["Install"]["WantedBy"]
    shipped = sorted(p.name for p in (ROOT / "policies").glob("*.yaml"))
    assert sorted(p.name for p in (tmp_path / "etc" / "policies").iterdir()) == shipped
    assert (tmp_path / "etc" / "policy.schema.json").stat().st_size > 1000


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    install(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "units" / "enforcer.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "enforcer.service" not in proc.stderr, proc.stderr  # no warnings about our unit


def test_existing_policies_are_kept(tmp_path: Path) -> None:
    mine = tmp_path / "etc" / "policies"
    mine.mkdir(parents=True)
    (mine / "site.yaml").write_text("# the operator's own\n")
    code, out = install(tmp_path)
    assert code == 0 and "kept" in out
    assert [p.name for p in mine.iterdir()] == ["site.yaml"]
