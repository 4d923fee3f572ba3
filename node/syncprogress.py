"""What a syncing node says about its progress (pure: time comes in as an argument).

While peers are ahead, a node connects blocks by the hundred a second; one log line per block then drowns
everything else and tells nobody how long it will take. `SyncProgress` turns the stream of heights into one line
every `interval_s` (height, target, rate, ETA), a last line when the node has caught up, and the `sync` document
of `/v1/status`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SYNC_LOG_S = 5.0  # one progress line this often while syncing
SUMMARY_BLOCKS = 20  # a catch-up of at least this many blocks ends with a "synced" line
RATE_WINDOW_S = 10.0  # the rate is measured over this much recent time


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncView:
    """Where a sync stands."""

    height: int
    target_height: int
    blocks_per_s: float
    eta_s: float | None  # None while the rate is not known yet (or zero)

    def to_json(self) -> dict[str, object]:
        """`{"height", "target_height", "blocks_per_s", "eta_s"}` (rounded)."""
        return {"height": self.height, "target_height": self.target_height,
                "blocks_per_s": round(self.blocks_per_s, 1),
                "eta_s": round(self.eta_s, 1) if self.eta_s is not None else None}


class SyncProgress:
    """Progress lines and the status view of one node's sync."""

    def __init__(self, *, interval_s: float = SYNC_LOG_S, window_s: float = RATE_WINDOW_S) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()  # (time, height) over the last window_s
        self._started: tuple[float, int] | None = None  # when and where this sync began
        self._logged_at: float | None = None
        self._advanced_at = 0.0  # when the height last rose
        self.syncing = False

    def observe(self, now: float, *, height: int, target_height: int, syncing: bool) -> str | None:
        """Take the node's state at `now`; returns a line to log, if one is due."""
        if not syncing:
            if not self.syncing:
                return None
            self.syncing = False
            started = self._started
            self._samples.clear()
            self._started = None
            if started is None:
                return None
            # Up to the last block connected: the node may notice the end of the sync a little later.
            blocks, seconds = height - started[1], max(self._advanced_at - started[0], 1e-9)
            if self._logged_at is None and blocks < SUMMARY_BLOCKS:  # a short catch-up: its block lines said it
                return None
            return f"synced: height {height}, {blocks} blocks in {seconds:.1f} s ({blocks / seconds:.0f} blocks/s)"
        if not self.syncing:
            self.syncing = True
            self._started = (now, height)
            self._logged_at = None
            self._advanced_at = now
        if self._samples and height > self._samples[-1][1]:
            self._advanced_at = now
        self._samples.append((now, height))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        started_at = self._started[0] if self._started is not None else now
        last = self._logged_at if self._logged_at is not None else started_at
        if now - last < self.interval_s:
            return None
        self._logged_at = now
        view = self.view(height=height, target_height=target_height)
        eta = f"ETA {view.eta_s:.0f} s" if view.eta_s is not None else "ETA unknown"
        share = 100.0 * height / target_height if target_height > 0 else 100.0
        return (f"syncing: height {height} of {target_height} ({share:.1f}%), {view.blocks_per_s:.0f} blocks/s, "
                f"{eta}")

    def view(self, *, height: int, target_height: int) -> SyncView:
        """The rate over the recent window and the time left at that rate."""
        rate = 0.0
        if len(self._samples) >= 2:
            (t0, h0), (t1, h1) = self._samples[0], self._samples[-1]
            if t1 > t0:
                rate = max(0.0, (h1 - h0) / (t1 - t0))
        left = max(0, target_height - height)
        eta = left / rate if rate > 0 else (0.0 if left == 0 else None)
        return SyncView(height=height, target_height=max(height, target_height), blocks_per_s=rate, eta_s=eta)
