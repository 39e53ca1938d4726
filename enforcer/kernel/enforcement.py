"""One kind of kernel enforcement (file/exec by LSM, devices/network/sockets by cgroup
programs), as the daemon drives it.

A ruleset is what the policies selecting a container compile to (enforcer.compiler.ruleset);
containers selected by the same policies share it. Every enforcement writes its share of
the compiled ruleset under the ruleset's id, may attach something per container (cgroup programs), and says which fields
of the container's `struct container` entry it needs (flags are OR-ed across kinds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog

from enforcer.compiler.inodes import container_root, resolve_container
from enforcer.compiler.paths import CompiledPaths
from enforcer.compiler.ruleset import CompiledRuleset
from enforcer.containers.model import ContainerInfo
from enforcer.kernel.inode_rules import InodeRules
from enforcer.kernel.policy_maps import PolicyMaps

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RulesetPart:
    """What one enforcement wrote for one ruleset: enough to delete it again."""

    compiled: Any
    container_fields: dict[str, int] = field(default_factory=dict)


class Enforcement(Protocol):
    name: str

    def write_ruleset(self, ruleset: int, compiled: CompiledRuleset) -> RulesetPart: ...

    def delete_ruleset(self, ruleset: int, part: RulesetPart) -> None: ...

    def attach(self, info: ContainerInfo) -> None:
        """Per-container attachments; called before the container's map entry is set."""

    def detach(self, info: ContainerInfo) -> None:
        """Undo attach(); called after the container's map entry is gone."""

    def rulesets_in_kernel(self) -> set[int]:
        """Ruleset ids this kind has entries for (a restarted daemon allocates above them)."""

    def prune(self, keep: set[int]) -> None:
        """Delete every ruleset not in `keep` (left by an earlier daemon run)."""


@runtime_checkable
class PerContainerRules(Protocol):
    """An enforcement with rules that depend on the container's contents, not only on its
    ruleset (e.g. inodes of the files a path rule names)."""

    def assign(self, info: ContainerInfo, ruleset: int, part: RulesetPart) -> None:
        """Called before the container's entry is pointed at `ruleset` (first start and
        every ruleset change)."""


class FileEnforcement:
    """File and exec rules: path_rules entries read by the global LSM programs, plus the
    per-container inode_rules that make a hard link judged like the file it names."""

    name = "file"

    def __init__(self, maps: PolicyMaps, inodes: InodeRules | None = None) -> None:
        self._maps = maps
        self._inodes = inodes

    def write_ruleset(self, ruleset: int, compiled: CompiledRuleset) -> RulesetPart:
        self._maps.write_ruleset(ruleset, compiled.paths)
        return RulesetPart(compiled.paths, self._maps.container_fields(compiled.paths))

    def delete_ruleset(self, ruleset: int, part: RulesetPart) -> None:
        compiled: CompiledPaths = part.compiled
        self._maps.delete_ruleset(ruleset, compiled)

    def attach(self, info: ContainerInfo) -> None:
        pass  # the LSM programs are global; the containers map scopes them

    def assign(self, info: ContainerInfo, ruleset: int, part: RulesetPart) -> None:
        if self._inodes is None or not info.pid:
            return
        with container_root(info.pid) as root:
            resolved = resolve_container(root, part.compiled)
        for warning in resolved.warnings:
            log.warning("exec rule cannot stop an alias", container=info.name, detail=warning)
        self._inodes.write(info.cgroup.id, ruleset, resolved)

    def detach(self, info: ContainerInfo) -> None:
        if self._inodes is not None:
            self._inodes.drop(info.cgroup.id)

    def rulesets_in_kernel(self) -> set[int]:
        return set(self._maps.path_rule_rulesets())

    def prune(self, keep: set[int]) -> None:
        self._maps.prune_path_rules(keep)


def merge_container_fields(parts: Sequence[RulesetPart]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for name, value in part.container_fields.items():
            out[name] = out.get(name, 0) | value
    return out
