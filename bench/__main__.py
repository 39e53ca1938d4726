"""python -m bench [--quick] [--only ITEMS] [--out DIR]: run the suite, write
DIR/latest.json, DIR/latest.md and the plots (default bench/results)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.plan import ITEMS, NATIVE_ITEMS, Plan, full_plan, quick_plan
from bench.report import machine, update_readmes, write_results
from bench.suite import run_suite
from bench.targets import judge

DEFAULT_OUT = Path(__file__).with_name("results")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds (< 3 min in the VM)")
    ap.add_argument("--only", default=",".join(ITEMS), help=f"comma list of {','.join(ITEMS)}")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="latest.json of a native run (scripts/bench: the compile item) to include",
    )
    ap.add_argument(
        "--part",
        choices=("all", "native", "vm"),
        default="all",
        help="native: only the items that must run on the real CPU (compile); vm: the rest",
    )
    args = ap.parse_args(argv)
    items = [i.strip() for i in args.only.split(",") if i.strip()]
    if args.part != "all":
        items = [i for i in items if (i in NATIVE_ITEMS) == (args.part == "native")]
    unknown = set(items) - set(ITEMS)
    if unknown:
        ap.error(f"unknown items: {', '.join(sorted(unknown))}")
    plan: Plan = quick_plan() if args.quick else full_plan()
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"bench [{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "plan": plan.to_json(),
        "items": items,
    }
    results.update(run_suite(plan, items, say))
    for extra in args.merge:
        native = json.loads(extra.read_text())
        for key in native["items"]:
            if key in native:
                results[key] = native[key]
                results.setdefault("native", {})[key] = native["machine"]
        results["targets"] = judge(results)
    results["duration_s"] = round(time.monotonic() - t0, 1)
    paths = write_results(results, args.out)
    if not args.quick and args.out == DEFAULT_OUT and set(ITEMS) <= set(items) | set(results.get("native", {})):
        paths += update_readmes(results)  # a full run of every item: the READMEs' tables
    say("wrote " + ", ".join(str(p) for p in paths))
    print(json.dumps(results.get("targets", []), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
