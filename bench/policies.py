"""Synthetic policies of a given size.

A policy of N rules has N-1 filler deny rules that never match a bench target, half exact
paths and half directories at depths 1..32 (so every depth that a deep path walks has
directory rules to look up: the worst case, not the easy one), one deny rule on
/etc/shadow (the "1 rule" policy is that rule alone), and always one allow rule naming the
`allowed` targets, and one exec, device, network and socket rule each, so every hook
has work to do.

Fillers share their parent directories (/srv/filler/secretN, /f/f/.../xN), as generated
policies do: a deny rule also puts a guard entry on each of its ancestors (the rename and
link hooks look them up), so rules with unique parents at every depth would cost up to 32
map entries each and a 100,000-rule policy would not fit the path_rules map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.rig import MAX_DEPTH, target_path
from enforcer.policy.model import Policy


def filler(i: int) -> dict[str, Any]:
    if i % 2:
        return {"action": "deny", "paths": [f"/srv/filler/secret{i}"]}
    depth = 1 + (i // 2) % MAX_DEPTH
    return {"action": "deny", "dirs": ["/f" * (depth - 1) + f"/x{i}"]}


def policy_document(n_rules: int, depths: Sequence[int], name: str = "bench") -> dict[str, Any]:
    file_rules = [{"action": "deny", "paths": ["/etc/shadow"]}]
    file_rules += [filler(i) for i in range(1, n_rules)]
    file_rules.append({"action": "allow", "paths": [target_path(d, "allowed") for d in depths]})
    return {
        "apiVersion": "enforcer/v1",
        "kind": "ContainerPolicy",
        "metadata": {"name": name},
        "spec": {
            "file": file_rules,
            "exec": [{"action": "deny", "paths": ["/bin/nc"]}],
            # Rules the measured device open (/dev/null) and connect (127.0.0.1) do not match:
            # the programs run and allow, which is the cost that matters.
            "device": [{"action": "deny", "type": "char", "major": 1, "minor": 7}],
            "network": [{"action": "deny", "direction": "egress", "protocol": "tcp", "cidrs": ["169.254.169.254/32"]}],
            "socket": [{"action": "deny", "families": ["packet"]}],
        },
    }


def policy(n_rules: int, depths: Sequence[int], name: str = "bench") -> Policy:
    return Policy.model_validate(policy_document(n_rules, depths, name))


def storm_policy_yaml(container_glob: str) -> str:
    return f"""apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {{name: bench-storm}}
spec:
  selector: {{containerNames: ["{container_glob}"]}}
  file:
    - action: deny
      paths: [/bench/secret]
"""


def policy_yaml(n_rules: int, depths: Sequence[int], name: str = "bench") -> str:
    """The same policy as YAML text (flow style: one rule per line), to time the parser."""
    import json

    doc = policy_document(n_rules, depths, name)
    lines = ["apiVersion: enforcer/v1", "kind: ContainerPolicy", f"metadata: {{name: {name}}}", "spec:", "  file:"]
    lines += [f"    - {json.dumps(r)}" for r in doc["spec"]["file"]]
    for kind in ("exec", "device", "network", "socket"):
        lines += [f"  {kind}:"] + [f"    - {json.dumps(r)}" for r in doc["spec"][kind]]
    return "\n".join(lines) + "\n"
