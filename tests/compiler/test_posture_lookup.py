"""Postures and `origin: image`: the compiled postures word and flags, read the way
lsm_file.bpf.c and cgroup_net.bpf.c read them (apply_postures, net_posture; mirrored in
`kernel_decision` below) on top of the compiled rule lookups, give the reference decision
of reference.decide_file / decide_exec / decide_network with postures, over generated policies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.compiler.network import compile_network
from enforcer.compiler.paths import READ, WRITE, compile_paths
from enforcer.compiler.postures import CompiledPostures, compile_postures, posture_ref
from enforcer.compiler.rules import RuleTable
from enforcer.errors import EnforcerError
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.policy.merge import merge, merge_postures
from enforcer.policy.model import Policy
from enforcer.policy.reference import decide_exec, decide_file, decide_network
from tests.compiler import kernel_model as km
from tests.compiler.test_path_lookup import TREE, exec_rule, file_rule

ACTIONS = {0: None, 1: None, 2: "audit", 3: "deny"}  # enum abi_action of a posture
SLOT_CLASS = {READ: "fileRead", WRITE: "fileWrite"}


@pytest.fixture(scope="module")
def abi() -> Abi:
    return Abi.from_object(ensure_built().path("lsm_file"))


Rule = dict[str, Any]  # one rule of a policy document, as the strategies draw it


def policies_of(*specs: tuple[str, dict[str, Any]]) -> list[Policy]:
    return [
        Policy.model_validate(
            {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": spec}
        )
        for name, spec in specs
    ]


def posture_outcome(abi: Abi, compiled: CompiledPostures, word: int, cls: str) -> km.Outcome:
    """What the kernel does with a slot no rule took: the class's bits, as posture_of()."""
    shift = abi.const("PST_BITS") * abi.const(f"PST_{_const_name(cls)}")
    action = ACTIONS[(word >> shift) & abi.const("PST_MASK")]
    if action is None:
        return None
    ref = posture_ref(abi.const("RULE_POSTURE_BASE") + abi.const(f"PST_{_const_name(cls)}"), abi, compiled)
    assert ref is not None
    return action, ref.policy, ref.rule


def _const_name(cls: str) -> str:
    return {
        "exec": "EXEC",
        "fileRead": "FILE_READ",
        "fileWrite": "FILE_WRITE",
        "egress": "EGRESS",
        "ingress": "INGRESS",
    }[cls]


def allowed_to_none(o: km.Outcome) -> km.Outcome:
    return None if o is None or o[0] == "allow" else o


def check(abi: Abi, policies: list[Policy], from_image: set[str]) -> None:
    rules = merge(policies)
    postures = merge_postures(policies)
    compiled = compile_postures(rules, postures)
    fields = compiled.container_fields(abi)
    word = fields["postures"]
    table = RuleTable()
    paths = compile_paths(rules, table)
    for path in TREE:
        got = km.path_lookup(paths, "file", path, [READ, WRITE])
        for bit, slot in (("read", READ), ("write", WRITE)):
            have = (
                km.outcome(*got[slot], table) if slot in got else posture_outcome(abi, compiled, word, SLOT_CLASS[slot])
            )
            want = km.reference(decide_file(rules, path, bit, postures))
            assert allowed_to_none(have) == allowed_to_none(want), (path, bit, have, want)
        got = km.path_lookup(paths, "exec", path, [READ])
        if READ in got:
            have = km.outcome(*got[READ], table)
        elif fields["flags"] & abi.const("CT_EXEC_ORIGIN_IMAGE") and path in from_image:
            have = ("allow", "", "")  # from_image(): the slot counts as matched, allowed
        else:
            have = posture_outcome(abi, compiled, word, "exec")
        want = km.reference(decide_exec(rules, path, postures, from_image=path in from_image))
        assert allowed_to_none(have) == allowed_to_none(want), ("exec", path, have, want)


posture = st.fixed_dictionaries(
    {}, optional={c: st.sampled_from(["allow", "audit", "deny"]) for c in ("exec", "fileRead", "fileWrite")}
)
origin_rule = st.just({"action": "allow", "origin": "image"})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(file_rule, max_size=5),
    st.lists(st.one_of(exec_rule, origin_rule), max_size=3),
    posture,
    st.lists(file_rule, max_size=2),
    posture,
    st.booleans(),
    st.sets(st.sampled_from(TREE)),
)
def test_generated_postures_match_the_reference(
    abi: Abi,
    a: list[Rule],
    ax: list[Rule],
    pa: dict[str, str],
    b: list[Rule],
    pb: dict[str, str],
    b_audit: bool,
    image: set[str],
) -> None:
    check(
        abi,
        policies_of(
            ("a", {"file": a, "exec": ax, "posture": pa}),
            ("b", {"file": b, "posture": pb, "mode": "audit" if b_audit else "enforce"}),
        ),
        image,
    )


