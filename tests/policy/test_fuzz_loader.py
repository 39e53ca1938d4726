"""Property-based fuzzing of the policy loader (issue 13 item 8): whatever a policy file
holds, loading it never raises, and every rejection is a `FILE:LINE:COL: message` that
points inside the file.

Three generators: mutations of valid policies (YAML-significant characters inserted,
deleted or replaced), random trees of the policy's own keys and values written as YAML
flow text, and raw bytes (encoding errors). 2,000 cases in all per run (ENFORCER_FUZZ_CASES
changes it: `ENFORCER_FUZZ_CASES=100000 python3 -m pytest tests/policy/test_fuzz_loader.py`
is the bench-length run).
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcer.policy.loader import load_file, parse_text

CASES = int(os.environ.get("ENFORCER_FUZZ_CASES", "2000"))
SHARE = {"mutated": 0.5, "trees": 0.4, "bytes": 0.1}
FILE = "/etc/enforcer/policies/fuzz.yaml"
MESSAGE = re.compile(r"^(?P<file>/etc/enforcer/policies/fuzz\.yaml):(?P<line>\d+):(?P<col>\d+): \S")

# Small seeds: the full reader (pure Python) costs per line, and a short file reaches every
# part of the language as well as a long one. The SPEC's whole example is one seed.
SEEDS = [
    "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: a}\nspec:\n"
    "  selector: {containerNames: [web-*], labels: {app: web}}\n  mode: audit\n"
    "  file:\n    - action: deny\n      paths: [/etc/shadow]\n      access: [read]\n",
    "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata:\n  name: b\nspec:\n"
    "  posture: {exec: deny}\n  exec:\n    - {action: allow, origin: image}\n"
    "  device:\n    - {action: deny, type: char, major: 1, minor: '*'}\n---\n",
    "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: c}\nspec:\n  network:\n"
    "    - {action: deny, direction: egress, protocol: tcp, cidrs: [169.254.169.254/32], ports: [80, 8000-8100]}\n"
    "  socket:\n    - {action: deny, families: [packet], types: [raw]}\n",
]
SPEC_EXAMPLE = Path(__file__).parent.joinpath("samples", "spec_example.yaml").read_text()
YAML_BITS = [
    *":-[]{}#&*!|>'\"%@`,? \t\n",
    "---",
    "...",
    "\n  ",
    "\n- ",
    ": ",
    "~",
    "null",
    "0x1F",
    "1e9",
    "-1",
    "'*'",
    "\ufeff",
    "\x00",
    "é",
]
KEYS = [
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "description",
    "spec",
    "selector",
    "containerNames",
    "images",
    "labels",
    "mode",
    "posture",
    "file",
    "exec",
    "device",
    "network",
    "socket",
    "action",
    "paths",
    "dirs",
    "access",
    "origin",
    "type",
    "major",
    "minor",
    "direction",
    "protocol",
    "cidrs",
    "ports",
    "families",
    "types",
    "fileRead",
    "fileWrite",
    "egress",
    "ingress",
    "bogus",
]
WORDS = [
    "enforcer/v1",
    "ContainerPolicy",
    "deny",
    "audit",
    "allow",
    "enforce",
    "read",
    "write",
    "any",
    "mknod",
    "char",
    "block",
    "tcp",
    "udp",
    "egress",
    "ingress",
    "inet",
    "packet",
    "raw",
    "image",
    "/etc/shadow",
    "relative/path",
    "/a/../b",
    "web-*",
    "[",
    "10.0.0.0/8",
    "::1/128",
    "300.1.1.1/8",
    "80",
    "8000-8100",
    "9-1",
    "*",
    "",
    " ",
    "/a" * 200,
]


def check(text: str) -> None:
    policies, errors = parse_text(text, FILE)
    lines = text.count("\n") + 2
    for err in errors:
        m = MESSAGE.match(str(err))
        assert m, f"not FILE:LINE:COL: {err!s}"
        assert "\n" not in str(err), f"not one line: {err!s}"
        assert 1 <= int(m["line"]) <= lines, str(err)
        assert int(m["col"]) >= 1, str(err)
    if errors:
        return
    for lp in policies:  # accepted: the recorded positions are real too
        assert 1 <= lp.line <= lines and lp.col >= 1


def _settings(kind: str) -> settings:
    return settings(
        max_examples=max(1, int(CASES * SHARE[kind])),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Hypothesis draws one seed per case and the text is generated from it: drawing every
# choice through Hypothesis cost 25 ms a case, ten times the loader's own time. A failure
# is reported with its seed (falsifying example), so it replays exactly.
seeds = st.integers(min_value=0, max_value=2**64 - 1)


def mutate(rng: random.Random) -> str:
    text = rng.choice(SEEDS + [SPEC_EXAMPLE] * (rng.random() < 0.05))
    for _ in range(rng.randint(1, 6)):
        at = rng.randint(0, len(text))
        bit = (
            rng.choice(YAML_BITS)
            if rng.random() < 0.8
            else "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(1, 3)))
        )
        op = rng.choice(("insert", "delete", "replace"))
        if op == "insert":
            text = text[:at] + bit + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + rng.randint(1, 8) :]
        else:
            text = text[:at] + bit + text[at + len(bit) :]
    return text


def _leaf(rng: random.Random) -> object:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        return rng.choice([0, 1, -1, 7, 65535, 65536, 2**63, -(2**70)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([0.5, -1e300, float("inf"), float("nan")])
    if kind == 4:
        return "".join(chr(rng.randint(0x20, 0x17F)) for _ in range(rng.randint(0, 8)))
    return rng.choice(KEYS)


def tree(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return _leaf(rng)
    if roll < 0.65:
        return [tree(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(KEYS) if rng.random() < 0.9 else str(_leaf(rng)): tree(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def documents(rng: random.Random) -> str:
    docs = []
    for _ in range(rng.randint(1, 3)):
        doc: dict[str, object] = {
            "apiVersion": "enforcer/v1",
            "kind": "ContainerPolicy",
            "metadata": {"name": rng.choice(["a", "b", "web", "Bad Name", ""])},
            "spec": tree(rng),
        }
        for key in rng.sample(list(doc), rng.randint(0, 2)):
            doc[key] = tree(rng)  # and sometimes the header is wrong too
        docs.append(json.dumps(doc, indent=rng.choice([None, None, None, 1])))  # JSON is YAML flow
    return "\n---\n".join(docs) + "\n"


@_settings("mutated")
@given(seeds)
def test_mutated_policies_load_or_are_rejected_with_file_line_col(seed: int) -> None:
    check(mutate(random.Random(seed)))


@_settings("trees")
@given(seeds)
def test_random_policy_trees_load_or_are_rejected_with_file_line_col(seed: int) -> None:
    check(documents(random.Random(seed)))


@_settings("bytes")
@given(st.binary(max_size=400).map(lambda b: SEEDS[0].encode()[: len(b)] + b))
def test_any_bytes_in_a_policy_file_are_rejected_with_file_line_col(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.yaml"
        path.write_bytes(data)
        result = load_file(path)
    for err in result.errors:
        assert "\n" not in str(err), str(err)
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: \S", str(err)), str(err)


HEADER = "apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: a}\n"
BOMB = (
    HEADER
    + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    + "spec: {}\n"
)


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        # found by the fuzz: ruamel raised TypeError on a mapping used as a key
        (HEADER + "spec:\n  ? [{a: 1}]\n  : x\n", "5:5", "complex keys"),
        # found by the fuzz: a merge key in a flow mapping has no positions (AttributeError)
        (HEADER + "base: &b {mode: audit}\nspec: {<<: *b}\n", "4:1", "unknown key 'base'"),
        (BOMB, "4:", "more than 200000 values"),  # 9^9 list items through aliases: refused, fast
        (HEADER + "spec: " + "[" * 100 + "]" * 100 + "\n", "4:", "deeper than 64 levels"),
        (HEADER + 'spec: {mode: "\x00"}\n', "4:15", "unacceptable character"),  # one line, placed
    ],
)
def test_hostile_yaml_is_one_placed_error(text: str, where: str, says: str) -> None:
    _policies, errors = parse_text(text, FILE)
    assert errors and str(errors[0]).startswith(f"{FILE}:{where}") and says in str(errors[0])
    check(text)
