"""Postures -> the `postures` word and flags of a container's `struct container` entry.

Each class gets PST_BITS at bit PST_BITS * class holding an enum abi_action; allow is 0, so
a ruleset without postures writes what it wrote before and the kernel never looks further.
A posture that is not allow also turns on the hooks of its class (CT_FILE_RULES, ...): with
an allow-list every allow rule decides something, even with no deny rule in the ruleset.

A posture decision reaches user space as rule id RULE_POSTURE_BASE + class; `posture_ref`
names it ("posture.exec" of the policy that set the posture) through the ruleset the event
says decided it (event_hdr.ruleset).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from enforcer.compiler.paths import ACTION_CODES
from enforcer.compiler.rules import RuleRef
from enforcer.errors import EnforcerError
from enforcer.policy.merge import POSTURE_CLASSES, EffectiveRule, PostureDecision, posture_rule_id
from enforcer.policy.model import ExecRule

# YAML class -> enum abi_posture constant
CLASS_CONSTS: dict[str, str] = {
    "exec": "PST_EXEC",
    "fileRead": "PST_FILE_READ",
    "fileWrite": "PST_FILE_WRITE",
    "egress": "PST_EGRESS",
    "ingress": "PST_INGRESS",
    "device": "PST_DEVICE",
    "socket": "PST_SOCKET",
}
# The hooks each class needs running (enum abi_container_flags).
CLASS_FLAGS: dict[str, str] = {
    "exec": "CT_EXEC_RULES",
    "fileRead": "CT_FILE_RULES",
    "fileWrite": "CT_FILE_RULES",
    "egress": "CT_NET_EGRESS",
    "ingress": "CT_NET_INGRESS",
}
# Classes the kernel does not judge by posture yet: a ruleset asking for one is refused
# rather than silently allowed (an allow-list that lets everything through is a lie).
NOT_IN_KERNEL = ("device", "socket")


class AbiConsts(Protocol):
    """The part of enforcer.kernel.abi.Abi this module needs: enum constants by name."""

    def const(self, name: str) -> int: ...


@dataclass(frozen=True)
class CompiledPostures:
    postures: Mapping[str, PostureDecision] = field(default_factory=dict)
    origin_image: bool = False  # an allow exec rule with `origin: image`

    def strict(self) -> tuple[str, ...]:
        """Classes whose posture is not allow."""
        return tuple(c for c in POSTURE_CLASSES if self.action(c) != "allow")

    def action(self, posture_class: str) -> str:
        p = self.postures.get(posture_class)
        return p.action if p is not None else "allow"

    def bits(self, const: AbiConsts) -> int:
        width = const.const("PST_BITS")
        word = 0
        for c in self.strict():
            word |= ACTION_CODES[self.action(c)] << (width * const.const(CLASS_CONSTS[c]))
        return word

    def container_fields(self, const: AbiConsts) -> dict[str, int]:
        flags = 0
        for c in self.strict():
            flags |= const.const(CLASS_FLAGS[c])
        if self.origin_image:
            flags |= const.const("CT_EXEC_ORIGIN_IMAGE")
        return {"flags": flags, "postures": self.bits(const)}


def compile_postures(
    rules: Iterable[EffectiveRule], postures: Mapping[str, PostureDecision] | None
) -> CompiledPostures:
    """What a ruleset's postures and origin rules ask of the kernel. Raises EnforcerError
    for what the kernel cannot do yet, so no container runs under a posture that is not
    enforced."""
    postures = dict(postures or {})
    origin = False
    for eff in rules:
        if isinstance(eff.rule, ExecRule) and eff.rule.origin == "image":
            if eff.action != "allow":
                raise EnforcerError(
                    f"policy {eff.policy} {eff.rule_id}: `origin: image` with action {eff.action} "
                    "is not enforced by the kernel (only allow is)",
                    hint="use `action: allow` with `origin: image` and a posture to deny the rest",
                )
            origin = True
    for c in NOT_IN_KERNEL:
        p = postures.get(c)
        if p is not None and p.action != "allow":
            raise EnforcerError(
                f"policy {p.policy}: posture {c}: {p.action} is not enforced by the kernel yet",
                hint=f"remove `{c}` from spec.posture and use {c} rules for now",
            )
    return CompiledPostures(postures, origin)


def posture_class_of(rule_id: int, const: AbiConsts) -> str | None:
    """The class of a posture rule id (RULE_POSTURE_BASE + class), else None."""
    offset = rule_id - const.const("RULE_POSTURE_BASE")
    for c, name in CLASS_CONSTS.items():
        if const.const(name) == offset:
            return c
    return None


def posture_ref(rule_id: int, const: AbiConsts, compiled: CompiledPostures | None) -> RuleRef | None:
    """The audit name of a posture decision: ("<policy>", "posture.<class>"), named by the
    postures of the ruleset that decided it (`compiled`: the event says which, in
    event_hdr.ruleset; the rule id says only the class)."""
    c = posture_class_of(rule_id, const)
    if c is None:
        return None
    p = compiled.postures.get(c) if compiled is not None else None
    return RuleRef(p.policy if p is not None and p.policy else "enforcer", posture_rule_id(c))
