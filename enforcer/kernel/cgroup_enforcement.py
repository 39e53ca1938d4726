"""Device, network and socket rules: cgroup programs attached to every container's cgroup.

Rules are written per ruleset into dev_rules / net4_rules / net6_rules / sock_rules; each
container's cgroup gets the ten cgroup programs (socket hooks and the packet backstop) through links pinned under
PIN_ROOT/links/cgroup/<cgroup id>/<program>, so enforcement outlives the daemon. Links are
multi-attach: runc's own device program and the v1 devices controller keep applying (the
kernel allows an access only when every program allows it). The programs are attached
whatever the container's rules: a ruleset change is then one containers map update, and
a container without rules of a kind costs one lookup per operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

import structlog

from enforcer.compiler.ruleset import CompiledRuleset
from enforcer.containers.model import ContainerInfo
from enforcer.errors import EnforcerError
from enforcer.kernel.abi import Abi
from enforcer.kernel.cgroup_maps import CgroupMaps
from enforcer.kernel.enforcement import RulesetPart
from enforcer.kernel.loader import CGROUP_OBJECTS, attach_pinned
from enforcer.pybpf import BpfError, Link, Map, Program

log = structlog.get_logger(__name__)

CGROUP_PROGRAMS: tuple[str, ...] = tuple(p for progs in CGROUP_OBJECTS.values() for p in progs)


def cgroup_links_dir(pin_root: Path, cgroup_id: int) -> Path:
    return pin_root / "links" / "cgroup" / str(cgroup_id)


class CgroupEnforcement:
    """The Enforcement (enforcer.kernel.enforcement) for device, network and socket rules."""

    name = "cgroup"
    kinds = ("device", "network", "socket")

    def __init__(
        self,
        abi: Abi,
        maps: Mapping[str, Map],
        programs: Mapping[str, Program],
        pin_root: Path,
        lsm_sockets: bool = False,
    ) -> None:
        self._abi = abi
        self._maps = CgroupMaps(abi, maps)
        self._programs = programs
        self._pin_root = pin_root
        self._lsm_sockets = lsm_sockets  # the LSM socket_create program covers other families

    # ----- rulesets -------------------------------------------------------------------------
    def write_ruleset(self, ruleset: int, compiled: CompiledRuleset) -> RulesetPart:
        beyond = compiled.sockets.families_beyond_cgroup()
        if beyond and not self._lsm_sockets:
            log.error(
                "socket rules NOT ENFORCED: the cgroup sock_create hook sees inet sockets "
                "only, and the LSM socket_create program is not loaded on this host",
                families=list(beyond),
                ruleset=ruleset,
            )
        self._maps.write_ruleset(ruleset, compiled)
        return RulesetPart(compiled, self._maps.container_fields(compiled))

    def delete_ruleset(self, ruleset: int, part: RulesetPart) -> None:
        compiled: CompiledRuleset = part.compiled
        self._maps.delete_ruleset(ruleset, compiled)

    # ----- containers -----------------------------------------------------------------------
    def attach(self, info: ContainerInfo) -> None:
        """Attach (or, after a restart, re-point) every cgroup program to the container's
        cgroup; called before its containers entry is written."""
        links = cgroup_links_dir(self._pin_root, info.cgroup.id)
        links.mkdir(parents=True, exist_ok=True)
        try:
            for name in CGROUP_PROGRAMS:
                program = self._programs[name]
                attach_pinned(links / name, program, partial(program.attach_cgroup, info.cgroup.path))
        except BpfError as err:
            self.detach(info)
            raise EnforcerError(
                f"cannot attach the cgroup programs to {info.cgroup.path}: {err.errno_name}",
                hint="is it a cgroup v2 directory? run `enforcer doctor`",
            ) from err

    def detach(self, info: ContainerInfo) -> None:
        """Detach and unpin the container's programs (its cgroup may already be gone)."""
        remove_cgroup_links(self._pin_root, info.cgroup.id)

    # ----- taking over after a restart ------------------------------------------------------
    def rulesets_in_kernel(self) -> set[int]:
        return set(self._maps.ruleset_keys())

    def prune(self, keep: set[int]) -> None:
        """Delete rulesets not in `keep`, and the links of cgroups that no longer have a
        containers entry (containers that went away while no daemon ran)."""
        self._maps.prune(keep)
        root = self._pin_root / "links" / "cgroup"
        if not root.is_dir():
            return
        for d in root.iterdir():
            if d.name.isdigit() and not self._maps.has_container(int(d.name)):
                log.info("removing links of a container that went away", cgroup_id=int(d.name))
                remove_cgroup_links(self._pin_root, int(d.name))


def remove_cgroup_links(pin_root: Path, cgroup_id: int) -> list[str]:
    links = cgroup_links_dir(pin_root, cgroup_id)
    removed: list[str] = []
    if not links.is_dir():
        return removed
    for p in sorted(links.iterdir()):
        with Link.open_pinned(p) as link:
            link.detach()  # now, even if someone else holds the link open
            link.unpin()
        removed.append(str(p))
    links.rmdir()
    return removed
