"""The dashboard's model (testnet/dashview.py): the union block tree's columns, fork points, heads and final blocks;
the partition groups; the load figures; the last check; the tail of an appended file."""

from __future__ import annotations

from typing import Any

from testnet.dashview import (
    BlockCache,
    EventLog,
    LoadFigures,
    NodeView,
    check_view,
    lines_complete,
    partition_view,
    tree_layout,
)


def chain(cache: BlockCache, prefix: str, parent: str, start: int, count: int) -> list[str]:
    """Add `count` blocks named prefix+height on top of `parent` from height `start`; their hashes, lowest first."""
    hashes = []
    for height in range(start, start + count):
        block_hash = f"{prefix}{height}"
        assert cache.add_json({"hash": block_hash, "height": height, "parent": parent}) is not None
        hashes.append(block_hash)
        parent = block_hash
    return hashes


def forked() -> tuple[BlockCache, list[str], list[str]]:
    """Genesis g0, a shared chain to height 5, then branch a (to 9) and branch b (to 7)."""
    cache = BlockCache()
    cache.add_json({"hash": "g0", "height": 0, "parent": "00"})
    shared = chain(cache, "s", "g0", 1, 5)
    return cache, shared + chain(cache, "a", shared[-1], 6, 4), shared + chain(cache, "b", shared[-1], 6, 2)


def test_the_highest_chain_is_the_first_column_and_a_branch_joins_at_its_fork_point() -> None:
    cache, a, b = forked()
    views = [NodeView(name="node0", head=a[-1], height=9, final_height=4),
             NodeView(name="node1", head=a[-1], height=9, final_height=5),
             NodeView(name="node2", head=b[-1], height=7, final_height=3)]
    tree = tree_layout(cache, views)
    assert (tree["bottom"], tree["top"]) == (0, 9)
    main, side = tree["columns"]
    assert [x["hash"] for x in main["blocks"]] == list(reversed(["g0", *a]))
    assert [x["hash"] for x in side["blocks"]] == ["b7", "b6"] and side["fork_from"] == "s5"
    assert main["fork_from"] is None and side["status"] == "active"
    assert tree["heads"] == {"a9": ["node0", "node1"], "b7": ["node2"]}
    assert tree["finals"] == {"s4": ["node0"], "s5": ["node1"], "s3": ["node2"]}


def test_a_tip_that_no_node_is_on_gets_its_own_column_with_its_status() -> None:
    cache, a, _ = forked()
    views = [NodeView(name="node0", head=a[-1], height=9, final_height=0,
                      tips=[{"hash": "a9", "height": 9, "status": "active"},
                            {"hash": "b7", "height": 7, "status": "valid-fork"},
                            {"hash": "zz", "height": 8, "status": "orphan"}])]  # never fetched: not drawn
    tree = tree_layout(cache, views)
    assert [c["status"] for c in tree["columns"]] == ["active", "valid-fork"]
    assert tree["heads"] == {"a9": ["node0"]} and tree["finals"] == {"g0": ["node0"]}


def test_only_the_top_heights_are_drawn_and_extra_branches_are_counted() -> None:
    cache, _, _ = forked()
    tips = [{"hash": "b7", "height": 7, "status": "valid-fork"}]
    for n in range(3):  # three more one-block branches off s5
        chain(cache, f"c{n}-", "s5", 6, 1)
        tips.append({"hash": f"c{n}-6", "height": 6, "status": "valid-fork"})
    views = [NodeView(name="node0", head="a9", height=9, final_height=2, tips=tips)]
    tree = tree_layout(cache, views, heights=5, max_branches=3)
    assert (tree["bottom"], tree["top"]) == (5, 9)
    assert [len(c["blocks"]) for c in tree["columns"]] == [5, 2, 1]  # a9..a6 and s5; b7 b6; one c branch
    assert tree["hidden_branches"] == 2
    assert tree["finals"] == {}  # node0's final block (height 2) is below the picture


def test_a_chain_not_fetched_down_to_the_bottom_is_drawn_to_its_lowest_fetched_block() -> None:
    cache = BlockCache()
    chain(cache, "x", "unknown", 10, 3)
    tree = tree_layout(cache, [NodeView(name="n", head="x12", height=12, final_height=10)])
    assert [b["height"] for b in tree["columns"][0]["blocks"]] == [12, 11, 10]
    assert tree_layout(BlockCache(), [NodeView(name="n", head="x", height=1, final_height=0)])["columns"] == []


def test_the_cache_refuses_what_is_not_a_block_and_keeps_the_highest_within_its_limit() -> None:
    cache = BlockCache(limit=4)
    for bad in ({}, {"hash": "h", "height": -1, "parent": "p"}, {"hash": "h", "height": True, "parent": "p"},
                {"hash": 3, "height": 1, "parent": "p"}, {"hash": "h", "height": "1", "parent": "p"}):
        assert cache.add_json(bad) is None
    assert len(cache) == 0
    hashes = chain(cache, "h", "g", 1, 6)
    assert len(cache) == 4 and hashes[0] not in cache and hashes[-1] in cache
    assert cache.ancestor("h6", 4) == "h4" and cache.ancestor("h6", 1) is None
    assert cache.reaches("h6", 3) and not cache.reaches("h6", 1)


