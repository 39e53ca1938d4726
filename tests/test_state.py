"""Rule ids outlive the daemon: a restarted daemon names the counters and events it inherits."""

from __future__ import annotations

from pathlib import Path

from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.kernel.state import RuleTableStore, state_file


def test_rule_ids_survive_a_restart_and_new_rules_get_new_ids(tmp_path: Path) -> None:
    store = RuleTableStore(state_file(Path("/sys/fs/bpf/enforcer"), tmp_path))
    table = store.load()
    a = table.id_for(RuleRef("p", "file[0]"))
    b = table.id_for(RuleRef("p", "exec[0]"))
    store.save(table)

    again = RuleTableStore(store.path).load()
    assert again.ref_for(a) == RuleRef("p", "file[0]") and again.ref_for(b) == RuleRef("p", "exec[0]")
    assert again.id_for(RuleRef("p", "file[0]")) == a
    assert again.id_for(RuleRef("q", "file[0]")) not in (0, a, b)


def test_each_pin_root_has_its_own_table(tmp_path: Path) -> None:
    assert state_file(Path("/sys/fs/bpf/enforcer"), tmp_path) != state_file(Path("/sys/fs/bpf/x"), tmp_path)


def test_an_unreadable_table_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("{broken")
    assert len(RuleTableStore(path).load()) == 0
    assert isinstance(RuleTableStore(tmp_path / "missing.json").load(), RuleTable)
