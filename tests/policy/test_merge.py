"""merge() and the reference decisions the BPF programs are tested against."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from enforcer.policy.loader import load_file
from enforcer.policy.merge import EffectiveRule, merge
from enforcer.policy.model import Policy
from enforcer.policy.reference import Decision, decide_exec, decide_file
from tests.policy.conftest import SAMPLES


def pol(name: str, spec: dict[str, Any]) -> Policy:
    return Policy.model_validate(
        {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": spec}
    )


def frule(
    action: str,
    paths: Sequence[str] = (),
    dirs: Sequence[str] = (),
    access: list[str] | None = None,
) -> dict[str, Any]:
    r: dict[str, Any] = {"action": action, "paths": list(paths), "dirs": list(dirs)}
    if access is not None:
        r["access"] = access
    return r


def short(d: Decision | None) -> str | None:
    return None if d is None else f"{d.action} {d.policy}/{d.rule_id}"


# --- merge -------------------------------------------------------------------------------


def test_merge_order_and_mode() -> None:
    b = pol(
        "b",
        {
            "mode": "audit",
            "file": [frule("deny", ["/x"]), frule("allow", ["/y"]), frule("audit", ["/z"])],
            "exec": [{"action": "deny", "paths": ["/bin/nc"]}],
        },
    )
    a = pol("a", {"exec": [{"action": "deny", "paths": ["/bin/sh"]}], "file": [frule("deny", ["/x"])]})
    rules = merge([b, a])
    assert [(r.policy, r.rule_id, r.action, r.declared_action) for r in rules] == [
        ("a", "file[0]", "deny", "deny"),
        ("a", "exec[0]", "deny", "deny"),
        ("b", "file[0]", "audit", "deny"),  # audit mode: deny only records
        ("b", "file[1]", "allow", "allow"),
        ("b", "file[2]", "audit", "audit"),
        ("b", "exec[0]", "audit", "deny"),
    ]
    assert merge([a, b]) == rules
    assert all(isinstance(r, EffectiveRule) for r in rules)


# --- the SPEC example ----------------------------------------------------------------------

SPEC_RULES = merge(p.policy for p in load_file(SAMPLES / "spec_example.yaml").policies)
N = "protect-credentials"


@pytest.mark.parametrize(
    ("path", "access", "expected"),
    [
        ("/etc/shadow", "read", f"deny {N}/file[0]"),
        ("/etc/shadow", "write", f"deny {N}/file[0]"),
        ("/etc/gshadow", {"read", "write"}, f"deny {N}/file[0]"),
        ("/etc/shadow.bak", "read", None),
        ("/etc", "read", None),
        ("/root/.ssh", "read", None),
        ("/root/.ssh", "write", f"deny {N}/file[1]"),  # the directory itself is covered
        ("/root/.ssh/id_rsa", "read", None),  # the dir rule only denies write
        ("/root/.ssh/id_rsa", "write", f"deny {N}/file[1]"),
        ("/root/.ssh/id_rsa", {"read", "write"}, f"deny {N}/file[1]"),
        ("/root/.ssh/sub/deep/file", "write", f"deny {N}/file[1]"),
        ("/root/.sshx/file", "write", None),  # /root/.ssh does not cover /root/.sshx
        ("/root/.ssh/known_hosts", "read", f"allow {N}/file[2]"),
        ("/root/.ssh/known_hosts", "write", f"allow {N}/file[2]"),  # exact beats dir
        ("/root/.ssh/known_hosts", {"read", "write"}, f"allow {N}/file[2]"),
        ("/root/.ssh/known_hosts/x", "write", f"deny {N}/file[1]"),  # paths are exact only
    ],
)
def test_spec_example_file(path: str, access: Any, expected: str | None) -> None:
    assert short(decide_file(SPEC_RULES, path, access)) == expected


def test_spec_example_exec() -> None:
    assert short(decide_exec(SPEC_RULES, "/usr/bin/nc")) == f"deny {N}/exec[0]"
    assert short(decide_exec(SPEC_RULES, "/bin/nc")) == f"deny {N}/exec[0]"
    assert decide_exec(SPEC_RULES, "/usr/bin/ncat") is None


def test_decision_details() -> None:
    d = decide_file(SPEC_RULES, "/root/.ssh/id_rsa", {"read", "write"})
    assert d == Decision("deny", N, "file[1]", "/root/.ssh", "write")


# --- specificity and ties ------------------------------------------------------------------


def rules_of(*specs: tuple[str, dict[str, Any]]) -> tuple[EffectiveRule, ...]:
    return merge(pol(n, s) for n, s in specs)


def test_exact_beats_any_directory_even_deeper_ones() -> None:
    rules = rules_of(
        ("p", {"file": [frule("allow", ["/a/b/c/d"]), frule("deny", dirs=["/a/b/c/d"]), frule("deny", dirs=["/a"])]})
    )
    assert short(decide_file(rules, "/a/b/c/d", "read")) == "allow p/file[0]"
    assert short(decide_file(rules, "/a/b/c/d/e", "read")) == "deny p/file[1]"


def test_deeper_directory_beats_shallower() -> None:
    rules = rules_of(
        (
            "p",
            {
                "file": [
                    frule("deny", dirs=["/data"]),
                    frule("allow", dirs=["/data/public"]),
                    frule("audit", dirs=["/data/public/secret"]),
                ]
            },
        )
    )
    assert short(decide_file(rules, "/data/x", "read")) == "deny p/file[0]"
    assert short(decide_file(rules, "/data/public/x", "read")) == "allow p/file[1]"
    assert short(decide_file(rules, "/data/public/secret/x", "read")) == "audit p/file[2]"
    assert short(decide_file(rules, "/data/publicity", "read")) == "deny p/file[0]"


def test_root_directory_covers_everything_but_loses_to_anything_deeper() -> None:
    rules = rules_of(("p", {"file": [frule("audit", dirs=["/"]), frule("allow", dirs=["/tmp"])]}))
    assert short(decide_file(rules, "/", "read")) == "audit p/file[0]"
    assert short(decide_file(rules, "/etc/passwd", "read")) == "audit p/file[0]"
    assert short(decide_file(rules, "/tmp/x", "read")) == "allow p/file[1]"


ACTIONS = ("deny", "audit", "allow")


@pytest.mark.parametrize(("first", "second"), list(itertools.product(ACTIONS, ACTIONS)))
@pytest.mark.parametrize("shape", ["paths", "dirs"])
def test_ties_deny_beats_audit_beats_allow(first: str, second: str, shape: str) -> None:
    # same target in two policies: order must not matter, severity decides
    rules = rules_of(
        ("p1", {"file": [{"action": first, shape: ["/t"]}]}), ("p2", {"file": [{"action": second, shape: ["/t"]}]})
    )
    want = min((first, second), key=ACTIONS.index)
    d = decide_file(rules, "/t", "read")
    assert d is not None and d.action == want
    # equal actions: the first rule in merge order (policy name, index) is reported
    assert d.policy == ("p1" if first == want else "p2")


def test_tie_within_one_rule_list() -> None:
    rules = rules_of(("p", {"file": [frule("allow", ["/t"]), frule("audit", ["/t"]), frule("allow", ["/t"])]}))
    assert short(decide_file(rules, "/t", "write")) == "audit p/file[1]"


# access x rule access, exhaustively, for a deny dir and an allow exact path
ACCESS_SETS: list[set[str]] = [{"read"}, {"write"}, {"read", "write"}]
RULE_ACCESS = [["read"], ["write"], ["any"], ["read", "write"]]


def _covers(rule_access: list[str], bit: str) -> bool:
    return "any" in rule_access or bit in rule_access


@pytest.mark.parametrize("deny_access", RULE_ACCESS)
@pytest.mark.parametrize("allow_access", [*RULE_ACCESS, None])
@pytest.mark.parametrize("req", ACCESS_SETS)
def test_access_table(deny_access: list[str], allow_access: list[str] | None, req: set[str]) -> None:
    file_rules = [frule("deny", dirs=["/d"], access=deny_access)]
    if allow_access is not None:
        file_rules.append(frule("allow", ["/d/f"], access=allow_access))
    rules = rules_of(("p", {"file": file_rules}))
    # per bit: the exact allow wins where it covers the bit, else the dir deny where it does
    outcome = set()
    for bit in req:
        if allow_access is not None and _covers(allow_access, bit):
            outcome.add("allow")
        elif _covers(deny_access, bit):
            outcome.add("deny")
    want = "deny" if "deny" in outcome else ("allow" if outcome else None)
    d = decide_file(rules, "/d/f", req)
    assert (d.action if d else None) == want
    # the directory itself and other files only see the dir rule
    d2 = decide_file(rules, "/d/g", req)
    assert (d2.action if d2 else None) == ("deny" if any(_covers(deny_access, b) for b in req) else None)


def test_combined_access_reports_the_most_severe_bit() -> None:
    rules = rules_of(("p", {"file": [frule("audit", dirs=["/x"]), frule("allow", ["/x/f"], access=["read"])]}))
    d = decide_file(rules, "/x/f", {"read", "write"})
    assert d == Decision("audit", "p", "file[0]", "/x", "write")
    assert short(decide_file(rules, "/x/f", "read")) == "allow p/file[1]"


def test_audit_mode_policy_participates_as_audit() -> None:
    rules = rules_of(
        ("enf", {"file": [frule("allow", dirs=["/s/pub"])]}),
        ("obs", {"mode": "audit", "file": [frule("deny", dirs=["/s"]), frule("deny", dirs=["/s/pub"])]}),
    )
    assert short(decide_file(rules, "/s/x", "read")) == "audit obs/file[0]"
    # a tie between allow (enforce) and deny-made-audit: audit beats allow
    assert short(decide_file(rules, "/s/pub/x", "read")) == "audit obs/file[1]"


def test_rule_with_paths_and_dirs_uses_its_best_match() -> None:
    rules = rules_of(("p", {"file": [frule("deny", ["/a/b"], ["/a"]), frule("allow", dirs=["/a/b"])]}))
    assert short(decide_file(rules, "/a/b", "read")) == "deny p/file[0]"  # exact via file[0]
    assert short(decide_file(rules, "/a/b/c", "read")) == "allow p/file[1]"


def test_other_kinds_are_ignored_and_bad_requests_rejected() -> None:
    rules = rules_of(("p", {"exec": [{"action": "deny", "paths": ["/x"]}]}))
    assert decide_file(rules, "/x", "read") is None
    for bad in ("exec", set(), {"read", "mknod"}):
        with pytest.raises(ValueError):
            decide_file(rules, "/x", bad)
    with pytest.raises(ValueError):
        decide_file(rules, "relative", "read")
    with pytest.raises(ValueError):
        decide_exec(rules, "/a/../x")
    assert decide_file(rules, "/x/", "read") is None  # normalised like policy paths


def test_exec_dirs_and_specificity() -> None:
    rules = rules_of(
        (
            "p",
            {
                "exec": [
                    {"action": "deny", "dirs": ["/usr/local/bin"]},
                    {"action": "allow", "paths": ["/usr/local/bin/app"]},
                    {"action": "audit", "dirs": ["/"]},
                ]
            },
        )
    )
    assert short(decide_exec(rules, "/usr/local/bin/tool")) == "deny p/exec[0]"
    assert short(decide_exec(rules, "/usr/local/bin/app")) == "allow p/exec[1]"
    assert short(decide_exec(rules, "/usr/bin/env")) == "audit p/exec[2]"
    assert decide_exec(rules_of(("q", {})), "/bin/sh") is None
