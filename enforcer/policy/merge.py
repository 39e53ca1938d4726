"""Merge the policies selecting one container, and the reference file/exec decisions.

`merge()` is the compiler's input: a flat list of EffectiveRule in a stable order (policy
name, then rule kind in RULE_KINDS order, then rule index). In a `mode: audit` policy a deny
becomes audit (the record still names the rule); audit and allow are unchanged.

`decide_file` / `decide_exec` are the executable form of the SPEC semantics. The BPF side is
tested against them, so they favour obviousness over speed:
1. a rule is a candidate if one of its `paths` equals the path or one of its `dirs` is the
   path or an ancestor of it (a dir covers itself and everything below; /a does not
   cover /ab), and (files) its access includes the requested access bit;
2. the most specific candidate wins: an exact path beats every directory, a deeper
   directory beats a shallower one;
3. on a tie, deny beats audit beats allow; among equal actions the first rule in merge
   order is reported;
4. a request for several access bits (read+write) is decided per bit; the most severe
   outcome wins (deny > audit > allow > no match), ties reported for the first bit in
   (read, write) order. So read+write is denied if either read or write is denied.
None means no rule matched: the default, allow, and nothing to record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from enforcer.policy.model import RULE_KINDS, Action, AnyRule, ExecRule, FileRule, Policy, RuleKind
from enforcer.policy.paths import depth, is_under, normalize_path

FILE_ACCESS_ORDER = ("read", "write")
SEVERITY: dict[str, int] = {"allow": 0, "audit": 1, "deny": 2}


@dataclass(frozen=True)
class EffectiveRule:
    policy: str  # metadata.name
    rule_id: str  # "file[0]"
    kind: RuleKind
    action: Action  # after the policy's mode (audit mode: deny -> audit)
    declared_action: Action  # as written in the file
    rule: AnyRule


@dataclass(frozen=True)
class Decision:
    action: Action  # deny | audit | allow
    policy: str
    rule_id: str
    matched: str  # what in the rule matched: a path, dir, cidr, "char 1:*", "packet/raw"...
    access: str | None = None  # the access bit that decided (file/device), else None


def effective_action(declared: Action, mode: str) -> Action:
    return "audit" if (mode == "audit" and declared == "deny") else declared


def merge(policies: Iterable[Policy]) -> tuple[EffectiveRule, ...]:
    """All rules of `policies`, sorted by (policy name, kind, index): stable whatever the
    order the policies were found in."""
    out: list[EffectiveRule] = []
    for policy in sorted(policies, key=lambda p: p.name):
        for kind in RULE_KINDS:
            for rule in policy.spec.rules(kind):
                out.append(EffectiveRule(
                    policy=policy.name, rule_id=rule.rule_id, kind=kind,
                    action=effective_action(rule.action, policy.spec.mode),
                    declared_action=rule.action, rule=rule,
                ))
    return tuple(out)


def of_kind(rules: Iterable[EffectiveRule], kind: RuleKind) -> tuple[EffectiveRule, ...]:
    return tuple(r for r in rules if r.kind == kind)


# --- shared selection ---------------------------------------------------------------------

Specificity = tuple[Any, ...]


def pick(
    rules: Iterable[EffectiveRule],
    match: Callable[[EffectiveRule], tuple[Specificity, str] | None],
    access: str | None = None,
) -> Decision | None:
    """Most specific match wins; ties: deny > audit > allow; then first in order."""
    best: tuple[Specificity, int] | None = None
    chosen: Decision | None = None
    for r in rules:
        m = match(r)
        if m is None:
            continue
        spec, matched = m
        key = (spec, SEVERITY[r.action])
        if best is None or key > best:  # strict '>' keeps the first rule on a full tie
            best = key
            chosen = Decision(r.action, r.policy, r.rule_id, matched, access)
    return chosen


def combine(decisions: Iterable[Decision | None]) -> Decision | None:
    """Per-bit decisions -> one: the most severe; the first one on a tie."""
    chosen: Decision | None = None
    for d in decisions:
        if d is not None and (chosen is None or SEVERITY[d.action] > SEVERITY[chosen.action]):
            chosen = d
    return chosen


def access_bits(access: str | Iterable[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """"read" / {"read", "write"} -> bits in canonical order; ValueError if empty or unknown."""
    bits = {access} if isinstance(access, str) else set(access)
    unknown = bits - set(allowed)
    if unknown or not bits:
        raise ValueError(f"access must be a non-empty subset of {allowed}, got {sorted(bits)}")
    return tuple(b for b in allowed if b in bits)


# --- files and exec -----------------------------------------------------------------------


def _path_match(rule: FileRule | ExecRule, path: str) -> tuple[Specificity, str] | None:
    """(specificity, matched) of the rule's best target for `path`; exact = (1, 0)."""
    if path in rule.paths:
        return (1, 0), path
    best: tuple[Specificity, str] | None = None
    for d in rule.dirs:
        if is_under(path, d):
            cand = ((0, depth(d)), d)
            if best is None or cand[0] > best[0]:
                best = cand
    return best


def decide_file(
    rules: Iterable[EffectiveRule], path: str, access: str | Iterable[str]
) -> Decision | None:
    """The decision for opening `path` (absolute, as resolved in the container) with
    `access` ("read", "write" or both). Non-file rules in `rules` are ignored."""
    path = normalize_path(path)
    bits = access_bits(access, FILE_ACCESS_ORDER)
    file_rules = of_kind(rules, "file")

    def per_bit(bit: str) -> Decision | None:
        def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
            assert isinstance(r.rule, FileRule)
            return _path_match(r.rule, path) if bit in r.rule.access_set else None

        return pick(file_rules, match, bit)

    return combine(per_bit(b) for b in bits)


def decide_exec(rules: Iterable[EffectiveRule], path: str) -> Decision | None:
    """The decision for executing `path` (absolute, resolved). Same specificity rules."""
    path = normalize_path(path)

    def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
        assert isinstance(r.rule, ExecRule)
        return _path_match(r.rule, path)

    return pick(of_kind(rules, "exec"), match)