def test_partition_groups_follow_who_can_reach_whom() -> None:
    names = ["node0", "node1", "node2", "node3"]
    whole = partition_view(names, {}, {})
    assert whole["groups"] == [names] and not whole["partitioned"]
    split = partition_view(names, {"node0": ["node2", "node3"], "node1": ["node2", "node3"],
                                   "node2": ["node0", "node1"], "node3": ["node0", "node1"]},
                           {"node3": {"delay_ms": 50.0}, "node1": {}})
    assert split["groups"] == [["node0", "node1"], ["node2", "node3"]] and split["partitioned"]
    assert split["netem"] == {"node3": {"delay_ms": 50.0}}
    one_sided = partition_view(names, {"node3": ["node0", "node1", "node2"]}, {})  # a block is a block both ways
    assert one_sided["groups"] == [["node0", "node1", "node2"], ["node3"]]
    bridge = partition_view(names[:3], {"node0": ["node2"], "node2": ["node0"]}, {})  # node1 still joins both
    assert bridge["groups"] == [["node0", "node1", "node2"]] and not bridge["partitioned"]
    assert bridge["blocked"] == {"node0": ["node2"], "node2": ["node0"]}


def op(index: int, kind: str, name: str, key: str, time_ms: int) -> dict[str, Any]:
    return {"index": index, "type": kind, "op": name, "key": key, "time_ns": time_ms * 1_000_000,
            "process": "p", "node": "node0"}


def test_load_figures_count_each_outcome_and_measure_latency_to_inclusion_and_finality() -> None:
    load = LoadFigures()
    records = [op(0, "invoke", "transfer", "t1", 0), op(1, "ok", "transfer", "t1", 5),
               op(2, "invoke", "transfer", "t2", 10), op(3, "fail", "transfer", "t2", 12),
               op(4, "invoke", "transfer", "t3", 20), op(5, "info", "transfer", "t3", 1020),
               op(6, "ok", "included", "t1", 400), op(7, "ok", "final", "t1", 2000),
               {"type": "ok", "op": "transfer"}, {"type": "ok", "op": "transfer", "key": "t9", "time_ns": "soon"},
               # the rebroadcaster resubmitting t1, refused because a block holds it: not a send, not a rejection
               {**op(8, "invoke", "transfer", "t1", 900), "process": "rebroadcast-node3"},
               {**op(9, "fail", "transfer", "t1", 901), "process": "rebroadcast-node3", "error": "nonce-too-low"}]
    for record in records:
        load.feed(record)
    figures = load.to_json(now_ns=3_000_000_000)
    assert {k: figures[k] for k in ("submitted", "accepted", "rejected", "unknown", "included", "final")} == \
        {"submitted": 3, "accepted": 1, "rejected": 1, "unknown": 1, "included": 1, "final": 1}
    assert figures["latency"]["included"] == {"p50_ms": 400.0, "p95_ms": 400.0, "samples": 1}
    assert figures["latency"]["final"]["p50_ms"] == 2000.0
    assert figures["accepted_tps"] == 0.1  # one acceptance within the last 10 s
    assert load.to_json(now_ns=60_000_000_000)["accepted_tps"] == 0.0


def test_the_check_events_and_file_tail_views() -> None:
    assert check_view(None) is None
    view = check_view({"ok": False, "time": "t", "checks": [{"name": "convergence", "ok": False, "detail": "split"},
                                                            "junk"]})
    assert view == {"ok": False, "time": "t", "checks": [{"name": "convergence", "ok": False, "detail": "split"}]}
    log = EventLog(keep=2)
    log.feed([{"action": "up", "time": "1"}, {"action": "partition", "detail": {"groups": [[0], [1]]}},
              {"action": "heal", "network": {"running": []}}])
    assert [e["action"] for e in log.to_json()] == ["heal", "partition"] and "network" not in log.to_json()[0]
    assert lines_complete(b'{"a":1}\n{"b"') == ([b'{"a":1}'], b'{"b"')
    assert lines_complete(b"partial") == ([], b"partial")


def test_a_branch_the_nodes_left_and_forgot_stays_drawn_as_abandoned() -> None:
    cache, a, b = forked()
    views = [NodeView(name=f"node{i}", head=a[-1], height=9, final_height=7) for i in range(3)]  # all moved to a
    assert [c["status"] for c in tree_layout(cache, views)["columns"]] == ["active"]
    tree = tree_layout(cache, views, remembered=[b[-1], a[-3], "never-fetched"])
    assert [(c["status"], c["fork_from"]) for c in tree["columns"]] == [("active", None), ("abandoned", "s5")]
    assert [x["hash"] for x in tree["columns"][1]["blocks"]] == ["b7", "b6"]  # a7, on the active chain, adds nothing
