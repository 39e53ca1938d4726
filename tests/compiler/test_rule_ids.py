"""Rule ids: dense, stable, and cheap to hand out for very large policies."""

from __future__ import annotations

import time

from enforcer.compiler.rules import RuleRef, RuleTable


def test_new_rules_are_numbered_from_1_in_first_use_order_and_keep_their_id() -> None:
    table = RuleTable()
    refs = [RuleRef("p", f"file[{i}]") for i in range(5)]
    assert [table.id_for(r) for r in refs] == [1, 2, 3, 4, 5]
    assert table.id_for(refs[2]) == 3


def test_a_reloaded_table_numbers_new_rules_after_its_highest_id() -> None:
    table = RuleTable.from_json([[7, "p", "file[0]"], [3, "p", "file[1]"]])
    assert table.id_for(RuleRef("p", "file[2]")) == 8


def test_numbering_100000_rules_takes_linear_time() -> None:
    # max(ids) + 1 per new rule made this quadratic: 100,000 rules took minutes.
    table = RuleTable()
    t0 = time.perf_counter()
    for i in range(100_000):
        table.id_for(RuleRef("big", f"file[{i}]"))
    assert time.perf_counter() - t0 < 10
    assert len(table) == 100_000
