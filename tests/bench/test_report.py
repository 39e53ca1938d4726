"""The benchmark report: the project README gets the machine and every target, the bench
README the whole run, each between its markers and nothing else touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import update_readmes

RESULTS = {
    "machine": {
        "when": "2026-11-25T00:00:00+00:00",
        "kernel": "6.1.0-test",
        "cpu": "Test CPU",
        "cpus": 2,
        "memory_mb": 4000,
        "vm_guest": True,
        "loadavg_at_end": ["0.1", "0.2", "0.3"],
        "commit": "abc1234",
    },
    "mode": "full",
    "duration_s": 1.0,
    "targets": [
        {"figure": "open+close by a host process", "value": 1.01, "target": "<= 1.02", "met": True},
        {
            "figure": "10,000 rules live, natively (incl. YAML parse) (s)",
            "value": 1.5,
            "target": "<= 1 s",
            "met": False,
        },
    ],
}


def readme(tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    p.write_text("# Title\nbefore\n<!-- bench:latest -->\nold table\n<!-- /bench:latest -->\nafter\n")
    return p


def test_both_readmes_get_the_latest_run_between_their_markers(tmp_path: Path) -> None:
    bench_md, project_md = readme(tmp_path, "bench.md"), readme(tmp_path, "project.md")
    update_readmes(RESULTS, bench_md, project_md)
    for p in (bench_md, project_md):
        text = p.read_text()
        assert text.startswith("# Title\nbefore\n<!-- bench:latest -->\nRun 2026-11-25")
        assert text.endswith("<!-- /bench:latest -->\nafter\n") and "old table" not in text
        assert "kernel 6.1.0-test, 2 x Test CPU" in text and "QEMU TCG guest" in text
        assert "| open+close by a host process | 1.010 | <= 1.02 | yes |" in text
        assert "| 10,000 rules live, natively (incl. YAML parse) (s) | 1.500 | <= 1 s | **NO** |" in text


def test_a_readme_without_markers_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    bench_md, project_md = readme(tmp_path, "bench.md"), tmp_path / "project.md"
    project_md.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- bench:latest --> marker"):
        update_readmes(RESULTS, bench_md, project_md)


def test_program_time_is_judged_as_a_share_of_the_operation_it_runs_in() -> None:
    from bench.targets import judge

    kernel = {
        "open_close": [
            {"rules": 1000, "depth": 2, "target": "far", "ratio": 1.2, "on_ns": 20_000.0},
            {"rules": 1000, "depth": 32, "target": "none", "ratio": 1.3, "on_ns": 40_000.0},
        ],
        "open_first": [
            {"rules": 1000, "depth": 32, "target": "far", "ratio": 1.4, "on_ns": 50_000.0},
        ],
        "host_open": {"ratio": 1.1, "on_ns": 10_000.0},
        "container_ops": {"exec": {"ratio": 1.0, "on_ns": 1_000_000.0}},
        "bpf_stats": [
            {"case": "open far depth=2 rules=1000", "program": "enforcer_file_open", "ns_per_op": 900.0},
            {"case": "open far depth=32 rules=1000", "program": "enforcer_file_open", "ns_per_op": 950.0},
            {"case": "open none depth=2 rules=1000", "program": "enforcer_file_open", "ns_per_op": 1_000.0},
            {"case": "open none depth=32 rules=1000", "program": "enforcer_file_open", "ns_per_op": 4_000.0},
            {"case": "open far depth=32 rules=1000 first", "program": "enforcer_file_open", "ns_per_op": 6_000.0},
            {"case": "host_open", "program": "enforcer_file_open", "ns_per_op": 50.0},
            {"case": "exec", "program": "enforcer_bprm_check", "ns_per_op": 10_000.0},
            {"case": "exec", "program": "enforcer_file_open", "ns_per_op": 20_000.0},
        ],
    }
    got = {t["figure"]: (t["value"], t["met"]) for t in judge({"kernel": kernel})}
    assert got["program time / open+close, 1,000 rules, far, depth 2, repeat"] == (0.045, True)
    assert got["program time / open+close, 1,000 rules, none, depth 32, repeat"] == (0.1, False)
    assert got["program time / open+close, 1,000 rules, far, depth 32, first open"] == (0.12, False)
    assert got["program time, repeat open, far: depth 32 / depth 2"] == (1.056, True)
    assert got["program time, repeat open, none: depth 32 / depth 2"] == (4.0, False)
    assert got["program time / open+close by a host process"] == (0.005, True)
    assert got["program time / exec in a container"] == (0.03, True)  # every program the exec runs
