"""The compile stage: the merged rules and postures of one selection -> one compiled
ruleset, every kind's map entries at once. The kernel layer (enforcer.kernel) only writes
what is compiled here; what depends on a container's files (the inodes its exact rules
name) is compiled per container by enforcer.compiler.inodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from enforcer.compiler.devices import CompiledDevices, compile_devices
from enforcer.compiler.network import CompiledNetwork, compile_network
from enforcer.compiler.paths import CompiledPaths, compile_paths
from enforcer.compiler.postures import AbiConsts, CompiledPostures, compile_postures
from enforcer.compiler.rules import RuleTable
from enforcer.compiler.sockets import CompiledSockets, compile_sockets
from enforcer.policy.merge import EffectiveRule, PostureDecision


@dataclass(frozen=True)
class CompiledRuleset:
    paths: CompiledPaths
    devices: CompiledDevices
    network: CompiledNetwork
    sockets: CompiledSockets
    postures: CompiledPostures = field(default_factory=CompiledPostures)


def compile_ruleset(
    rules: Sequence[EffectiveRule],
    table: RuleTable,
    consts: AbiConsts,
    postures: Mapping[str, PostureDecision] | None = None,
) -> CompiledRuleset:
    """Raises EnforcerError, before anything is written, for what the kernel cannot hold
    (a posture it does not judge, more network entries per prefix than ABI_NET_SLOTS)."""
    return CompiledRuleset(
        paths=compile_paths(rules, table),
        devices=compile_devices(rules, table),
        network=compile_network(rules, table, consts.const("ABI_NET_SLOTS")),
        sockets=compile_sockets(rules, table),
        postures=compile_postures(rules, postures),
    )