def test_postures_all_allow_write_nothing_new(abi: Abi) -> None:
    policies = policies_of(("a", {"file": [{"action": "allow", "dirs": ["/tmp"]}]}))
    fields = compile_postures(merge(policies), merge_postures(policies)).container_fields(abi)
    assert fields == {"flags": 0, "postures": 0}  # the container entry is what it was


def test_a_posture_turns_on_the_hooks_of_its_class_only(abi: Abi) -> None:
    policies = policies_of(("a", {"posture": {"fileWrite": "deny", "egress": "audit"}}))
    fields = compile_postures(merge(policies), merge_postures(policies)).container_fields(abi)
    assert fields["flags"] == abi.const("CT_FILE_RULES") | abi.const("CT_NET_EGRESS")
    assert fields["postures"] == (3 << 2 * abi.const("PST_FILE_WRITE")) | (2 << 2 * abi.const("PST_EGRESS"))


def test_a_posture_record_names_the_policy_that_set_it(abi: Abi) -> None:
    policies = policies_of(("lenient", {"posture": {"exec": "audit"}}), ("strict", {"posture": {"exec": "deny"}}))
    compiled = compile_postures(merge(policies), merge_postures(policies))
    ref = posture_ref(abi.const("RULE_POSTURE_BASE") + abi.const("PST_EXEC"), abi, compiled)
    assert ref is not None and (ref.policy, ref.rule) == ("strict", "posture.exec")
    assert posture_ref(7, abi, compiled) is None  # an ordinary rule id


@pytest.mark.parametrize(
    "spec",
    [
        {"posture": {"device": "deny"}},
        {"posture": {"socket": "audit"}},
        {"exec": [{"action": "deny", "origin": "image"}]},
    ],
)
def test_what_the_kernel_cannot_enforce_yet_is_refused_not_ignored(spec: dict[str, Any]) -> None:
    policies = policies_of(("p", spec))
    with pytest.raises(EnforcerError, match="not enforced by the kernel"):
        compile_postures(merge(policies), merge_postures(policies))


NET = [("127.0.0.1", 8081, "tcp"), ("127.0.0.1", 8082, "tcp"), ("10.0.0.1", 53, "udp")]


@pytest.mark.parametrize("direction", ["egress", "ingress"])
@pytest.mark.parametrize("action", ["allow", "audit", "deny"])
def test_network_postures_decide_what_no_rule_matches(abi: Abi, direction: str, action: str) -> None:
    policies = policies_of(
        (
            "net",
            {
                "posture": {direction: action},
                "network": [
                    {
                        "action": "allow",
                        "direction": direction,
                        "protocol": "tcp",
                        "cidrs": ["127.0.0.1/32"],
                        "ports": [8081],
                    }
                ],
            },
        )
    )
    rules, postures = merge(policies), merge_postures(policies)
    compiled = compile_postures(rules, postures)
    word = compiled.container_fields(abi)["postures"]
    table = RuleTable()
    net = compile_network(rules, table, 32)  # ABI_NET_SLOTS
    for address, port, proto in NET:
        have = km.network(net, table, direction, address, port, proto)
        if have is None:  # net_posture(): no entry matched
            have = posture_outcome(abi, compiled, word, direction)
        want = km.reference(decide_network(rules, direction, address, port, proto, postures))
        assert allowed_to_none(have) == allowed_to_none(want), (address, port, have, want)


def test_status_names_posture_counters_with_the_kernel_numbering(abi: Abi) -> None:
    from enforcer.compiler.postures import CLASS_CONSTS
    from enforcer.policy.merge import POSTURE_CLASSES
    from enforcer.status.collect import RULE_POSTURE_BASE

    assert abi.const("RULE_POSTURE_BASE") == RULE_POSTURE_BASE
    assert [abi.const(CLASS_CONSTS[c]) for c in POSTURE_CLASSES] == list(range(len(POSTURE_CLASSES)))
