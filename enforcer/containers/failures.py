"""Containers whose enforcement failed (map full, ENOMEM, EPERM, ...): why, how many
attempts, and when to retry. Retried with exponential backoff, shown by `status` and the
metrics until an attempt succeeds or the container goes. Not locked: the daemon changes it
under its own lock."""

from __future__ import annotations

from dataclasses import dataclass

from enforcer.containers.model import ContainerInfo

RETRY_BACKOFF = (0.5, 30.0)  # seconds: first retry of a failed enforcement, and the cap


@dataclass
class Failure:
    info: ContainerInfo
    reason: str
    attempts: int
    retry_at: float  # on the daemon's clock (monotonic)


class Failures(dict[str, Failure]):
    """container id -> its failure."""

    def record(self, info: ContainerInfo, err: BaseException, now: float) -> tuple[Failure, float]:
        """One more failed attempt; returns the failure and the seconds until its retry."""
        earlier = self.get(info.id)
        attempts = earlier.attempts + 1 if earlier else 1
        first, cap = RETRY_BACKOFF
        delay = min(first * 2 ** (attempts - 1), cap)
        failure = self[info.id] = Failure(info, str(err) or type(err).__name__, attempts, now + delay)
        return failure, delay

    def due(self, now: float) -> list[ContainerInfo]:
        return [f.info for f in self.values() if f.retry_at <= now]

    def reasons(self) -> dict[str, str]:
        return {cid: f.reason for cid, f in self.items()}
