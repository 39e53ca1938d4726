"""What a restarted daemon must know about the kernel state it takes over.

The pinned maps outlive the daemon; so must the meaning of their numbers. Rule ids (in
counters and events) are kept in a small JSON file beside the pins' lifetime: /run is
cleared at boot, like bpffs. Ruleset ids are read back from the maps themselves.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import structlog

from enforcer.compiler.rules import RuleTable

log = structlog.get_logger(__name__)

STATE_DIR = Path("/run/enforcer/state")


def state_file(pin_root: Path, state_dir: Path = STATE_DIR) -> Path:
    """One file per pin root (tests use private pin roots side by side)."""
    return state_dir / (str(pin_root).strip("/").replace("/", "_") + ".rules.json")


class RuleTableStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved = -1

    def load(self) -> RuleTable:
        try:
            table = RuleTable.from_json(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return RuleTable()
        except (ValueError, TypeError) as err:
            log.warning("rule table unreadable; counters from before are unattributed",
                        path=str(self.path), error=str(err))  # fmt: skip
            return RuleTable()
        self._saved = len(table)
        return table

    def save(self, table: RuleTable) -> None:
        """Write when new ids were handed out (ids are never reassigned, only added)."""
        if len(table) == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".rules.", dir=self.path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(table.to_json(), f)
        os.replace(tmp, self.path)
        self._saved = len(table)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
