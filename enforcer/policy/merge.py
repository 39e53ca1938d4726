"""Merge the policies selecting one container: their rules and their postures.

`merge()` is the compiler's input: a flat list of EffectiveRule in a stable order (policy
name, then rule kind in RULE_KINDS order, then rule index). In a `mode: audit` policy a deny
becomes audit (the record still names the rule); audit and allow are unchanged.

`merge_postures()` gives, per class (SPEC "Postures"), the strictest effective posture of
the selecting policies. What the merged rules and postures decide for one operation is
enforcer.policy.reference, the reference model of the kernel's decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from enforcer.policy.model import (
    RULE_KINDS,
    Action,
    AnyRule,
    Policy,
    RuleKind,
)

SEVERITY: dict[str, int] = {"allow": 0, "audit": 1, "deny": 2}


@dataclass(frozen=True)
class EffectiveRule:
    policy: str  # metadata.name
    rule_id: str  # "file[0]"
    kind: RuleKind
    action: Action  # after the policy's mode (audit mode: deny -> audit)
    declared_action: Action  # as written in the file
    rule: AnyRule


def effective_action(declared: Action, mode: str) -> Action:
    return "audit" if (mode == "audit" and declared == "deny") else declared


def merge(policies: Iterable[Policy]) -> tuple[EffectiveRule, ...]:
    """All rules of `policies`, sorted by (policy name, kind, index): stable whatever the
    order the policies were found in."""
    out: list[EffectiveRule] = []
    for policy in sorted(policies, key=lambda p: p.name):
        for kind in RULE_KINDS:
            for rule in policy.spec.rules(kind):
                out.append(
                    EffectiveRule(
                        policy=policy.name,
                        rule_id=rule.rule_id,
                        kind=kind,
                        action=effective_action(rule.action, policy.spec.mode),
                        declared_action=rule.action,
                        rule=rule,
                    )
                )
    return tuple(out)


# --- postures -----------------------------------------------------------------------------

POSTURE_CLASSES = ("exec", "fileRead", "fileWrite", "egress", "ingress", "device", "socket")


@dataclass(frozen=True)
class PostureDecision:
    action: str  # allow | audit | deny, after the policy's mode
    policy: str  # the policy that set it; "" for the default allow


Postures = Mapping[str, PostureDecision]


def posture_rule_id(posture_class: str) -> str:
    """The rule name audit records give a posture decision: "posture.fileWrite"."""
    return f"posture.{posture_class}"


def merge_postures(policies: Iterable[Policy]) -> dict[str, PostureDecision]:
    """Per class (all of POSTURE_CLASSES), the strictest effective posture of `policies`
    (deny > audit > allow); on a tie the first policy by name. A class no policy tightens
    is PostureDecision("allow", "")."""
    out = {c: PostureDecision("allow", "") for c in POSTURE_CLASSES}
    for policy in sorted(policies, key=lambda p: p.name):
        for c in POSTURE_CLASSES:
            action = effective_action(policy.spec.posture.of(c), policy.spec.mode)
            if SEVERITY[action] > SEVERITY[out[c].action]:
                out[c] = PostureDecision(action, policy.name)
    return out


def of_kind(rules: Iterable[EffectiveRule], kind: RuleKind) -> tuple[EffectiveRule, ...]:
    return tuple(r for r in rules if r.kind == kind)
