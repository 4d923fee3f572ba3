"""pytest-benchmark suite (`make bench`): each benchmark times the hot path and records, in `extra_info`, the
measurement against its limit taken in the same run (the ratio the issue targets)."""
