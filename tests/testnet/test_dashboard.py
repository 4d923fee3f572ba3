"""The dashboard server (testnet/dashboard.py) on a testnet directory whose nodes are small fake RPC servers: the
state it serves (never an admin token), a node that cannot be reached shown with why, the files it tails read as
they grow, a state built once per refresh however many pages ask, the page's files under a strict policy, and the
`testnet web` command's errors. The page itself is driven in Chromium by test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from testnet.dashboard import DashboardServer, TailReader
from testnet.state import CHECK_FILE, EVENTS_FILE, HISTORY_FILE, Faults, NodeRecord, Testnet, save_testnet

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-admin-token"


def fake_node(blocks: list[dict[str, Any]], calls: list[str]) -> web.Application:
    """A node whose best chain is `blocks` (lowest first); it counts the requests it answers."""
    by_hash = {b["hash"]: b for b in blocks}

    async def status(request: web.Request) -> web.Response:
        calls.append("status")
        head = blocks[-1]
        return web.json_response({"head": head["hash"], "height": head["height"], "final_height": 1, "peers": 1,
                                  "mempool_size": 0, "engine": {"mining": True, "reason": "ok",
                                                                "reachable_share": 1.0}})

    async def tips(request: web.Request) -> web.Response:
        calls.append("tips")
        return web.json_response({"tips": [{"hash": blocks[-1]["hash"], "height": blocks[-1]["height"],
                                            "status": "active", "branch_length": 0, "work": "1"}]})

    async def range_(request: web.Request) -> web.Response:
        calls.append("blocks")
        low, limit = int(request.query["from"]), int(request.query["limit"])
        return web.json_response({"blocks": [b for b in blocks if low <= b["height"] < low + limit]})

    async def one(request: web.Request) -> web.Response:
        calls.append("block")
        return web.json_response(by_hash[request.match_info["ref"]])

    app = web.Application()
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/tips", tips)
    app.router.add_get("/v1/blocks", range_)
    app.router.add_get("/v1/blocks/{ref}", one)
    return app


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def make_testnet(directory: Path, node_url: str) -> Testnet:
    nodes = [NodeRecord(index=0, name="node0", datadir=str(directory / "n0"), log="", admin_token=TOKEN,
                        rpc_url=node_url, state="running"),
             NodeRecord(index=1, name="node1", datadir=str(directory / "n1"), log="", admin_token=TOKEN,
                        rpc_url=f"http://127.0.0.1:{closed_port()}", state="running",
                        faults=Faults(blocked=["node0", "<b>node2</b>"])),
             NodeRecord(index=2, name="<b>node2</b>", datadir=str(directory / "n2"), log="", admin_token=TOKEN,
                        state="stopped")]
    testnet = Testnet(dir=str(directory), seed="s", chain_id="c", genesis="g", consensus="pow", topology="full",
                      edges=[[0, 1], [0, 2], [1, 2]], nodes=nodes, load_accounts=2, block_interval_s=1.0,
                      finality_threshold=2)
    save_testnet(testnet)
    return testnet


def run_with_dashboard(tmp_path: Path, body: Callable[[DashboardServer, aiohttp.ClientSession, list[str]],
                                                      Awaitable[None]]) -> None:
    blocks = [{"hash": f"h{i}", "height": i, "parent": f"h{i - 1}" if i else "00"} for i in range(5)]
    calls: list[str] = []

    async def main() -> None:
        runner = web.AppRunner(fake_node(blocks, calls))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        make_testnet(tmp_path, f"http://127.0.0.1:{port}")
        server = DashboardServer(tmp_path, refresh_s=0.2)
        try:
            await server.start()
            async with aiohttp.ClientSession() as session:
                await body(server, session, calls)
        finally:
            await server.stop()
            await runner.cleanup()

    asyncio.run(main())


async def state_of(server: DashboardServer, session: aiohttp.ClientSession) -> tuple[dict[str, Any], str]:
    async with session.get(server.url + "api/state") as reply:
        assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
        text = await reply.text()
    return json.loads(text), text


def test_the_state_shows_every_node_the_tree_and_the_partition_and_no_token(tmp_path: Path) -> None:
    async def body(server: DashboardServer, session: aiohttp.ClientSession, calls: list[str]) -> None:
        state, text = await state_of(server, session)
        assert TOKEN not in text
        node0, node1, node2 = state["nodes"]
        assert (node0["height"], node0["head"], node0["engine"], node0["error"]) == (4, "h4", "on 1.00", None)
        assert node0["explorer"].endswith("/explorer/")
        assert node1["error"].startswith("cannot reach http://127.0.0.1:") and "height" not in node1
        assert node2["name"] == "<b>node2</b>" and node2["state"] == "stopped" and node2["error"] is None
        assert [b["hash"] for b in state["tree"]["columns"][0]["blocks"]] == ["h4", "h3", "h2", "h1", "h0"]
        assert state["tree"]["heads"] == {"h4": ["node0"]} and state["tree"]["finals"] == {"h1": ["node0"]}
        assert state["partition"]["groups"] == [["node0", "<b>node2</b>"], ["node1"]]
        assert state["load"] is None and state["check"] is None and state["events"] == []
        assert calls.count("blocks") == 1  # the head's blocks in one range request

    run_with_dashboard(tmp_path, body)


def test_the_files_are_tailed_as_they_grow_and_a_state_is_shared_within_a_refresh(tmp_path: Path) -> None:
    async def body(server: DashboardServer, session: aiohttp.ClientSession, calls: list[str]) -> None:
        first = await asyncio.gather(*(state_of(server, session) for _ in range(5)))
        assert server.source.builds == 1 and calls.count("status") == 1
        assert all(text == first[0][1] for _, text in first)
        with open(tmp_path / EVENTS_FILE, "a") as out:
            out.write(json.dumps({"time": "t1", "action": "partition", "nodes": ["node1"],
                                  "detail": {"groups": [[0], [1]]}}) + "\n")
            out.write('{"time": "t2", "action": "he')  # being written
        with open(tmp_path / HISTORY_FILE, "a") as out:
            for record in ({"type": "invoke", "op": "transfer", "key": "k", "time_ns": 1},
                           {"type": "ok", "op": "transfer", "key": "k", "time_ns": 2}):
                out.write(json.dumps(record) + "\n")
            out.write("not json\n")
        (tmp_path / CHECK_FILE).write_text(json.dumps({"ok": True, "time": "t", "checks": [
            {"name": "convergence", "ok": True, "detail": "4 nodes share block"}]}))
        await asyncio.sleep(0.25)
        state, _ = await state_of(server, session)
        assert [e["action"] for e in state["events"]] == ["partition"]
        assert (state["load"]["submitted"], state["load"]["accepted"]) == (1, 1)
        assert state["check"]["ok"] and state["check"]["checks"][0]["name"] == "convergence"
        with open(tmp_path / EVENTS_FILE, "a") as out:
            out.write('al", "nodes": []}\n')
        await asyncio.sleep(0.25)
        state, _ = await state_of(server, session)
        assert [e["action"] for e in state["events"]] == ["heal", "partition"]
        assert calls.count("blocks") == 1  # the head did not move: no block fetched again

    run_with_dashboard(tmp_path, body)


def test_the_page_is_served_under_a_strict_policy_and_nothing_else_is(tmp_path: Path) -> None:
    async def body(server: DashboardServer, session: aiohttp.ClientSession, calls: list[str]) -> None:
        async with session.get(server.url) as page:
            html = await page.text()
            policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy and "<script>" not in html
        for name in ("common.js", "dashboard.js"):
            assert f'<script src="/{name}"></script>' in html
            async with session.get(server.url + name) as script:
                body_text = await script.text()
                assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
                assert ".innerHTML" not in body_text and "/v1/admin" not in body_text
        for path in ("testnet.json", "../testnet.json", "%2e%2e%2ftestnet.json", "api/other"):
            async with session.get(server.url + path) as missing:
                assert missing.status == 404, path
        async with session.post(server.url + "api/state") as post:
            assert post.status == 405

    run_with_dashboard(tmp_path, body)


def test_the_tail_reader_starts_over_on_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    reader = TailReader(path)
    assert reader.read_lines() == []
    path.write_text("one\ntwo\nthr")
    assert reader.read_lines() == [b"one", b"two"]
    path.write_text("x\n")
    assert reader.read_lines() == [b"x"]


def test_testnet_web_refuses_a_directory_that_is_not_a_testnet(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", "testnet", "web", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "not a testnet directory" in done.stderr


def test_a_node_that_went_down_keeps_its_last_head_in_the_tree(tmp_path: Path) -> None:
    from testnet.state import load_testnet

    async def body(server: DashboardServer, session: aiohttp.ClientSession, calls: list[str]) -> None:
        await state_of(server, session)
        testnet = load_testnet(tmp_path)
        testnet.nodes[0].state = "stopped"
        save_testnet(testnet)
        await asyncio.sleep(0.25)
        state, _ = await state_of(server, session)
        assert "height" not in state["nodes"][0] and state["nodes"][0]["state"] == "stopped"
        assert state["tree"]["heads"] == {"h4": ["node0"]}  # where it was, not an 'abandoned' chain
        assert [c["status"] for c in state["tree"]["columns"]] == ["active"]

    run_with_dashboard(tmp_path, body)
