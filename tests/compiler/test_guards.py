"""Guard entries: the names the kernel refuses to rename, remove or hard-link."""

from __future__ import annotations

from enforcer.compiler.paths import CompiledPaths, PathEntry, compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge

HEADER = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: p}
spec:
"""


def _compile(spec: str) -> CompiledPaths:
    loaded, errors = parse_text(HEADER + spec, "p.yaml")
    assert not errors
    return compile_paths(merge(p.policy for p in loaded), RuleTable())


def _guards(spec: str) -> dict[str, int]:
    compiled = _compile(spec)
    guards: dict[str, int] = {}
    for entry, slots in compiled.entries.items():
        if entry.kind == "guard":
            assert slots[0] is not None, f"guard {entry.path} has no slot 0"
            guards[entry.path] = slots[0].action
    return guards


def test_every_enforcing_rule_path_and_its_directories_are_guarded() -> None:
    guards = _guards("""
  file:
    - {action: deny, paths: [/etc/shadow]}
    - {action: audit, dirs: [/root/.ssh]}
    - {action: allow, paths: [/srv/public/file]}
  exec:
    - {action: deny, paths: [/usr/bin/nc]}
""")
    assert guards == {
        "/etc/shadow": 3,
        "/etc": 3,
        "/root/.ssh": 2,
        "/root": 2,
        "/usr/bin/nc": 3,
        "/usr/bin": 3,
        "/usr": 3,
    }  # allow rules guard nothing; "/" cannot be renamed anyway


def test_a_directory_above_several_rules_takes_the_strongest() -> None:
    guards = _guards("""
  file:
    - {action: audit, paths: [/etc/a]}
    - {action: deny, paths: [/etc/b]}
""")
    assert guards["/etc"] == 3 and guards["/etc/a"] == 2


def test_guards_do_not_count_as_file_rules() -> None:
    compiled = _compile("""
  exec:
    - {action: deny, paths: [/bin/nc]}
""")
    assert PathEntry("guard", "/bin") in compiled.entries
    assert not compiled.has_enforcing("file")
