"""What the daemon loads at start, and which enforcements it can then offer.

The cgroup programs (device, network, socket rules) load on every kernel with cgroup v2
BPF; the LSM programs (file, exec rules) need BPF-LSM, which some kernels refuse even when
they list it. Such a host can still enforce the cgroup kinds, but silently dropping file or
exec rules would be worse than not starting: the daemon refuses unless the operator says
`--allow-missing-lsm`, and then says loudly, at start and for every ruleset, what is not
enforced.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import structlog

from enforcer.errors import EnforcerError
from enforcer.kernel.build import BuiltObjects
from enforcer.kernel.cgroup_enforcement import CGROUP_PROGRAMS, CgroupEnforcement
from enforcer.kernel.enforcement import Enforcement, FileEnforcement
from enforcer.kernel.inode_rules import InodeRules
from enforcer.kernel.loader import Loaded, load_cgroup, load_lsm
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.model import Policy, RuleKind

log = structlog.get_logger(__name__)

LSM_KINDS: tuple[RuleKind, ...] = ("file", "exec")
ALLOW_FLAG = "--allow-missing-lsm"


def policies_needing_lsm(policies: Iterable[Policy]) -> list[str]:
    return sorted(p.name for p in policies if any(p.spec.rules(k) for k in LSM_KINDS))


def load_kernel(
    built: BuiltObjects, pin_root: Path, policies: Iterable[Policy], *, allow_missing_lsm: bool = False
) -> Loaded:
    """Load the cgroup objects, then the LSM ones. If the LSM ones cannot load: refuse
    (EnforcerError) when a policy has file/exec rules, unless `allow_missing_lsm`."""
    loaded = load_cgroup(built, pin_root)
    try:
        load_lsm(built, pin_root, into=loaded)
    except EnforcerError as err:
        needing = policies_needing_lsm(policies)
        if needing and not allow_missing_lsm:
            loaded.close()
            raise EnforcerError(
                f"{err.message}; file/exec rules of {', '.join(needing)} would not be enforced",
                hint=f"run where BPF-LSM loads (see `enforcer doctor`), or pass {ALLOW_FLAG} "
                "to enforce only device, network and socket rules",
            ) from err
        loaded.lsm_error = err.message
        log.error(
            "NOT ENFORCED: file and exec rules; this kernel refuses the BPF-LSM programs, only "
            "device, network and socket rules are enforced",
            reason=err.message,
            policies_with_file_or_exec_rules=needing,
            allowed_by=ALLOW_FLAG if needing else "no loaded policy has file/exec rules",
        )
    return loaded


def kernel_enforcements(loaded: Loaded, maps: PolicyMaps, pin_root: Path) -> list[Enforcement]:
    """An Enforcement for every kind whose programs are loaded."""
    out: list[Enforcement] = []
    have = loaded.maps
    if "path_rules" in have:
        inodes = InodeRules(loaded.abi, have, maps) if "inode_rules" in have else None
        out.append(FileEnforcement(maps, inodes))
    if "dev_rules" in have:
        programs = {name: loaded.program(name) for name in CGROUP_PROGRAMS}
        lsm_sockets = any("enforcer_socket_create" in obj.programs for obj in loaded.objects)
        out.append(CgroupEnforcement(loaded.abi, have, programs, pin_root, lsm_sockets))
    return out
