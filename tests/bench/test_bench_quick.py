"""The benchmark harness keeps working: `python -m bench --quick` end to end (in the VM).

Not a performance gate (the quick sizes are too small and the VM too noisy for that): it
checks that every item produced its figures and that the storm was counted exactly,
which is a correctness property at any speed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]


def test_quick_bench_produces_every_figure_and_counts_the_storm_exactly(tmp_path: Path) -> None:
    # its own session, so that a bench stuck past the timeout is killed with everything it
    # started (a dockerd holding the pipes open would keep communicate() waiting forever),
    # and the progress lines say where it stuck
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _out, err = bench.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(bench.pid, signal.SIGKILL)
        try:
            _out, err = bench.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            err = "(its output pipes stayed open)"
        pytest.fail(f"bench --quick did not finish in 480 s; its last lines:\n{err[-3000:]}")
    assert bench.returncode == 0, err[-3000:]
    res = json.loads((tmp_path / "latest.json").read_text())
    for name in ("latest.md", "rules.png", "depth.png"):
        assert (tmp_path / name).stat().st_size > 0, name

    kernel = res["kernel"]
    ratios = [r["ratio"] for r in kernel["open_close"]]
    ratios += [kernel["host_open"]["ratio"]] + [r["ratio"] for r in kernel["container_ops"].values()]
    assert ratios and all(math.isfinite(r) and r > 0.5 for r in ratios), ratios
    programs = {r["program"] for r in kernel["bpf_stats"]}
    assert {"enforcer_file_open", "enforcer_bprm_check", "enforcer_connect4", "enforcer_device"} <= programs
    assert all(r["path_entries"] > 0 and r["phases_s"]["write_maps"] >= 0 for r in kernel["apply"])

    storm = res["storm"]
    assert storm["denied_by_loop"] == storm["opens"]
    assert storm["counted_exactly"], storm
    assert storm["trail_accounts_for_all"], storm  # records + audit_loss == counter == opens
    assert storm["ring_drops"] == 0, storm  # one denial repeated folds in the kernel

    churn = res["churn"]
    assert len(churn["samples"]) == churn["cycles"] + 1
    assert all(s["run_to_enforced_s"] > 0 for s in churn["samples"])
    assert {t["figure"] for t in res["targets"]} >= {"open+close by a host process", "storm counted exactly"}
