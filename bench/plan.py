"""How big and how long each item runs: the full suite and --quick."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.kernel_items import KernelPlan

# Item names, in the priority order.
# kernel: items 1-3, 7 and the kernel half of 4; compile: the Python half of 4 (run natively);
# decode: ring-buffer bytes to audit records (run natively, issue 17).
ITEMS = ("kernel", "compile", "storm", "churn", "decode")
NATIVE_ITEMS = ("compile", "decode")


@dataclass(frozen=True)
class Plan:
    kernel: KernelPlan
    compile_rules: tuple[int, ...]  # item 4, Python half
    parse_rules_max: int  # ... parsed from YAML up to this size, else validated
    storm_opens: int  # item 5
    storm_drain_max_s: float  # how long the audit trail may take to catch up
    storm_profile_s: int  # py-spy on the daemon for this long (0: not)
    churn_cycles: int  # item 6
    decode_events: int = 100_000  # raw events decoded per round (natively)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def full_plan() -> Plan:
    return Plan(
        kernel=KernelPlan(
            rule_counts=(1, 1000, 10_000, 100_000),
            depths=(2, 8, 32),
            rounds=8,
            seconds=0.2,
            exec_rules=1000,
            parse_rules_max=0,
        ),
        compile_rules=(1000, 10_000, 100_000),
        parse_rules_max=10_000,
        storm_opens=1_000_000,
        storm_drain_max_s=60,
        storm_profile_s=30,
        churn_cycles=2,
    )


def quick_plan() -> Plan:
    return Plan(
        kernel=KernelPlan(
            rule_counts=(1, 1000), depths=(2, 32), rounds=2, seconds=0.1, exec_rules=1000, parse_rules_max=0
        ),
        compile_rules=(1000,),
        parse_rules_max=1000,
        storm_opens=10_000,
        storm_drain_max_s=60,
        storm_profile_s=5,
        churn_cycles=1,
        decode_events=5_000,
    )
