"""Normalisation done by the model: one spelling for every consumer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from enforcer.policy.model import FileRule, NetworkRule, Policy, SocketRule
from enforcer.policy.paths import depth, is_under, normalize_path


def policy(spec: dict[str, Any]) -> Policy:
    return Policy.model_validate(
        {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": "p"}, "spec": spec}
    )


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("/etc/shadow", "/etc/shadow"),
        ("/etc//shadow", "/etc/shadow"),
        ("/etc/./shadow", "/etc/shadow"),
        ("/root/.ssh/", "/root/.ssh"),
        ("/", "/"),
        ("//", "/"),
        ("/a/.b", "/a/.b"),
        ("/a/...", "/a/..."),
    ],
)
def test_path_normalisation(raw: str, norm: str) -> None:
    assert normalize_path(raw) == norm


@pytest.mark.parametrize("bad", ["", "etc", "./etc", "/a/../b", "/..", "/a\x00", "/a/*", "/a?", "/[ab]"])
def test_path_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_path(bad)


def test_path_limits() -> None:
    normalize_path("/" + "a" * 255)
    with pytest.raises(ValueError, match="component"):
        normalize_path("/" + "a" * 256)
    with pytest.raises(ValueError, match="component"):
        normalize_path("/" + "é" * 128)  # 256 bytes in UTF-8
    normalize_path(("/" + "a" * 254) * 16 + "/" + "a" * 14)  # exactly 4095 bytes
    with pytest.raises(ValueError, match="longer than 4095"):
        normalize_path(("/" + "a" * 254) * 16 + "/" + "a" * 15)


def test_depth_and_is_under() -> None:
    assert [depth(p) for p in ("/", "/a", "/a/b")] == [0, 1, 2]
    assert is_under("/root/.ssh", "/root/.ssh")
    assert is_under("/root/.ssh/id_rsa", "/root/.ssh")
    assert not is_under("/root/.sshx", "/root/.ssh")
    assert not is_under("/root", "/root/.ssh")
    assert is_under("/anything", "/")


def test_cidr_normalisation() -> None:
    r = NetworkRule(
        action="deny",
        direction="egress",
        cidrs=("::ffff:169.254.169.254/128", "::ffff:10.0.0.0/104", "10.1.2.3", "FD00:EC2::254/128", "fd00::/8"),
    )
    assert r.cidrs == ("169.254.169.254/32", "10.0.0.0/8", "10.1.2.3/32", "fd00:ec2::254/128", "fd00::/8")


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "fd00::1/8", "1.2.3.4/33", "x", "::ffff:10.0.0.0/95"])
def test_cidr_rejects(bad: str) -> None:
    with pytest.raises(ValidationError):
        NetworkRule(action="deny", direction="egress", cidrs=(bad,))


def test_cidrs_omitted_means_any_address_of_both_families() -> None:
    r = NetworkRule(action="deny", direction="ingress", ports=("9000-9010",))  # type: ignore[arg-type]
    assert r.cidrs is None
    assert [str(n) for n in r.networks] == ["0.0.0.0/0", "::/0"]


def test_cidrs_empty_list_is_an_error() -> None:
    with pytest.raises(ValidationError, match="omit the key to match any address"):
        NetworkRule(action="deny", direction="egress", cidrs=())


@pytest.mark.parametrize(
    ("raw", "norm"),
    [(80, (80, 80)), ("8000-8100", (8000, 8100)), ("443", (443, 443)), ("1-65535", (1, 65535)), ("5-5", (5, 5))],
)
def test_ports(raw: Any, norm: tuple[int, int]) -> None:
    r = NetworkRule(action="deny", direction="egress", cidrs=("0.0.0.0/0",), ports=(raw,))
    assert r.ports == (norm,)


@pytest.mark.parametrize("bad", [0, 65536, "9-8", "a", True, 1.5, "1-", "-1", None])
def test_ports_reject(bad: Any) -> None:
    with pytest.raises(ValidationError):
        NetworkRule(action="deny", direction="egress", cidrs=("0.0.0.0/0",), ports=(bad,))


def test_defaults() -> None:
    p = policy(
        {
            "file": [{"action": "deny", "dirs": ["/x"]}],
            "device": [{"action": "deny", "type": "block", "major": "*", "minor": "*"}],
            "network": [{"action": "deny", "direction": "ingress", "cidrs": ["::/0"]}],
            "socket": [{"action": "deny", "families": ["PACKET", "local"]}],
        }
    )
    assert p.spec.mode == "enforce"
    assert p.spec.selector.model_dump() == {"containerNames": None, "images": None, "labels": None}
    assert p.spec.file[0].access_set == {"read", "write"}
    assert p.spec.device[0].access == ("read", "write", "mknod")
    assert p.spec.network[0].protocol == "any" and p.spec.network[0].ports == ()
    assert p.spec.socket[0].families == ("packet", "local")
    assert p.spec.socket[0].family_numbers == {17, 1}
    assert p.spec.socket[0].type_numbers is None


def test_socket_types() -> None:
    r = SocketRule(action="deny", families=("inet",), types=("raw", "dgram"))
    assert r.type_numbers == frozenset({3, 2})
    assert SocketRule(action="deny", families=("inet",), types=("any",)).type_numbers is None


@pytest.mark.parametrize("bad", [True, -1, 4096, "1", 1.0, None])
def test_device_major_rejects(bad: Any) -> None:
    with pytest.raises(ValidationError):
        policy({"device": [{"action": "deny", "type": "char", "major": bad, "minor": 1}]})


def test_device_minor_range() -> None:
    policy({"device": [{"action": "deny", "type": "char", "major": 4095, "minor": 1048575}]})
    with pytest.raises(ValidationError):
        policy({"device": [{"action": "deny", "type": "char", "major": 1, "minor": 1048576}]})


def test_rule_ids_per_kind() -> None:
    p = policy(
        {
            "file": [{"action": "deny", "paths": ["/a"]}, {"action": "allow", "paths": ["/b"]}],
            "exec": [{"action": "deny", "paths": ["/c"]}],
        }
    )
    assert [r.rule_id for r in p.spec.file] == ["file[0]", "file[1]"]
    assert p.spec.exec[0].rule_id == "exec[0]"


@pytest.mark.parametrize("name", ["a", "a-b.c", "0", "a" * 63, "web-1"])
def test_good_names(name: str) -> None:
    Policy.model_validate(
        {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": {}}
    )


@pytest.mark.parametrize("name", ["", "A", "a_b", "-a", "a-", "a" * 64, "a b", 5])
def test_bad_names(name: Any) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate(
            {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": {}}
        )


def test_models_are_frozen_and_hashable() -> None:
    p = policy({"selector": {"labels": {"a": "b"}}, "file": [{"action": "deny", "paths": ["/a"]}]})
    with pytest.raises(ValidationError):
        p.spec.file[0].action = "allow"  # type: ignore[misc]
    assert hash(p) == hash(policy({"selector": {"labels": {"a": "b"}}, "file": [{"action": "deny", "paths": ["/a"]}]}))
    assert isinstance(p.spec.file[0], FileRule)
