"""The shipped policies do what their comments promise."""

from __future__ import annotations

from pathlib import Path

from enforcer.policy.loader import load_directory
from enforcer.policy.merge import EffectiveRule, merge
from enforcer.policy.reference import decide_exec, decide_file
from enforcer.policy.selector import policies_for

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def rules_for(
    name: str = "web", image: str = "nginx:1.25", labels: dict[str, str] | None = None
) -> tuple[EffectiveRule, ...]:
    ps = load_directory(POLICIES)
    assert ps.ok, ps.errors
    return merge(policies_for(ps, name, image, labels or {}))


def action(d: object) -> str | None:
    return getattr(d, "action", None)


def test_credentials() -> None:
    r = rules_for()
    assert action(decide_file(r, "/etc/shadow", "read")) == "deny"
    assert action(decide_file(r, "/etc/sudoers.d/90-cloud", "read")) == "deny"
    assert action(decide_file(r, "/etc/ssh/ssh_host_ed25519_key", "read")) == "deny"
    assert decide_file(r, "/etc/ssh/ssh_host_ed25519_key.pub", "read") is None
    assert action(decide_file(r, "/root/.ssh/id_ed25519", "read")) == "deny"
    assert action(decide_file(r, "/root/.ssh/known_hosts", "read")) == "allow"
    assert action(decide_file(r, "/root/.ssh/authorized_keys", "write")) == "deny"
    assert action(decide_file(r, "/root/.ssh/authorized_keys", {"read", "write"})) == "deny"
    assert action(decide_file(r, "/root/.aws/credentials", "read")) == "deny"
    assert decide_file(r, "/etc/passwd", "read") is None


def test_exec_tools_are_opt_in_and_package_managers_audited() -> None:
    assert decide_exec(rules_for(), "/usr/bin/nc") is None
    opted = rules_for(labels={"enforcer.io/no-net-tools": "true"})
    assert action(decide_exec(opted, "/usr/bin/nc")) == "deny"
    assert action(decide_exec(rules_for(), "/usr/bin/apt-get")) == "audit"


def test_everything_else_applies_to_every_container() -> None:
    names = {r.policy for r in rules_for("x", "busybox")}
    assert names == {
        "protect-credentials",
        "block-cloud-metadata",
        "deny-raw-sockets",
        "deny-dangerous-devices",
        "audit-package-managers",
    }
