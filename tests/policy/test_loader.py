"""Loading: the SPEC example, multi-document files, and every error class with exact
FILE:LINE:COL positions (1-based, pointing at the offending key or value)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from enforcer.errors import EnforcerError
from enforcer.policy.errors import PolicyError
from enforcer.policy.loader import (
    is_policy_file_name,
    load_directory,
    load_file,
    load_paths,
    parse_text,
)
from tests.policy.conftest import HEADER, SAMPLES, doc


def errors_of(text: str) -> list[str]:
    _, errors = parse_text(text, "f.yaml")
    return [str(e) for e in errors]


def test_spec_example_loads() -> None:
    result = load_file(SAMPLES / "spec_example.yaml")
    assert result.ok, result.errors
    (lp,) = result.policies
    p = lp.policy
    assert p.name == "protect-credentials"
    assert (lp.line, lp.col) == (4, 9)
    assert p.spec.selector.containerNames == ("web-*",)
    assert p.spec.selector.labels == {"app": "web"}
    assert [r.rule_id for r in p.spec.file] == ["file[0]", "file[1]", "file[2]"]
    assert p.spec.file[1].access_set == {"write"}
    assert p.spec.file[2].access_set == {"read", "write"}
    assert p.spec.network[0].ports == ((80, 80), (8000, 8100))
    assert p.spec.device[0].rule_id == "device[0]"
    assert p.spec.socket[0].family_numbers == {17}
    assert p.spec.socket[0].type_numbers == frozenset({3})


def test_multi_document_file_and_empty_documents() -> None:
    result = load_file(SAMPLES / "multi.yaml")
    assert result.ok
    assert [lp.policy.name for lp in result.policies] == ["first", "second"]
    assert result.policies[1].policy.spec.mode == "audit"


def test_empty_file_has_no_policies() -> None:
    assert parse_text("", "f") == ([], [])
    assert parse_text("---\n---\n# nothing\n", "f") == ([], [])


X = HEADER + "metadata:\n  name: x\n"  # lines 1-4; spec starts on line 5

CASES = [
    # unknown key: points at the key
    (
        X + "spec:\n  file:\n    - action: deny\n      path: [/a]\n",
        "f.yaml:8:7: spec.file[0]: unknown key 'path' (did you mean 'paths'? allowed: action, paths, dirs, access)",
    ),
    (
        X + "spec: {}\nextra: 1\n",
        "f.yaml:6:1: document: unknown key 'extra' (allowed: apiVersion, kind, metadata, spec)",
    ),
    (
        X + "spec:\n  selector:\n    name: [a]\n",
        "f.yaml:7:5: spec.selector: unknown key 'name' (allowed: containerNames, images, labels)",
    ),
    # wrong types: point at the value
    (
        X + "spec:\n  file:\n    - action: deny\n      paths: /etc/shadow\n",
        "f.yaml:8:14: spec.file[0].paths: expected a list, got a string",
    ),
    (X + "spec:\n  file: {action: deny}\n", "f.yaml:6:9: spec.file: expected a list, got dict"),
    (
        X + "spec:\n  file:\n    - action: block\n      paths: [/a]\n",
        "f.yaml:7:15: spec.file[0].action: Input should be 'deny', 'audit' or 'allow', got 'block'",
    ),
    (X + "spec:\n  mode: strict\n", "f.yaml:6:9: spec.mode: Input should be 'enforce' or 'audit', got 'strict'"),
    (
        X + "spec:\n  selector:\n    labels: {app: true}\n",
        'f.yaml:7:19: spec.selector.labels.app: label values are strings; quote it: "true"',
    ),
    (X + "spec:\n  selector:\n    labels: {1: a}\n", "f.yaml:7:14: spec.selector.labels[1]: key must be a string"),
    # missing keys: point at the mapping that lacks them
    (X + "spec:\n  file:\n    - paths: [/a]\n", "f.yaml:7:7: spec.file[0]: missing required key 'action'"),
    (HEADER + "spec: {}\n", "f.yaml:1:1: document: missing required key 'metadata'"),
    (
        X + "spec:\n  file:\n    - action: deny\n",
        "f.yaml:7:7: spec.file[0]: a file rule needs at least one of 'paths' or 'dirs'",
    ),
    # header values
    (
        "apiVersion: enforcer/v2\nkind: ContainerPolicy\nmetadata: {name: x}\nspec: {}\n",
        "f.yaml:1:13: apiVersion: Input should be 'enforcer/v1', got 'enforcer/v2'",
    ),
    (
        HEADER + "metadata:\n  name: Bad_Name\nspec: {}\n",
        "f.yaml:4:9: metadata.name: invalid policy name 'Bad_Name': use 1-63 lowercase letters, "
        "digits, '-' or '.', starting and ending with a letter or digit",
    ),
    # paths
    (
        X + "spec:\n  file:\n    - action: deny\n      paths: [/a/../etc/shadow]\n",
        "f.yaml:8:15: spec.file[0].paths[0]: path must not contain '..' components: '/a/../etc/shadow'",
    ),
    (
        X + "spec:\n  file:\n    - action: deny\n      dirs: [/ok, etc]\n",
        "f.yaml:8:19: spec.file[0].dirs[1]: path must be absolute (start with '/'): 'etc'",
    ),
    (
        X + 'spec:\n  file:\n    - action: deny\n      paths: ["/a\\0b"]\n',
        "f.yaml:8:15: spec.file[0].paths[0]: path must not contain a NUL byte",
    ),
    (
        X + "spec:\n  exec:\n    - action: deny\n      paths: [/usr/bin/*]\n",
        "f.yaml:8:15: spec.exec[0].paths[0]: paths are literal, globs are not supported: '/usr/bin/*' (list each file)",
    ),
    (
        X + "spec:\n  file:\n    - action: deny\n      paths: [/" + "a" * 256 + "]\n",
        "f.yaml:8:15: spec.file[0].paths[0]: path component longer than 255 bytes: "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'...",
    ),
    (
        X + "spec:\n  file:\n    - action: deny\n      paths: [" + "/aaaaaaa" * 512 + "]\n",
        "f.yaml:8:15: spec.file[0].paths[0]: path longer than 4095 bytes",
    ),
    (
        X + "spec:\n  file:\n    - action: deny\n      paths: [/a]\n      access: [exec]\n",
        "f.yaml:9:16: spec.file[0].access[0]: Input should be 'read', 'write' or 'any', got 'exec'",
    ),
    (
        X + "spec:\n  file:\n    - action: deny\n      paths: [/a]\n      access: []\n",
        "f.yaml:9:15: spec.file[0].access: must not be empty",
    ),
    # globs
    (
        X + "spec:\n  selector:\n    containerNames: [web-, 'db-[0-9']\n",
        "f.yaml:7:28: spec.selector.containerNames[1]: unclosed '[' in glob 'db-[0-9'",
    ),
    (X + "spec:\n  selector:\n    images: ['']\n", "f.yaml:7:14: spec.selector.images[0]: glob must not be empty"),
    (
        X + "spec:\n  selector:\n    images: ['a[z-a]']\n",
        "f.yaml:7:14: spec.selector.images[0]: reversed range 'z-a' in glob 'a[z-a]'",
    ),
    (
        X + "spec:\n  selector:\n    containerNames: [/web]\n",
        "f.yaml:7:22: spec.selector.containerNames[0]: container names are written without the leading '/': '/web'",
    ),
    (
        X + "spec:\n  selector:\n    images: []\n",
        "f.yaml:7:13: spec.selector.images: an empty images list selects no container; omit the key to match all",
    ),
    # devices
    (
        X + "spec:\n  device:\n    - {action: deny, type: char, major: 4096, minor: 1}\n",
        "f.yaml:7:41: spec.device[0].major: out of range: 4096 (0..4095)",
    ),
    (
        X + "spec:\n  device:\n    - {action: deny, type: char, major: 1, minor: any}\n",
        "f.yaml:7:51: spec.device[0].minor: expected an integer 0..1048575 or \"*\", got 'any'",
    ),
    (
        X + "spec:\n  device:\n    - {action: deny, type: pipe, major: 1, minor: 1}\n",
        "f.yaml:7:28: spec.device[0].type: Input should be 'char', 'block' or 'any', got 'pipe'",
    ),
    # network
    (
        X + "spec:\n  network:\n    - action: deny\n      direction: egress\n      cidrs: [10.0.0.1/8]\n",
        "f.yaml:9:15: spec.network[0].cidrs[0]: invalid CIDR '10.0.0.1/8': 10.0.0.1/8 has host bits set",
    ),
    (
        X + "spec:\n  network:\n    - action: deny\n      direction: egress\n      cidrs: [10.0.0.0/33]\n",
        "f.yaml:9:15: spec.network[0].cidrs[0]: invalid CIDR '10.0.0.0/33': "
        "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
    ),
    (
        X + "spec:\n  network:\n    - action: deny\n      direction: egress\n      cidrs: ['::ffff:0.0.0.0/64']\n",
        "f.yaml:9:15: spec.network[0].cidrs[0]: invalid CIDR '::ffff:0.0.0.0/64': ::ffff:0:0/64 has host bits set",
    ),
    (
        X + "spec:\n  network:\n    - action: deny\n      direction: out\n      cidrs: [10.0.0.0/8]\n",
        "f.yaml:8:18: spec.network[0].direction: Input should be 'egress' or 'ingress', got 'out'",
    ),
    (
        X + "spec:\n  network:\n    - action: deny\n      direction: egress\n"
        "      cidrs: [10.0.0.0/8]\n      ports: [80, 0, '9-8', 65536, http]\n",
        "f.yaml:10:19: spec.network[0].ports[1]: port out of range: 0 (1..65535)",
    ),
    (
        X + "spec:\n  network:\n    - action: deny\n      direction: egress\n      cidrs: []\n",
        "f.yaml:9:14: spec.network[0].cidrs: an empty cidrs list matches no address; omit the key to match any address",
    ),
    # sockets
    (
        X + "spec:\n  socket:\n    - {action: deny, families: [inet, ipx6]}\n",
        "f.yaml:7:39: spec.socket[0].families[1]: unknown address family 'ipx6' "
        "(known: inet, inet6, unix, packet, netlink, ...)",
    ),
    (
        X + "spec:\n  socket:\n    - {action: deny, families: [inet], types: [rawr]}\n",
        "f.yaml:7:48: spec.socket[0].types[0]: Input should be 'stream', 'dgram', 'raw', "
        "'seqpacket', 'packet' or 'any', got 'rawr'",
    ),
    (
        X + "spec:\n  socket:\n    - {action: deny, families: [inet6], types: [packet]}\n",
        (
            "f.yaml:7:7: spec.socket[0]: type 'packet' (SOCK_PACKET) sockets are created as family "
            "'packet', never 'inet6': write families: [packet]"
        ),
    ),
    # YAML itself
    (X + "spec:\n  file: [\n", "f.yaml:7:1: YAML syntax error: expected the node content, but found '<stream end>'"),
    (X + "spec: {}\nspec: {}\n", "f.yaml:6:1: duplicate key 'spec' (mapping starts at line 1)"),
    (X + "spec:\n\tfile: []\n", "f.yaml:6:1: YAML syntax error: found character '\\t' that cannot start any token"),
    ("- a\n- b\n", "f.yaml:1:1: a policy document must be a mapping (apiVersion, kind, metadata, spec), got a list"),
    (
        doc("a") + "---\njust text\n",
        "f.yaml:7:1: a policy document must be a mapping (apiVersion, kind, metadata, spec), got a string",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1][:60] for c in CASES])
def test_error_positions(text: str, expected: str) -> None:
    assert expected in errors_of(text), errors_of(text)


def test_ports_report_every_bad_entry() -> None:
    text = next(c for c in CASES if "ports[1]" in c[1])[0]
    assert errors_of(text) == [
        "f.yaml:10:19: spec.network[0].ports[1]: port out of range: 0 (1..65535)",
        "f.yaml:10:22: spec.network[0].ports[2]: port range '9-8' is reversed (start must be <= end)",
        "f.yaml:10:29: spec.network[0].ports[3]: port out of range: 65536 (1..65535)",
        "f.yaml:10:36: spec.network[0].ports[4]: expected a port 1..65535 or a range \"A-B\", got 'http'",
    ]


def test_one_bad_document_rejects_the_whole_file(write: Callable[[str, str], str]) -> None:
    path = write("p.yaml", doc("good") + "---\n" + doc("bad", "spec: {mode: x}"))
    result = load_file(path)
    assert not result.ok
    assert result.policies == ()
    assert [str(e) for e in result.errors] == [
        f"{path}:11:14: spec.mode: Input should be 'enforce' or 'audit', got 'x'"
    ]


def test_duplicate_name_within_file() -> None:
    _, errors = parse_text(doc("a") + "---\n" + doc("a"), "f.yaml")
    assert [str(e) for e in errors] == ["f.yaml:10:9: duplicate policy name 'a' (first defined at f.yaml:4:9)"]


def test_duplicate_name_across_files_rejects_the_later_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("shared") + "---\n" + doc("only-a"))
    (tmp_path / "b.yaml").write_text(doc("only-b") + "---\n" + doc("shared"))
    ps = load_directory(tmp_path)
    assert ps.names == ("shared", "only-a")
    a, b = ps.files
    assert a.ok and not b.ok and b.policies == ()
    assert [str(e) for e in b.errors] == [
        f"{tmp_path}/b.yaml:10:9: duplicate policy name 'shared' (already defined at "
        f"{tmp_path}/a.yaml:4:9); this file is not loaded"
    ]


def test_names_of_rejected_files_do_not_block_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("x", "spec: {mode: bad}"))
    (tmp_path / "b.yaml").write_text(doc("x"))
    ps = load_directory(tmp_path)
    assert ps.names == ("x",)
    assert ps.source("x").file.endswith("b.yaml")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "counted"),
    [
        ("a.yaml", True),
        ("b.yml", True),
        ("policy.YAML", False),
        (".hidden.yaml", False),
        (".#a.yaml", False),
        ("a.yaml~", False),
        (".a.yaml.swp", False),
        ("#a.yaml#", False),
        ("a.yaml.bak", False),
        ("a.json", False),
        ("a.yaml.dpkg-old", False),
    ],
)
def test_policy_file_names(name: str, counted: bool) -> None:
    assert is_policy_file_name(name) is counted


def test_directory_ignores_temp_files_subdirs_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(doc("b"))
    (tmp_path / "a.yml").write_text(doc("a"))
    for junk in (".#b.yaml", "b.yaml~", ".b.yaml.swp", ".hidden.yaml", "notes.txt"):
        (tmp_path / junk).write_text("not: [valid")
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "sub.yaml" / "c.yaml").write_text(doc("c"))
    ps = load_directory(tmp_path)
    assert [os.path.basename(f.file) for f in ps.files] == ["a.yml", "b.yaml"]
    assert ps.names == ("a", "b") and ps.ok


def test_broken_symlink_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    ps = load_directory(tmp_path)
    assert [str(e) for e in ps.errors] == [f"{tmp_path}/gone.yaml: cannot read: No such file or directory"]


def test_missing_directory_is_an_enforcer_error(tmp_path: Path) -> None:
    with pytest.raises(EnforcerError, match="no such directory"):
        load_directory(tmp_path / "nope")


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_bytes(b"apiVersion: enforcer/v1\nkind: \xff\n")
    assert [str(e) for e in load_file(p).errors] == [f"{p}:2:7: not valid UTF-8"]


def test_invalid_file_keeps_previous_good_version(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a", "spec: {mode: audit}"))
    (tmp_path / "b.yaml").write_text(doc("b"))
    first = load_directory(tmp_path)
    (tmp_path / "a.yaml").write_text(doc("a", "spec: {mode: nonsense}"))
    second = load_directory(tmp_path, previous=first)
    assert second.names == ("a", "b")
    assert second.get("a").spec.mode == "audit"  # type: ignore[union-attr]
    assert second.files[0].kept_previous and not second.files[0].ok
    assert second.digest == first.digest and not second.diff(first)
    # without `previous` (enforcer check) the broken file contributes nothing
    assert load_directory(tmp_path).names == ("b",)
    # removing a file is a valid change: its policies go
    (tmp_path / "a.yaml").unlink()
    third = load_directory(tmp_path, previous=second)
    assert third.names == ("b",) and third.diff(second).removed == ("a",)


def test_digest_and_diff(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    one = load_directory(tmp_path)
    (tmp_path / "a.yaml").write_text("# a comment changes nothing\n" + doc("a"))
    assert load_directory(tmp_path).digest == one.digest
    (tmp_path / "a.yaml").write_text(doc("a", "spec: {mode: audit}"))
    (tmp_path / "z.yaml").write_text(doc("z"))
    two = load_directory(tmp_path)
    assert two.digest != one.digest
    d = two.diff(one)
    assert (d.added, d.removed, d.changed) == (("z",), (), ("a",))


def test_policy_set_is_immutable(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    ps = load_directory(tmp_path)
    with pytest.raises(AttributeError):
        ps.entries = ()  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017 (pydantic's frozen error)
        ps.policies[0].spec.mode = "audit"  # type: ignore[misc]


def test_load_paths_mixes_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.yaml").write_text(doc("a"))
    (tmp_path / "other.txt").write_text(doc("b"))  # an explicit file counts whatever its name
    ps = load_paths([tmp_path / "d", tmp_path / "other.txt"])
    assert ps.names == ("a", "b")


def test_policy_error_renders() -> None:
    assert str(PolicyError("f", 3, 4, "bad")) == "f:3:4: bad"
    assert str(PolicyError("f", None, None, "bad")) == "f: bad"
