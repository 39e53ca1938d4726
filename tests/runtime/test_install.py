"""install-runtime edits daemon.json so that every container starts through enforcer-runc,
and uninstall-runtime puts it back exactly as it was."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypedDict

import pytest

from enforcer.errors import EnforcerError
from enforcer.runtime.install import install, uninstall
from enforcer.runtime.protocol import ShimConfig


class _Paths(TypedDict):
    daemon_json: Path
    config_path: Path


def _paths(tmp_path: Path) -> _Paths:
    return {"daemon_json": tmp_path / "daemon.json", "config_path": tmp_path / "enforcer" / "runtime.json"}


def test_install_sets_the_default_runtime_and_keeps_everything_else(tmp_path: Path) -> None:
    p = _paths(tmp_path)
    original: dict[str, Any] = {
        "log-driver": "journald",
        "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}},
        "default-runtime": "nvidia",
    }
    p["daemon_json"].write_text(json.dumps(original))
    p["daemon_json"].chmod(0o600)
    result = install(**p, shim="/usr/local/bin/enforcer-runc", runc="/usr/sbin/runc")
    assert result.changed
    doc = json.loads(p["daemon_json"].read_text())
    assert doc["default-runtime"] == "enforcer"
    launcher = p["config_path"].with_name("runtime-runc")
    assert doc["runtimes"]["enforcer"] == {
        "path": str(launcher),
        "runtimeArgs": [f"--enforcer-config={p['config_path']}"],
    }
    assert launcher.stat().st_mode & 0o777 == 0o755
    assert doc["runtimes"]["nvidia"] == original["runtimes"]["nvidia"]
    assert doc["log-driver"] == "journald"
    assert p["daemon_json"].stat().st_mode & 0o777 == 0o600
    cfg = ShimConfig.load(p["config_path"])
    assert (cfg.runc, cfg.on_unavailable, cfg.previous_default_runtime) == ("/usr/sbin/runc", "fail-closed", "nvidia")

    assert not install(**p, shim="/usr/local/bin/enforcer-runc", runc="/usr/sbin/runc").changed  # idempotent
    assert ShimConfig.load(p["config_path"]).previous_default_runtime == "nvidia"

    uninstall(**p)
    assert json.loads(p["daemon_json"].read_text()) == original
    assert not p["config_path"].exists() and not launcher.exists()


def test_install_on_a_host_without_daemon_json_and_uninstall_leave_an_empty_config(tmp_path: Path) -> None:
    p = _paths(tmp_path)
    install(**p, shim="/x/enforcer-runc", runc="/usr/sbin/runc", fail_open=True)
    assert ShimConfig.load(p["config_path"]).on_unavailable == "fail-open"
    uninstall(**p)
    assert json.loads(p["daemon_json"].read_text()) == {}


def test_a_broken_daemon_json_is_reported_and_left_alone(tmp_path: Path) -> None:
    p = _paths(tmp_path)
    p["daemon_json"].write_text("{not json")
    with pytest.raises(EnforcerError, match="not valid JSON"):
        install(**p, shim="/x", runc="/y")
    assert p["daemon_json"].read_text() == "{not json"


def _recorder(path: Path, name: str) -> str:
    """A stand-in program that writes its name and arguments to OUT."""
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" {name} "$@" > "$OUT"\n')
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("args", "who", "passed"),
    [
        # create goes to the shim with every argument (it reads --enforcer-config itself)
        (
            ["--enforcer-config=/c.json", "--root", "/run/r", "create", "--bundle", "/b", "id1"],
            "shim",
            ["--enforcer-config=/c.json", "--root", "/run/r", "create", "--bundle", "/b", "id1"],
        ),
        # everything else straight to runc, without our flag
        (
            ["--enforcer-config=/c.json", "--root", "/run/r", "start", "id1"],
            "runc",
            ["--root", "/run/r", "start", "id1"],
        ),
        (["--enforcer-config=/c.json", "state", "id1"], "runc", ["state", "id1"]),
        (["--version"], "runc", ["--version"]),
    ],
)
def test_the_launcher_sends_only_create_through_the_shim(
    tmp_path: Path, args: list[str], who: str, passed: list[str]
) -> None:
    import os
    import subprocess

    p = _paths(tmp_path)
    shim, runc = _recorder(tmp_path / "shim's dir", "shim"), _recorder(tmp_path / "runc", "runc")
    install(**p, shim=shim, runc=runc)
    out = tmp_path / "out"
    launcher = p["config_path"].with_name("runtime-runc")
    subprocess.run([str(launcher), *args], check=True, env={**os.environ, "OUT": str(out)})
    assert out.read_text().splitlines() == [who, *passed]


def test_the_default_wrapper_is_the_one_beside_the_running_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a version manager's shim found first on the PATH (pyenv's runs shell scripts on
    every container create before the interpreter starts)."""
    from enforcer.runtime import install as mod

    venv, shims = tmp_path / "venv" / "bin", tmp_path / "shims"
    for d in (venv, shims):
        d.mkdir(parents=True)
        (d / "enforcer-runc").write_text("#!/bin/sh\n")
        (d / "enforcer-runc").chmod(0o755)
    monkeypatch.setenv("PATH", str(shims))
    monkeypatch.setattr(sys, "executable", str(venv / "python3"))
    assert mod.default_shim() == str(venv / "enforcer-runc")
    (venv / "enforcer-runc").unlink()
    assert mod.default_shim() == str(shims / "enforcer-runc")  # else the PATH's
