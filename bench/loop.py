"""The static C loop (bench/loop.c): build it, and drive a long-lived `loop serve`.

One process per place (a container, the host) answers commands on stdin, so a figure is
the kernel's cost of the syscalls and not the cost of starting a process per sample.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("loop.c")
BUILD_DIR = Path(__file__).with_name("build")


def build_loop() -> Path:
    """gcc -static -O2; rebuilt when the source is newer than the binary."""
    out = BUILD_DIR / "loop"
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    BUILD_DIR.mkdir(exist_ok=True)
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-o", str(out), str(SOURCE)], check=True)
    return out


@dataclass(frozen=True)
class Sample:
    ns: int
    n: int
    errors: int

    @property
    def ns_per_op(self) -> float:
        return self.ns / self.n


class LoopError(RuntimeError):
    pass


class LoopClient:
    """`argv` starts `loop serve` somewhere (e.g. `docker exec -i C /bench/loop serve`)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    def run(self, *words: str | int) -> Sample:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline().split()
        if not line or line[0] != "ok":
            err = self._proc.stderr.read() if self._proc.poll() is not None and self._proc.stderr else ""
            raise LoopError(f"loop {' '.join(map(str, words))}: {' '.join(line) or 'no answer'} {err}")
        return Sample(int(line[1]), int(line[2]), int(line[3]))

    def calibrate(self, seconds: float, *words: str | int) -> int:
        """Iterations of `words + [N]` that take about `seconds`."""
        n = 16
        while True:
            s = self.run(*words, n)
            if s.ns >= 50_000_000 or n >= 1 << 26:
                return max(16, int(n * seconds * 1e9 / max(s.ns, 1)))
            n *= 4

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
                self._proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
