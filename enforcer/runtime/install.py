"""Register (and remove) the runtime shim in dockerd's daemon.json.

install: runtimes.enforcer = {"path": LAUNCHER}, default-runtime = "enforcer"; the real runc,
the registration socket, the fail-open/closed choice and the default runtime it replaced go
to runtime.json. uninstall puts daemon.json back as it was (keys we did not set are never
touched). Writes are atomic (temp file + rename) and keep the file's mode. dockerd picks
both keys up on SIGHUP (`systemctl reload docker`); no container restarts.

LAUNCHER is a small sh script written next to runtime.json: containerd runs the runtime for
every create, start, state, kill and delete, and only `create` needs the enforcer. The
launcher sends `create` to the Python shim and execs runc for the rest, so those calls do
not pay an interpreter start (tens of ms natively, seconds on an emulated CPU).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enforcer.errors import EnforcerError
from enforcer.runtime.protocol import DEFAULT_CONFIG, DEFAULT_SOCKET, FAIL_CLOSED, FAIL_OPEN, ShimConfig

RUNTIME_NAME = "enforcer"
DAEMON_JSON = Path("/etc/docker/daemon.json")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text() or "{}")
    except ValueError as err:
        raise EnforcerError(f"{path} is not valid JSON ({err})", hint=f"fix {path} first; nothing was changed") from err
    if not isinstance(doc, dict):
        raise EnforcerError(f"{path} does not hold a JSON object", hint=f"fix {path} first")
    return doc


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def default_shim() -> str:
    """The enforcer-runc of this installation: the one beside the running interpreter first
    (a version manager's shim on the PATH, such as pyenv's, runs shell scripts before the
    interpreter on every container create: seconds on an emulated CPU), else the PATH's."""
    beside = Path(sys.executable).parent / "enforcer-runc"
    if beside.exists():
        return str(beside)
    found = shutil.which("enforcer-runc")
    if found:
        return found
    raise EnforcerError(
        "the enforcer-runc program is not installed", hint="install the package (`pip install .`) or pass --shim PATH"
    )


def default_runc() -> str:
    for name in ("runc", "/usr/sbin/runc", "/usr/bin/runc"):
        found = shutil.which(name)
        if found:
            return found
    raise EnforcerError("runc not found", hint="install runc (Debian: docker.io depends on it) or pass --runc PATH")


def launcher_path(config_path: Path) -> Path:
    """Where install puts the launcher: beside runtime.json (/etc/enforcer/runtime-runc)."""
    return config_path.with_name(f"{config_path.stem}-runc")


def launcher_script(shim: str, runc: str) -> str:
    return f"""#!/bin/sh
# Written by `enforcer install-runtime` (rewritten by each install, removed by uninstall).
# dockerd runs this as the OCI runtime. Only `create` needs the enforcer: it registers the
# container before its first instruction runs. Every other command goes straight to runc.
for arg do
\tif [ "$arg" = create ]; then exec {shlex.quote(shim)} "$@"; fi
done
case "$1" in --enforcer-config=*) shift ;; esac
exec {shlex.quote(runc)} "$@"
"""


@dataclass(frozen=True)
class InstallResult:
    daemon_json: Path
    config: Path
    changed: bool


def install(
    *,
    daemon_json: Path = DAEMON_JSON,
    config_path: Path = DEFAULT_CONFIG,
    shim: str | None = None,
    runc: str | None = None,
    socket: Path = DEFAULT_SOCKET,
    fail_open: bool = False,
) -> InstallResult:
    doc = _read_json(daemon_json)
    shim = shim or default_shim()
    runtimes = doc.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise EnforcerError(f'{daemon_json}: "runtimes" is not an object', hint=f"fix {daemon_json} first")
    previous = doc.get("default-runtime")
    if previous == RUNTIME_NAME:  # already installed: keep what the first install recorded
        previous = ShimConfig.load(config_path).previous_default_runtime
    cfg = ShimConfig(
        runc=runc or default_runc(),
        socket=str(socket),
        on_unavailable=FAIL_OPEN if fail_open else FAIL_CLOSED,
        previous_default_runtime=previous,
    )
    before = json.dumps(doc, sort_keys=True)
    launcher = launcher_path(config_path)
    runtimes[RUNTIME_NAME] = {"path": str(launcher), "runtimeArgs": [f"--enforcer-config={config_path}"]}
    doc["default-runtime"] = RUNTIME_NAME
    changed = json.dumps(doc, sort_keys=True) != before
    _write_atomic(config_path, cfg.dump())
    _write_atomic(launcher, launcher_script(shim, cfg.runc))
    launcher.chmod(0o755)
    if changed:
        _write_atomic(daemon_json, json.dumps(doc, indent=2) + "\n")
    return InstallResult(daemon_json, config_path, changed)


def uninstall(*, daemon_json: Path = DAEMON_JSON, config_path: Path = DEFAULT_CONFIG) -> InstallResult:
    doc = _read_json(daemon_json)
    cfg = ShimConfig.load(config_path)
    before = json.dumps(doc, sort_keys=True)
    runtimes = doc.get("runtimes")
    if isinstance(runtimes, dict):
        runtimes.pop(RUNTIME_NAME, None)
        if not runtimes:
            del doc["runtimes"]
    if doc.get("default-runtime") == RUNTIME_NAME:
        if cfg.previous_default_runtime:
            doc["default-runtime"] = cfg.previous_default_runtime
        else:
            del doc["default-runtime"]
    changed = json.dumps(doc, sort_keys=True) != before
    if changed:
        _write_atomic(daemon_json, json.dumps(doc, indent=2) + "\n")
    config_path.unlink(missing_ok=True)
    launcher_path(config_path).unlink(missing_ok=True)
    return InstallResult(daemon_json, config_path, changed)
