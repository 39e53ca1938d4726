"""What a restarted daemon must know about the kernel state it takes over.

The pinned maps outlive the daemon; so must the meaning of their numbers. Rule ids (in
counters and events) are kept in a small JSON file beside the pins' lifetime: /run is
cleared at boot, like bpffs. Ruleset ids are read back from the maps themselves. The
policies in force are kept there too (PolicyStore), for a restart that meets a broken file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import structlog

from enforcer.compiler.rules import RuleTable
from enforcer.policy.loader import FileResult, ParseCache, PolicySet, parse_text

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
            log.warning(
                "rule table unreadable; counters from before are unattributed", path=str(self.path), error=str(err)
            )
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


def policies_file(pin_root: Path, state_dir: Path = STATE_DIR) -> Path:
    """The policies last in force for this pin root (beside its rule table)."""
    return state_dir / (str(pin_root).strip("/").replace("/", "_") + ".policies.json")


class PolicyStore:
    """The policy files in force, kept so that a restarted daemon facing a file that no
    longer validates keeps that file's last good version, as a hot reload does, instead of
    leaving the running containers without it. Kept as the files' texts (read back by the
    same parser, so exactly what was in force), written whenever what is in force changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: str | None = None
        self._texts: dict[str, str] = {}  # file -> the text whose policies are in force

    def save(self, policies: PolicySet, parsed: ParseCache) -> None:
        """`parsed`: the loader's cache, which holds the text of every file just read."""
        if policies.digest == self._saved:
            return
        current = {file: text for (file, text), result in parsed.items() if result.ok}
        texts: dict[str, str] = {}
        for f in policies.files:
            text = self._texts.get(f.file) if f.kept_previous else current.get(f.file)
            if f.policies and text is not None:
                texts[f.file] = text
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".policies.", dir=self.path.parent)  # born 0600
        with os.fdopen(fd, "w") as out:
            json.dump({"files": texts}, out)
        os.replace(tmp, self.path)
        self._saved, self._texts = policies.digest, texts

    def load(self) -> PolicySet | None:
        """What was in force before (None: nothing, or unreadable: said in the log)."""
        try:
            texts = json.loads(self.path.read_text())["files"]
            if not isinstance(texts, dict):
                raise TypeError("files is not a mapping")
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as err:
            log.warning(
                "policies in force before are unreadable; an invalid policy file at start will stop the daemon",
                path=str(self.path),
                error=str(err),
            )
            return None
        files = []
        for file, text in sorted(texts.items()):
            policies, errors = parse_text(str(text), str(file))
            if not errors:  # it validated when saved; a newer daemon may be stricter
                files.append(FileResult(str(file), tuple(policies)))
        self._texts = {f.file: str(texts[f.file]) for f in files}
        return PolicySet(tuple(lp for f in files for lp in f.policies), tuple(files))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
