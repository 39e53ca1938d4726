"""The C-parser fast path reads exactly what the ruamel reader reads, or declines.

Whatever it accepts must give the same plain data and the same positions as
yamlpos.to_plain over ruamel; whatever it cannot read the same way it hands back (None),
so errors keep ruamel's exact positions and words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from enforcer.policy.fastyaml import read_documents
from enforcer.policy.loader import parse_text
from enforcer.policy.yamlpos import new_yaml, to_plain
from tests.policy.conftest import HEADER, SAMPLES

REPO = Path(__file__).resolve().parents[2]


def ruamel_documents(text: str) -> list[tuple[object, object] | None]:
    out: list[tuple[object, object] | None] = []
    for doc in new_yaml().load_all(text):
        if doc is None:
            out.append(None)
            continue
        data, pos = to_plain(doc, (doc.lc.line + 1, doc.lc.col + 1))
        out.append((data, pos))
    return out


def corpus() -> list[str]:
    files = sorted((REPO / "policies").glob("*.yaml")) + sorted(SAMPLES.glob("*.yaml"))
    return [f.read_text() for f in files]


def test_libyaml_is_available_so_the_fast_path_runs() -> None:
    assert read_documents(HEADER) is not None


@pytest.mark.parametrize("text", corpus())
def test_shipped_and_sample_policies_read_the_same_both_ways(text: str) -> None:
    fast = read_documents(text)
    assert fast is not None
    slow = ruamel_documents(text)
    assert fast == slow


SCALARS = [
    "plain",
    "'quoted'",
    '"double \\t"',
    "true",
    "False",
    "TRUE",
    "null",
    "~",
    "",
    "Null",
    "12",
    "-3",
    "+4",
    "0777",
    "012",
    "00",
    "yes",
    "no",
    "on",
    "off",
    "/etc/shadow",
    "web-*",
    "169.254.169.254/32",
    "fd00:ec2::254/128",
    "8000-8100",
    "1:20",
    "-x",
    "[80, 443]",
    "{a: 1, b: [x, y]}",
    "|\n    block\n    text",
    ">-\n    folded",
]


@pytest.mark.parametrize("scalar", SCALARS)
def test_scalars_resolve_as_yaml_1_2_like_ruamel(scalar: str) -> None:
    text = f"a:\n  k: {scalar}\n  l:\n  - {scalar}\n  - x\n"
    fast = read_documents(text)
    assert fast is not None and fast[0] is not None
    (slow,) = ruamel_documents(text)
    assert fast[0] == slow


@pytest.mark.parametrize(
    "text",
    [
        "a: 0o17\n",
        "a: 1_000\n",
        "a: 1e3\n",
        "a: .inf\n",
        "a: 2001-12-14\n",
        "a: 0x1F\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 12\n",
        "base: &b {x: 1}\nc:\n  <<: *b\n",
        "a: 1\na: 2\n",
        "%YAML 1.1\n---\na: yes\n",
        "- a\n- b\n",
        "just a string\n",
        "a: [1, 2\n",
        "a:\tb: c\n",
        "? [a, b]\n: c\n",
    ],
)
def test_text_outside_the_plain_subset_is_left_to_ruamel(text: str) -> None:
    assert read_documents(text) is None


def test_empty_documents_are_none() -> None:
    assert read_documents("---\n---\n# nothing\n") == [None, None]
    assert read_documents("") == []


def test_an_invalid_policy_still_gets_ruamels_exact_error() -> None:
    text = HEADER + (
        "metadata:\n  name: x\nspec:\n  file:\n  - action: deny\n    paths: [/etc/shadow]\n    acess: [read]\n"
    )
    _, errors = parse_text(text, "f.yaml")
    assert str(errors[0]).startswith("f.yaml:9:5: spec.file[0]: unknown key 'acess'")


def test_a_large_policy_takes_the_fast_path() -> None:
    from bench.policies import policy_yaml

    text = policy_yaml(300, (2, 8, 32))
    fast = read_documents(text)
    assert fast is not None
    assert fast == ruamel_documents(text)
    policies, errors = parse_text(text, "f.yaml")
    assert not errors and len(policies) == 1
