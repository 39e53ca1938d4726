"""With/without figures from alternating rounds.

Each round measures every configuration once with the enforcer off and once on; the order
of the two states flips every round (ABBA), so drift and the neighbours' load on a shared
machine fall on both sides alike. A figure is median(on) / median(off) over the rounds.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Series:
    """ns per operation, one value per round, for one configuration in one state."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


@dataclass
class Figure:
    off: Series
    on: Series

    @property
    def ratio(self) -> float:
        return self.on.median / self.off.median

    @property
    def round_ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.on.values, self.off.values, strict=False)]

    def to_json(self) -> dict[str, Any]:
        rr = self.round_ratios
        return {
            "ratio": round(self.ratio, 4),
            "off_ns": round(self.off.median, 1),
            "on_ns": round(self.on.median, 1),
            "round_ratio_min": round(min(rr), 4) if rr else None,
            "round_ratio_max": round(max(rr), 4) if rr else None,
            "rounds": len(rr),
        }


Measure = Callable[[], float]


@dataclass
class Alternation:
    """Configurations measured in rounds; `switch(on)` turns the enforcer on or off."""

    switch: Callable[[bool], None]
    off_cases: dict[Hashable, Measure] = field(default_factory=dict)
    on_cases: dict[Hashable, tuple[Hashable, Measure]] = field(default_factory=dict)
    results: dict[tuple[bool, Hashable], Series] = field(default_factory=lambda: defaultdict(Series))

    def add(self, key: Hashable, baseline: Hashable, on: Measure, off: Measure | None = None) -> None:
        """`key` measured on by `on`; its baseline `baseline` measured off by `off` (shared
        by every key with the same baseline, e.g. all rule counts of one path)."""
        self.on_cases[key] = (baseline, on)
        if off is not None:
            self.off_cases[baseline] = off

    def run(self, rounds: int, progress: Callable[[str], None] = lambda _: None) -> None:
        for r in range(rounds):
            states = (False, True) if r % 2 == 0 else (True, False)
            for state in states:
                self.switch(state)
                if state:
                    items = list(self.on_cases.items())
                    for key, (_, measure) in items if r % 2 == 0 else reversed(items):
                        self.results[(True, key)].values.append(measure())
                else:
                    items2 = list(self.off_cases.items())
                    for base, measure in items2 if r % 2 == 0 else reversed(items2):
                        self.results[(False, base)].values.append(measure())
            progress(f"round {r + 1}/{rounds} done")

    def figure(self, key: Hashable) -> Figure:
        baseline = self.on_cases[key][0]
        return Figure(self.results[(False, baseline)], self.results[(True, key)])


class Phases(dict[str, float]):
    """Seconds per named phase: `phases.timed("compile", fn, *args)` runs fn(*args) and
    records its time."""

    def timed(self, name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        self[name] = round(time.perf_counter() - t0, 4)
        return value
