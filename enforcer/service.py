"""Install the enforcer as a systemd service: the unit (packaging/enforcer.service, with the
command filled in), /etc/enforcer/policies seeded with the shipped policies when it does not
exist yet, the policy JSON Schema for editors. Never overwrites an operator's policies."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from enforcer.errors import EnforcerError

UNIT_NAME = "enforcer.service"
UNIT_DIR = Path("/etc/systemd/system")
ETC = Path("/etc/enforcer")
_PKG = Path(__file__).resolve().parent


def _shipped(name: str, installed: str) -> Path:
    """A file or directory shipped with the checkout, or inside the installed wheel."""
    for candidate in (_PKG.parent / name, _PKG / installed):
        if candidate.exists():
            return candidate
    raise EnforcerError(f"cannot find the shipped {name}", hint="reinstall the enforcer package")


def unit_template() -> str:
    return (_shipped("packaging", "_packaging") / UNIT_NAME).read_text()


def enforcer_command() -> str:
    """The command systemd should run: the console script if installed, else this Python."""
    script = shutil.which("enforcer")
    if script:
        return script
    return f"{shlex.quote(sys.executable)} -m enforcer"


def render_unit(command: str | None = None) -> str:
    return unit_template().replace("@ENFORCER@", command or enforcer_command())


@dataclass
class InstallResult:
    unit: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def install(unit_dir: Path = UNIT_DIR, etc: Path = ETC, command: str | None = None) -> InstallResult:
    from enforcer.policy.schema import policy_schema

    result = InstallResult(unit_dir / UNIT_NAME)
    unit_dir.mkdir(parents=True, exist_ok=True)
    result.unit.write_text(render_unit(command))
    os.chmod(result.unit, 0o644)
    result.written.append(str(result.unit))
    policies = etc / "policies"
    if policies.exists():
        result.kept.append(str(policies))
    else:
        shutil.copytree(_shipped("policies", "_policies"), policies)
        result.written.append(str(policies))
    schema = etc / "policy.schema.json"
    schema.write_text(json.dumps(policy_schema(), indent=2) + "\n")
    result.written.append(str(schema))
    return result


def systemctl(*args: str) -> None:
    if not shutil.which("systemctl"):
        raise EnforcerError("systemctl not found", hint="this host does not run systemd; start `enforcer run` yourself")
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnforcerError(f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")
