"""Results out: latest.json, latest.md (the table bench/README.md shows) and the plots."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_mb": mem_kb // 1024,
        "vm_guest": os.environ.get("VM_GUEST") == "1",
        "python": platform.python_version(),
        # The machine is shared: what else ran while these figures were taken.
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "commit": commit,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def summary(res: dict[str, Any]) -> str:
    """The machine and every figure against its target (what README.md shows)."""
    return "\n".join(_summary_lines(res)) + "\n"


def markdown(res: dict[str, Any]) -> str:
    lines = _summary_lines(res)
    lines += _detail_lines(res)
    return "\n".join(lines) + "\n"


def _summary_lines(res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    where = "QEMU TCG guest (no KVM)" if m["vm_guest"] else "native"
    lines = [
        f"Run {m['when']} ({res['mode']}, {res.get('duration_s', '?')} s), commit {m['commit']}: "
        f"kernel {m['kernel']}, {m['cpus']} x {m['cpu']}, {m['memory_mb']} MB, {where}, "
        f"load average at the end {' '.join(m.get('loadavg_at_end', ['?']))}.",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for t in res.get("targets", []):
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**NO**")
        lines.append(f"| {t['figure']} | {_fmt(t['value'])} | {t['target']} | {met} |")
    return lines


def _detail_lines(res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    m = res["machine"]
    kernel = res.get("kernel")
    if kernel:
        lines += [
            "",
            "open()+close() in a policed container, ratio on/off (ns per op on):",
            "",
            "| rules | depth | file | ratio | off ns | on ns | round ratios |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in kernel["open_close"]:
            lines.append(
                f"| {r['rules']} | {r['depth']} | {r['target']} | {r['ratio']:.3f} | {r['off_ns']:.0f} | "
                f"{r['on_ns']:.0f} | {r['round_ratio_min']:.3f}-{r['round_ratio_max']:.3f} |"
            )
        if kernel.get("open_first"):
            lines += [
                "",
                "First opens (the decision cache off: every open walks the path), ratio on/off:",
                "",
                "| rules | depth | file | ratio | off ns | on ns | round ratios |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in kernel["open_first"]:
                lines.append(
                    f"| {r['rules']} | {r['depth']} | {r['target']} | {r['ratio']:.3f} | {r['off_ns']:.0f} | "
                    f"{r['on_ns']:.0f} | {r['round_ratio_min']:.3f}-{r['round_ratio_max']:.3f} |"
                )
        lines += ["", "| operation | ratio | off ns | on ns |", "|---|---|---|---|"]
        h = kernel["host_open"]
        lines.append(
            f"| open+close {h['path']}, host process | {h['ratio']:.3f} | {h['off_ns']:.0f} | {h['on_ns']:.0f} |"
        )
        for name, r in kernel["container_ops"].items():
            lines.append(
                f"| {name} in container ({r['rules']} rules) | {r['ratio']:.3f} | {r['off_ns']:.0f} | "
                f"{r['on_ns']:.0f} |"
            )
        for name, r in kernel.get("floor", {}).items():
            lines.append(
                f"| floor: {name}, empty LSM program on file_open only | {r['ratio']:.3f} | "
                f"{r['off_ns']:.0f} | {r['on_ns']:.0f} |"
            )
        if kernel.get("postures"):
            lines += [
                "",
                "Postures: the same allowed operations under `posture: {exec: deny, fileRead: deny, "
                "fileWrite: deny}` vs postures all allow (same rules, incl. a deny rule no case touches; "
                "same run):",
                "",
                "| operation | ratio deny/allow | allow ns | deny ns |",
                "|---|---|---|---|",
            ]
            for name, r in kernel["postures"].items():
                lines.append(f"| {name} | {r['ratio']:.3f} | {r['off_ns']:.0f} | {r['on_ns']:.0f} |")
        lines += [
            "",
            "BPF run time per program run (kernel.bpf_stats_enabled):",
            "",
            "| case | program | runs | ns/run | ns per operation |",
            "|---|---|---|---|---|",
        ]
        for r in kernel["bpf_stats"]:
            per_op = f"{r['ns_per_op']:.0f}" if "ns_per_op" in r else "-"
            lines.append(f"| {r['case']} | {r['program']} | {r['runs']} | {r['ns_per_run']:.0f} | {per_op} |")
    if kernel and kernel.get("apply"):
        lines += [
            "",
            "Compile + apply (seconds per phase; kernel memory while loaded):",
            "",
            "| rules | path_rules entries | live s (VM) | phases | slab kB | memlock bytes |",
            "|---|---|---|---|---|---|",
        ]
        for r in kernel["apply"]:
            phases = ", ".join(f"{k} {v:.2f}" for k, v in r["phases_s"].items())
            lines.append(
                f"| {r['rules']} | {r['path_entries']} | {r['live_s']:.2f} | {phases} | "
                f"{r['kernel_slab_kb']} | {r['path_rules_memlock_after']} |"
            )
    if res.get("compile"):
        nat = res.get("native", {}).get("compile", m)
        lines += [
            "",
            f"Policy text to rules live in a kernel map, natively ({nat['cpus']} x {nat['cpu']}, "
            f"kernel {nat['kernel']}), seconds per phase:",
            "",
            "| rules | map entries | live s | phases |",
            "|---|---|---|---|",
        ]
        for r in res["compile"]:
            phases = ", ".join(f"{k} {v:.3f}" for k, v in r["phases_s"].items())
            lines.append(f"| {r['rules']} | {r['entries']} | {r['live_s']:.3f} | {phases} |")
    if res.get("storm"):
        storm = {k: v for k, v in res["storm"].items() if not isinstance(v, dict | list | type(None))}
        lines += [
            "",
            "Denial storm (real daemon):",
            "",
            "| " + " | ".join(storm) + " |",
            "|" + "---|" * len(storm),
            "| " + " | ".join(_fmt(v) for v in storm.values()) + " |",
        ]
        prof = res["storm"].get("daemon_profile")
        if prof:
            lines += [
                "",
                f"Daemon during the storm, py-spy ({prof['samples']} samples), % of samples on top of the stack:",
                "",
            ]
            lines += [f"- {pct}% {fn}" for fn, pct in prof["self_pct"]]
    if res.get("churn"):
        c = res["churn"]
        lines += [
            "",
            f"Container churn ({c['cycles']} start/stop cycles; daemon RSS kB {c['daemon_rss_kb']}):",
            "",
            "| docker run -> enforced s | docker run returned s | StartedAt -> enforced s |",
            "|---|---|---|",
        ]
        for s in c["samples"]:
            lines.append(f"| {s['run_to_enforced_s']} | {s['docker_run_returned_s']} | {s['started_to_enforced_s']} |")
    return lines


def plots(res: dict[str, Any], out: Path) -> list[Path]:
    kernel = res.get("kernel")
    if not kernel:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = kernel["open_close"]
    depths = sorted({r["depth"] for r in rows})
    counts = sorted({r["rules"] for r in rows})
    kernel_name = res["machine"]["kernel"]

    def curves(name: str, groups: list[tuple[str, Any]], x: str, xlabel: str, title: str, log_x: bool) -> Path:
        """One line per (group, target): open+close ratio against `x`."""
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, keep in groups:
            for target, style in (("none", "-o"), ("far", ":^"), ("allowed", "--s")):
                pts = sorted((r[x], r["ratio"]) for r in rows if keep(r) and r["target"] == target)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{label}, {target}")
        if log_x:
            ax.set_xscale("log")
        ax.axhline(1.10, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("open+close time, on / off")
        ax.set_title(f"{title} ({kernel_name})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    by_depth = [(f"depth {d}", lambda r, d=d: r["depth"] == d) for d in depths]
    by_rules = [(f"{n} rules", lambda r, n=n: r["rules"] == n) for n in counts]
    return [
        curves("rules.png", by_depth, "rules", "rules in the container's policy", "Rule count", True),
        curves("depth.png", by_rules, "depth", "path depth (components)", "Path depth", False),
    ]


def write_results(res: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    j, md = out / "latest.json", out / "latest.md"
    j.write_text(json.dumps(res, indent=1) + "\n")
    md.write_text(markdown(res))
    return [j, md, *plots(res, out)]


README = Path(__file__).with_name("README.md")
PROJECT_README = Path(__file__).resolve().parents[1] / "README.md"
_BEGIN, _END = "<!-- bench:latest -->", "<!-- /bench:latest -->"


def _between_markers(readme: Path, md: str) -> None:
    text = readme.read_text()
    head, found, rest = text.partition(_BEGIN)
    if not found:
        raise ValueError(f"{readme} has no {_BEGIN} marker")
    _, _, tail = rest.partition(_END)
    readme.write_text(f"{head}{_BEGIN}\n{md}{_END}{tail}")


def update_readmes(res: dict[str, Any], readme: Path = README, project_readme: Path = PROJECT_README) -> list[Path]:
    """The whole latest run into bench/README.md, its summary (machine and targets) into
    the project README."""
    _between_markers(readme, markdown(res))
    _between_markers(project_readme, summary(res))
    return [readme, project_readme]
