"""Signature verification in worker processes (the `workers` setting).

`workers = 1` verifies in the calling process. `workers = W > 1` uses W cores: W-1 pool processes and the caller.
The caller also decodes, applies state and hashes the commitment while the pool verifies, so it takes a smaller
share of the signatures: with the other work costing about a quarter of the signature work (docs/PERFORMANCE.md),
an even finish needs the caller's share to be `1.25/W - 0.25` of the signatures.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from chain.validation import SignatureItems, verify_in_process

# Non-signature work of block validation relative to signature work (measured; see docs/PERFORMANCE.md).
_OTHER_WORK_RATIO = 0.25


class ProcessVerifier:
    """A ParallelVerifier over a pool of `workers - 1` spawned processes plus the caller."""

    def __init__(self, workers: int) -> None:
        if workers < 2:
            raise ValueError("a process verifier needs at least 2 workers (1 means in-process)")
        self.workers = workers
        # spawn, not fork: the node forks from an asyncio process with threads, which fork does not survive well.
        self._pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context("spawn"))
        self.warm_up()

    def warm_up(self) -> None:
        """Start every pool process now, so the first block does not pay for interpreter start-up."""
        futures = [self._pool.submit(verify_in_process, []) for _ in range(self.workers - 1)]
        for future in futures:
            future.result()

    def submit(self, items: SignatureItems) -> Callable[[], list[bool]]:
        """Send most of `items` to the pool; the caller's share is verified when it waits."""
        share = max(0.0, 1.25 / self.workers - _OTHER_WORK_RATIO)
        local_count = int(len(items) * share)
        remote = list(items[local_count:])
        pool_processes = self.workers - 1
        chunk = -(-len(remote) // pool_processes) if remote else 0
        futures: list[Future[list[bool]]] = [
            self._pool.submit(verify_in_process, remote[start : start + chunk])
            for start in range(0, len(remote), chunk or 1)
        ]
        local_items = items[:local_count]

        def wait() -> list[bool]:
            results = verify_in_process(local_items)
            for future in futures:
                results.extend(future.result())
            return results

        return wait

    def close(self) -> None:
        """Stop the pool processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
