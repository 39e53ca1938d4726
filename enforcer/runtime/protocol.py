"""What the runtime shim and the daemon say to each other, and where.

One request per connection, one JSON line each way:
  shim -> daemon  {"id": CONTAINER_ID, "pid": INIT_PID, "bundle": BUNDLE_DIR}
  daemon -> shim  {"ok": true} once the container's cgroup points at its ruleset,
                  or {"ok": false, "error": "..."}.
Stdlib only: the shim imports this on every container start.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_SOCKET = Path("/run/enforcer/runtime.sock")
DEFAULT_CONFIG = Path("/etc/enforcer/runtime.json")
FAIL_CLOSED, FAIL_OPEN = "fail-closed", "fail-open"


@dataclass
class ShimConfig:
    """/etc/enforcer/runtime.json, written by `enforcer install-runtime`."""

    runc: str = "runc"  # the real runtime the shim wraps
    socket: str = str(DEFAULT_SOCKET)
    # What a container start does when the enforcer cannot be asked: fail-closed (default:
    # the start fails with a message) or fail-open (it starts, unpoliced until the daemon
    # reconciles it).
    on_unavailable: str = FAIL_CLOSED
    timeout: float = 10.0  # seconds to wait for the daemon's answer
    previous_default_runtime: str | None = field(default=None)  # restored on uninstall

    @classmethod
    def load(cls, path: Path | None = None) -> ShimConfig:
        path = path or Path(os.environ.get("ENFORCER_RUNTIME_CONFIG", DEFAULT_CONFIG))
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"
