"""Postures (SPEC "Postures") and `origin: image` in the policy model and the reference
decisions: what an operation no rule matches gets, and how several policies combine."""

from __future__ import annotations

from typing import Any

import pytest

from enforcer.policy.loader import parse_text
from enforcer.policy.merge import POSTURE_CLASSES, PostureDecision, merge, merge_postures
from enforcer.policy.model import Policy, Posture
from enforcer.policy.reference import Decision, decide_device, decide_exec, decide_file, decide_network, decide_socket
from tests.policy.conftest import doc


def pol(name: str, spec: dict[str, Any]) -> Policy:
    return Policy.model_validate(
        {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": spec}
    )


def errors_of(spec: str) -> list[str]:
    _, errors = parse_text(doc("p", spec), "f.yaml")
    return [str(e) for e in errors]


def short(d: Decision | None) -> str | None:
    return None if d is None else f"{d.action} {d.policy}/{d.rule_id}"


# --- the model -----------------------------------------------------------------------------


def test_every_class_defaults_to_allow() -> None:
    p = pol("p", {})
    assert p.spec.posture == Posture()
    assert [p.spec.posture.of(c) for c in POSTURE_CLASSES] == ["allow"] * 7


def test_posture_classes_are_written_in_camel_case() -> None:
    posture = pol(
        "p",
        {
            "posture": {
                "exec": "deny",
                "fileRead": "audit",
                "fileWrite": "deny",
                "egress": "deny",
                "ingress": "audit",
                "device": "deny",
                "socket": "audit",
            }
        },
    ).spec.posture
    assert (
        posture.exec,
        posture.file_read,
        posture.file_write,
        posture.egress,
        posture.ingress,
        posture.device,
        posture.socket,
    ) == ("deny", "audit", "deny", "deny", "audit", "deny", "audit")
    assert posture.of("fileWrite") == "deny"


def test_unknown_posture_class_is_an_error_with_the_allowed_names() -> None:
    assert errors_of("spec:\n  posture:\n    file_write: deny\n") == [
        "f.yaml:7:5: spec.posture: unknown key 'file_write' (did you mean 'fileWrite'? "
        "allowed: exec, fileRead, fileWrite, egress, ingress, device, socket)"
    ]


@pytest.mark.parametrize("value", ["block", "Deny", "true", "1", "[deny]"])
def test_unknown_posture_value_is_an_error_with_the_allowed_values(value: str) -> None:
    (error,) = errors_of(f"spec:\n  posture:\n    exec: {value}\n")
    assert error.startswith("f.yaml:7:11: spec.posture.exec: unknown posture ")
    assert error.endswith("(allowed: allow, audit, deny)")


def test_origin_image_is_an_exec_rule_of_its_own() -> None:
    spec = pol("p", {"exec": [{"action": "allow", "origin": "image"}]}).spec
    assert spec.exec[0].origin == "image" and spec.exec[0].paths == ()
    assert errors_of("spec:\n  exec:\n    - action: allow\n      origin: image\n      paths: [/bin/sh]\n") == [
        "f.yaml:7:7: spec.exec[0]: 'origin' matches every file of the image, not given paths: "
        "put 'origin: image' in an exec rule of its own, without 'paths' or 'dirs'"
    ]
    assert errors_of("spec:\n  exec:\n    - action: allow\n") == [
        "f.yaml:7:7: spec.exec[0]: an exec rule needs at least one of 'paths', 'dirs' or 'origin'"
    ]
    assert errors_of("spec:\n  exec:\n    - action: allow\n      origin: layer\n") == [
        "f.yaml:8:15: spec.exec[0].origin: Input should be 'image', got 'layer'"
    ]


@pytest.mark.parametrize(
    "rule",
    [
        "file:\n    - action: allow\n      dirs: [/tmp]\n      origin: image\n",
        "device:\n    - action: allow\n      type: char\n      major: 1\n      minor: 3\n      origin: image\n",
        "network:\n    - action: allow\n      direction: egress\n      origin: image\n",
        "socket:\n    - action: allow\n      families: [inet]\n      origin: image\n",
    ],
)
def test_origin_on_a_non_exec_rule_is_a_one_line_error(rule: str) -> None:
    (error,) = errors_of("spec:\n  " + rule)
    kind = rule.split(":", 1)[0]
    assert error.endswith(
        f": spec.{kind}[0]: 'origin' is for exec rules only (origin: image says where an executable came from)"
    )
    assert "\n" not in error


# --- merge_postures ------------------------------------------------------------------------


def test_strictest_posture_of_each_class_wins_and_names_its_policy() -> None:
    a = pol("a", {"posture": {"exec": "audit", "egress": "deny"}})
    b = pol("b", {"posture": {"exec": "deny", "egress": "audit", "fileWrite": "audit"}})
    merged = merge_postures([b, a])
    assert merged["exec"] == PostureDecision("deny", "b")
    assert merged["egress"] == PostureDecision("deny", "a")
    assert merged["fileWrite"] == PostureDecision("audit", "b")
    assert merged["fileRead"] == PostureDecision("allow", "")
    assert set(merged) == set(POSTURE_CLASSES)


def test_a_tie_keeps_the_first_policy_by_name() -> None:
    merged = merge_postures([pol("zz", {"posture": {"exec": "deny"}}), pol("aa", {"posture": {"exec": "deny"}})])
    assert merged["exec"] == PostureDecision("deny", "aa")


def test_audit_mode_turns_a_deny_posture_into_audit() -> None:
    audit_mode = pol("learned", {"mode": "audit", "posture": {"exec": "deny", "egress": "audit"}})
    assert merge_postures([audit_mode])["exec"] == PostureDecision("audit", "learned")
    assert merge_postures([audit_mode])["egress"] == PostureDecision("audit", "learned")
    # an enforcing policy's deny is stricter than the audit-mode one
    enforcing = pol("strict", {"posture": {"exec": "deny"}})
    assert merge_postures([audit_mode, enforcing])["exec"] == PostureDecision("deny", "strict")


# --- decisions -----------------------------------------------------------------------------

DRIFT = pol(
    "drift",
    {
        "posture": {
            "exec": "deny",
            "fileWrite": "deny",
            "egress": "deny",
            "ingress": "audit",
            "device": "deny",
            "socket": "deny",
        },
        "exec": [
            {"action": "allow", "origin": "image"},
            {"action": "allow", "paths": ["/usr/local/bin/entrypoint.sh"]},
            {"action": "deny", "paths": ["/usr/bin/nc"]},
        ],
        "file": [
            {"action": "allow", "dirs": ["/tmp"], "access": ["write"]},
            {"action": "audit", "paths": ["/etc/hosts"], "access": ["read"]},
        ],
        "network": [
            {"action": "allow", "direction": "egress", "protocol": "tcp", "cidrs": ["127.0.0.1/32"], "ports": [8080]}
        ],
        "device": [{"action": "allow", "type": "char", "major": 1, "minor": 3}],
        "socket": [{"action": "allow", "families": ["inet"], "types": ["stream"]}],
    },
)
RULES = merge([DRIFT])
POSTURES = merge_postures([DRIFT])


def test_without_postures_an_unmatched_operation_is_allowed_as_before() -> None:
    assert decide_exec(RULES, "/tmp/copied") is None
    assert decide_file(RULES, "/etc/passwd", "write") is None


def test_exec_posture_decides_what_no_rule_matches() -> None:
    assert short(decide_exec(RULES, "/tmp/copied", POSTURES)) == "deny drift/posture.exec"
    d = decide_exec(RULES, "/tmp/copied", POSTURES)
    assert d is not None and d.matched == "*"


def test_origin_image_allows_image_files_only() -> None:
    assert short(decide_exec(RULES, "/bin/ls", POSTURES, from_image=True)) == "allow drift/exec[0]"
    assert short(decide_exec(RULES, "/bin/ls", POSTURES, from_image=False)) == ("deny drift/posture.exec")


def test_a_path_rule_is_more_specific_than_origin_image() -> None:
    # nc came with the image, and the deny rule naming it still wins
    assert short(decide_exec(RULES, "/usr/bin/nc", POSTURES, from_image=True)) == ("deny drift/exec[2]")
    # the entrypoint was copied in by a later step (not the image's): its own rule allows it
    assert short(decide_exec(RULES, "/usr/local/bin/entrypoint.sh", POSTURES)) == ("allow drift/exec[1]")


def test_file_access_bits_take_their_own_posture_and_the_stricter_wins() -> None:
    assert decide_file(RULES, "/etc/passwd", "read", POSTURES) is None  # fileRead: allow
    assert short(decide_file(RULES, "/etc/passwd", "write", POSTURES)) == ("deny drift/posture.fileWrite")
    assert short(decide_file(RULES, "/etc/passwd", {"read", "write"}, POSTURES)) == ("deny drift/posture.fileWrite")
    assert short(decide_file(RULES, "/tmp/x", "write", POSTURES)) == "allow drift/file[0]"
    # read of /etc/hosts is audited by its rule, its write falls to the deny posture
    d = decide_file(RULES, "/etc/hosts", {"read", "write"}, POSTURES)
    assert short(d) == "deny drift/posture.fileWrite" and d is not None and d.access == "write"


def test_a_matching_rule_beats_a_posture_whatever_its_action() -> None:
    strict = pol(
        "s",
        {"posture": {"fileRead": "deny"}, "file": [{"action": "audit", "paths": ["/etc/hosts"], "access": ["read"]}]},
    )
    assert short(decide_file(merge([strict]), "/etc/hosts", "read", merge_postures([strict]))) == "audit s/file[0]"


def test_allow_rules_of_every_selecting_policy_count_against_the_strictest_posture() -> None:
    locked = pol("locked", {"posture": {"egress": "deny"}})
    opener = pol("opener", {"network": [{"action": "allow", "direction": "egress", "ports": [53], "protocol": "udp"}]})
    rules, postures = merge([locked, opener]), merge_postures([locked, opener])
    assert short(decide_network(rules, "egress", "127.0.0.11", 53, "udp", postures)) == ("allow opener/network[0]")
    assert short(decide_network(rules, "egress", "127.0.0.11", 54, "udp", postures)) == ("deny locked/posture.egress")


def test_network_direction_picks_the_class() -> None:
    assert short(decide_network(RULES, "egress", "127.0.0.1", 8080, "tcp", POSTURES)) == ("allow drift/network[0]")
    assert short(decide_network(RULES, "egress", "127.0.0.1", 8081, "tcp", POSTURES)) == ("deny drift/posture.egress")
    assert short(decide_network(RULES, "ingress", "0.0.0.0", 8080, "tcp", POSTURES)) == ("audit drift/posture.ingress")
    with pytest.raises(ValueError, match="direction"):
        decide_network(RULES, "sideways", "127.0.0.1", 1, "tcp", POSTURES)


def test_device_and_socket_postures() -> None:
    assert short(decide_device(RULES, "char", 1, 3, "read", POSTURES)) == "allow drift/device[0]"
    assert short(decide_device(RULES, "char", 1, 5, "read", POSTURES)) == ("deny drift/posture.device")
    assert short(decide_socket(RULES, "inet", "stream", POSTURES)) == "allow drift/socket[0]"
    assert short(decide_socket(RULES, "inet", "dgram", POSTURES)) == "deny drift/posture.socket"


def test_audit_mode_policy_only_records_what_its_postures_would_deny() -> None:
    learned = pol(
        "learned", {"mode": "audit", "posture": {"exec": "deny"}, "exec": [{"action": "allow", "paths": ["/bin/sh"]}]}
    )
    rules, postures = merge([learned]), merge_postures([learned])
    assert short(decide_exec(rules, "/bin/sh", postures)) == "allow learned/exec[0]"
    assert short(decide_exec(rules, "/bin/ls", postures)) == "audit learned/posture.exec"
