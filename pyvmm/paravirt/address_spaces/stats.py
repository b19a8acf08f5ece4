"""Per-space counters, and the bounded record of them that outlives destroyed spaces."""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from dataclasses import dataclass, field

from pyvmm.paravirt.address_spaces.policy import RETAINED_STATS


class FaultKind(enum.Enum):
    """How a forwarded page fault was served (the per-space counters)."""

    DEMAND_ZERO = "demand_zero"
    COW_COPY = "cow_copy"  # copied to a fresh frame
    COW_REUSE = "cow_reuse"  # the last sharer: made writable in place
    PAGER = "pager"  # filled by a host-side pager callback
    SPURIOUS = "spurious"  # already resolved (another vCPU, or a stale TLB entry)


@dataclass
class SpaceStats:
    """Per-space metrics, kept for a while after the space is destroyed (:class:`StatsHistory`)."""

    handle: int
    pages_mapped: int = 0  # present user pages now
    faults: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in FaultKind})
    refused: int = 0
    maps: int = 0  # pages mapped by AS_MAP (and batch MAP ops)
    unmaps: int = 0  # pages removed by AS_UNMAP
    switches: int = 0
    destroyed: bool = False

    @property
    def faults_served(self) -> int:
        return sum(self.faults.values())

    def format(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in self.faults.items())
        state = " (destroyed)" if self.destroyed else ""
        return (
            f"as {self.handle}{state}: pages_mapped={self.pages_mapped} maps={self.maps} unmaps={self.unmaps} "
            f"switches={self.switches} {faults} refused={self.refused}"
        )


class StatsHistory:
    """The stats of every live space and of the last *retained* destroyed ones.

    A guest that creates and destroys spaces in a loop must not grow host memory: older
    destroyed spaces are dropped (counted in :attr:`dropped`), so this holds at most
    ``MAX_SPACES + retained`` records.
    """

    def __init__(self, retained: int = RETAINED_STATS) -> None:
        self._live: dict[int, SpaceStats] = {}
        self._gone: deque[SpaceStats] = deque(maxlen=retained)
        self.created = 0
        self.dropped = 0

    def add(self, stats: SpaceStats) -> None:
        self._live[stats.handle] = stats
        self.created += 1

    def destroyed(self, handle: int) -> None:
        stats = self._live.pop(handle)
        stats.destroyed = True
        stats.pages_mapped = 0
        if len(self._gone) == self._gone.maxlen:
            self.dropped += 1
        self._gone.append(stats)

    def all(self) -> dict[int, SpaceStats]:
        """Handle -> stats: the retained destroyed spaces, then the live ones, by handle."""
        merged = {s.handle: s for s in self._gone} | self._live
        return dict(sorted(merged.items()))

    def export_state(self) -> dict:
        return {
            "created": self.created,
            "dropped": self.dropped,
            "stats": [dataclasses.asdict(s) for s in self.all().values()],
        }

    @classmethod
    def from_state(cls, state: dict) -> StatsHistory:
        """Raises ``TypeError``/``KeyError``/``ValueError`` for malformed data."""
        history = cls()
        records = [SpaceStats(**d) for d in state["stats"]]
        for s in records:
            if not isinstance(s.handle, int) or not isinstance(s.faults, dict):
                raise ValueError("malformed address-space stats")
            if s.destroyed:
                history._gone.append(s)
            else:
                history._live[s.handle] = s
        history.created = int(state.get("created", len(records)))
        history.dropped = int(state.get("dropped", 0))
        return history

    def live(self, handle: int) -> SpaceStats:
        return self._live[handle]
