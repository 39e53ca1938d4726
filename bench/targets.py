"""The issue's targets, judged against one run's results."""

from __future__ import annotations

from typing import Any

from bench.rig import TARGETS


def _open(res: dict[str, Any], rules: int, depth: int, target: str) -> dict[str, Any] | None:
    row: dict[str, Any]
    for row in res.get("kernel", {}).get("open_close", []):
        if (row["rules"], row["depth"], row["target"]) == (rules, depth, target):
            return row
    return None


def _program_ns(kernel: dict[str, Any], case: str) -> float | None:
    """The enforcer's programs' own time per measured operation of a case (bpf_stats)."""
    rows = [r for r in kernel.get("bpf_stats", []) if r["case"] == case and "ns_per_op" in r]
    return sum(r["ns_per_op"] for r in rows) if rows else None


def _program_shares(kernel: dict[str, Any], add: Any) -> None:
    """The issue's hot-path targets: program time as a share of the operation's time."""

    def share(name: str, case: str, on_ns: float, limit: float) -> None:
        ns = _program_ns(kernel, case)
        if ns is not None:
            add(f"program time / {name}", round(ns / on_ns, 4), f"<= {limit:.0%}", ns / on_ns <= limit)

    for row in kernel["open_close"]:
        if row["rules"] == 1000:
            depth, target = row["depth"], row["target"]
            case = f"open {target} depth={depth} rules=1000"
            share(f"open+close, 1,000 rules, {target}, depth {depth}, repeat", case, row["on_ns"], 0.05)
    for row in kernel.get("open_first", []):
        depth, target = row["depth"], row["target"]
        case = f"open {target} depth={depth} rules={row['rules']} first"
        share(f"open+close, {row['rules']:,} rules, {target}, depth {depth}, first open", case, row["on_ns"], 0.10)
    # a repeat costs the same however deep the file is (the cache answers before any walk)
    depths = sorted({r["depth"] for r in kernel["open_close"]})
    if len(depths) > 1:
        for target in ("none", "far"):
            ns = [_program_ns(kernel, f"open {target} depth={d} rules=1000") for d in (depths[0], depths[-1])]
            if ns[0] and ns[1]:
                rel = ns[1] / ns[0]
                add(
                    f"program time, repeat open, {target}: depth {depths[-1]} / depth {depths[0]}",
                    round(rel, 3),
                    "<= 1.10 (independent of depth)",
                    rel <= 1.10,
                )
    share("open+close by a host process", "host_open", kernel["host_open"]["on_ns"], 0.01)
    for name, row in kernel.get("container_ops", {}).items():
        if name in ("exec", "connect", "device_open"):
            share(f"{name} in a container", name, row["on_ns"], 0.05)


def judge(res: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, value: Any, target: str, ok: bool | None) -> None:
        out.append({"figure": name, "value": value, "target": target, "met": ok})

    kernel = res.get("kernel")
    if kernel:
        depths = sorted({r["depth"] for r in kernel["open_close"]})
        counts = sorted({r["rules"] for r in kernel["open_close"]})
        for depth in depths:
            for target in TARGETS:
                row = _open(res, 1000, depth, target) if 1000 in counts else None
                if row:  # a run before the "far" target has none of it
                    add(
                        f"open+close, 1,000 rules, {target}, depth {depth}",
                        row["ratio"],
                        "<= 1.10",
                        row["ratio"] <= 1.10,
                    )
                big, one = _open(res, 100_000, depth, target), _open(res, 1, depth, target)
                if big and one:
                    rel = big["on_ns"] / one["on_ns"]
                    add(
                        f"open+close, 100,000 vs 1 rule, {target}, depth {depth}",
                        round(rel, 4),
                        "within 5% (<= 1.05)",
                        rel <= 1.05,
                    )
        _program_shares(kernel, add)
        host = kernel["host_open"]["ratio"]
        add("open+close by a host process", host, "<= 1.02", host <= 1.02)
        floor = kernel.get("floor", {})
        if "host_open" in floor:  # context: what an empty LSM program costs here
            add("floor: open+close by a host process, empty LSM program only", floor["host_open"]["ratio"], "-", None)
        if "container_open_depth2" in floor:
            add(
                "floor: open+close in a container, depth 2, empty LSM program only",
                floor["container_open_depth2"]["ratio"],
                "-",
                None,
            )
    # Live, natively: text to entries in a real kernel map (compile item, host CPU).
    for row in res.get("compile", []):
        if row["rules"] in (10_000, 100_000):
            what = "YAML parse" if row["includes_yaml_parse"] else "validation"
            add(
                f"{row['rules']:,} rules live, natively (incl. {what}) (s)",
                row["live_s"],
                "<= 1 s" if row["rules"] == 10_000 else "-",
                row["live_s"] <= 1.0 if row["rules"] == 10_000 else None,
            )
    dec = res.get("decode")
    if dec:  # natively, per CPU-second of the decoding thread
        add(
            "ring-buffer events into audit records, natively (events/s)",
            dec["records_per_s"],
            ">= 200,000",
            dec["records_per_s"] >= 200_000,
        )
        add("... into written JSON lines, nothing folded (events/s)", dec["json_lines_per_s"], "-", None)
        add("... one denial repeated, folded (events/s)", dec["storm_folded_per_s"], "-", None)
    storm = res.get("storm")
    if storm:
        add("storm counted exactly", storm["counted_exactly"], "true", storm["counted_exactly"])
        if "trail_accounts_for_all" in storm:
            add(
                "storm: records + audit_loss == kernel counter",
                storm["trail_accounts_for_all"],
                "true",
                storm["trail_accounts_for_all"],
            )
        # identical repeats fold in the kernel: a storm of one denial never fills the ring
        add("storm: events dropped at the ring buffer", storm["ring_drops"], "0", storm["ring_drops"] == 0)
        add("storm daemon CPU (cores, avg)", storm["daemon_cores_avg"], "<= 1", storm["daemon_cores_avg"] <= 1)
        add("storm daemon peak RSS (MB)", storm["daemon_peak_rss_mb"], "<= 100", storm["daemon_peak_rss_mb"] <= 100)
    return out
