"""The explorer's routes (node/rpc.py, node/explorer/): served read-only from the package with a strict content
security policy, nothing else under /explorer/, and never the admin token. The pages themselves are driven in a
real browser by tests/node/test_explorer_browser.py."""

from __future__ import annotations

from node.rpc import RpcServer
from tests.node import ADMIN_TOKEN, Client, FakeNode, run_scenario


def test_the_explorer_is_served_with_a_strict_policy_and_nothing_else_is() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        page = await client.get("/explorer/")
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy and "'unsafe-inline'" not in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in page.body
        for name in ("common.js", "explorer.js"):
            script = await client.get(f"/explorer/{name}")
            assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
            assert ".innerHTML" not in script.body and "Authorization" not in script.body
            assert "/v1/admin" not in script.body, name
            assert f'<script src="/explorer/{name}"></script>' in page.body
        assert (await client.get("/explorer/explorer.css")).status == 200
        for path in ("/explorer/../node.key", "/explorer/config.toml", "/explorer/%2e%2e%2fconfig.toml"):
            missing = await client.get(path)
            assert missing.status == 404 and missing.body["error"]["code"] == "not-found", path
        assert (await client.get("/favicon.ico")).status == 204  # no icon, and no 404 in the browser's console
        root = await client.request("GET", "/explorer", headers={})
        assert root.status == 200  # aiohttp followed the redirect to /explorer/
        assert ADMIN_TOKEN not in page.body + script.body

    run_scenario(scenario)


def test_the_reorg_log_route() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get("/v1/reorgs")
        assert reply.status == 200 and reply.body == {"reorgs": node.reorgs()}

    run_scenario(scenario)


def test_the_account_page_reads_the_history_within_the_routes_limits() -> None:
    import re

    from chain import crypto
    from node.rpc import MAX_ACCOUNT_TXS_PER_PAGE, encode_cursor
    from tests.conftest import key

    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        script = (await client.get("/explorer/explorer.js")).body
        per_page = int(re.search(r"const ACCOUNT_TXS_PER_PAGE = (\d+);", script).group(1))  # type: ignore[union-attr]
        assert 1 <= per_page <= MAX_ACCOUNT_TXS_PER_PAGE and "/txs?" in script
        # The older page's route takes exactly the cursors the node gives.
        route = re.search(r"\[/\^#\\/account\\/\(\[\^/\]\+\)\\/older\\/\((.+?)\)\$/", script)
        assert route is not None and re.fullmatch(route.group(1), encode_cursor(2**64 - 1, 7))
        address = crypto.address_to_text(key(0).address)
        page = await client.get(f"/v1/accounts/{address}/txs?limit={per_page}")
        assert page.status == 200 and len(page.body["txs"]) == 2 and page.body["next"] is None

    run_scenario(scenario)
