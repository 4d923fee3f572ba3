"""node/syncprogress.py: one progress line every interval while syncing (height, target, rate, ETA), a summary
when caught up, nothing for a short catch-up, and the status view."""

from __future__ import annotations

from node.syncprogress import SyncProgress


def test_a_long_sync_gives_periodic_lines_with_rate_and_eta_then_a_summary() -> None:
    progress = SyncProgress(interval_s=5.0, window_s=10.0)
    lines = []
    for step in range(0, 121):  # 12 s at 100 blocks/s, observed every 0.1 s
        now = 100.0 + step * 0.1
        line = progress.observe(now, height=step * 10, target_height=2000, syncing=True)
        if line is not None:
            lines.append(line)
    assert len(lines) == 2  # at 5 s and 10 s, not one per block
    assert lines[0].startswith("syncing: height 500 of 2000 (25.0%), 100 blocks/s, ETA 15 s")
    view = progress.view(height=1200, target_height=2000).to_json()
    assert view == {"height": 1200, "target_height": 2000, "blocks_per_s": 100.0, "eta_s": 8.0}
    progress.observe(112.0, height=2000, target_height=2000, syncing=True)
    done = progress.observe(115.0, height=2000, target_height=2000, syncing=False)  # noticed 3 s later
    assert done is not None and done.startswith("synced: height 2000, 2000 blocks in 12.0 s")
    assert progress.observe(114.0, height=2000, target_height=2000, syncing=False) is None


def test_a_short_catch_up_says_nothing_and_an_unknown_rate_has_no_eta() -> None:
    progress = SyncProgress()
    assert progress.observe(0.0, height=10, target_height=12, syncing=True) is None
    assert progress.view(height=10, target_height=12).eta_s is None  # one sample: no rate yet
    assert progress.observe(0.5, height=12, target_height=12, syncing=True) is None
    assert progress.observe(0.6, height=12, target_height=12, syncing=False) is None
