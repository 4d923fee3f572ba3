"""The explorer of a real mining node in headless Chromium: the recent blocks grow by themselves (the event
stream), a transaction's page turns `final`, search finds a block by height and an account by address, a memo
holding markup and a script is shown as text and runs nothing, an account's page lists its transaction, and the tips
page lists the active tip. A page that fails leaves a screenshot in the test's temporary directory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chain import crypto
from chain.tx import make_transfer
from testnet.cluster import Cluster

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MEMO = b'<script>window.pwned = 1</script><b id="bold">x</b> & "quotes"'
WAIT_S = 30


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster.create(tmp_path / "net", 1, seed="explorer", params={"block_interval_s": 0.5},
                             finality_threshold=2, load_accounts=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def screenshot_on_failure(browser: Any, directory: Path, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            browser.save_screenshot(str(directory / f"{name}.png"))
        raise


def wait(browser: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Pages redraw themselves on every block: an element found a moment ago may be gone; look again.
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message=f"waited {WAIT_S} s for {what}")


def test_the_explorer_of_a_mining_node(browser: Any, node: Cluster, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = node.nodes[0].rpc_url + "/explorer/"
    with screenshot_on_failure(browser, tmp_path, "home"):
        browser.get(base)
        rows = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#recent-blocks tr"), "recent blocks")
        first_top = int(rows[0].find_element(By.TAG_NAME, "td").text)
        wait(browser, lambda b: int(b.find_element(By.CSS_SELECTOR, "#recent-blocks tr td").text) > first_top,
             "a newer block to appear without a reload")
        assert browser.find_element(By.ID, "live").text == "live updates: connected"

    sender = node.load_keys[0]
    tx = make_transfer(sender, chain_id=node.genesis.chain_id, recipient=node.load_keys[1].address, amount=7, fee=2,
                       nonce=0, memo=MEMO)
    tx_hash = node.nodes[0].client().submit_tx(tx.encoded)
    with screenshot_on_failure(browser, tmp_path, "transaction"):
        browser.get(f"{base}#/tx/{tx_hash}")
        wait(browser, lambda b: b.find_element(By.ID, "tx-status").text == "final", "the transaction to turn final")
        memo = browser.find_element(By.ID, "tx-memo")
        assert memo.text == MEMO.decode()
        assert browser.execute_script("return window.pwned") is None
        assert browser.find_elements(By.ID, "bold") == []

    with screenshot_on_failure(browser, tmp_path, "search"):
        box = browser.find_element(By.ID, "search-input")
        box.clear()
        box.send_keys("1", Keys.ENTER)
        wait(browser, lambda b: b.find_element(By.TAG_NAME, "h1").text == "Block 1", "block 1 found by height")
        assert "proof of work: nonce" in browser.find_element(By.ID, "block-seal").text  # the engine reads its seal
        address = crypto.address_to_text(sender.address)
        box = browser.find_element(By.ID, "search-input")
        box.clear()
        box.send_keys(address, Keys.ENTER)
        wait(browser, lambda b: b.find_elements(By.ID, "account-address")
             and b.find_element(By.ID, "account-address").text == address, "the account found by address")
        # Its history (the address index): the transfer above, sent, final, linked to its page. Read in one script
        # call: the page redraws itself on every block.
        rows = wait(browser, lambda b: b.execute_script(
            "return Array.from(document.querySelectorAll('#account-txs tr')).map(row => ["
            "  row.querySelector('a[href^=\"#/tx/\"]').getAttribute('href'),"
            "  ...Array.from(row.cells).map(cell => cell.textContent)])"), "the account's transactions")
        assert [row[0] for row in rows] == [f"#/tx/{tx_hash}"]
        _, height, _, direction, counterparty, amount, fee, standing = rows[0]
        assert (direction, amount, fee, standing) == ("sent", "7", "2", "final")
        assert counterparty == crypto.address_to_text(node.load_keys[1].address)[:16] + "\u2026"
        assert int(height) >= 1 and browser.find_elements(By.CSS_SELECTOR, "a.older") == []
        box = browser.find_element(By.ID, "search-input")
        box.clear()
        box.send_keys("<img src=x onerror=alert(1)>", Keys.ENTER)
        message = wait(browser, lambda b: b.find_elements(By.ID, "search-result"), "the refusal")[0].text
        assert "is not a height" in message and "<img" in message  # shown as the characters typed
        seen = int(browser.find_element(By.CSS_SELECTOR, "#status-height b").text)
        wait(browser, lambda b: int(b.find_element(By.CSS_SELECTOR, "#status-height b").text) > seen,
             "a new block after the refusal")
        assert browser.find_elements(By.ID, "search-result")  # the new block did not redraw a page over it

    with screenshot_on_failure(browser, tmp_path, "reloads"):
        # Each page holds an event stream; one left open after the page is gone would take one of the six
        # connections a browser keeps per server, and the seventh load would hang.
        from selenium.webdriver.support.ui import WebDriverWait
        for _ in range(8):
            browser.get("about:blank")
            browser.get(base)
            WebDriverWait(browser, 5).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#recent-blocks tr"),
                                            message="a reload of the explorer to render within 5 s")

    with screenshot_on_failure(browser, tmp_path, "tips"):
        browser.get(f"{base}#/tips")
        wait(browser, lambda b: "active" in [e.text for e in b.find_elements(By.CSS_SELECTOR, "span.badge")],
             "the active tip")


def test_the_tree_of_a_node_that_saw_a_fork_shows_both_branches_and_the_reorg(browser: Any, tmp_path: Path) -> None:
    """Two miners that never heard of each other build two chains; once connected, the lighter one reorganises
    onto the heavier: its tree shows the branch it left beside the active chain, and its reorg log the switch."""
    from selenium.webdriver.common.by import By

    from testnet.local import wait_until

    cluster = Cluster.create(tmp_path / "fork", 2, seed="explorer-fork", finality_threshold=100,
                             params={"block_interval_s": 0.3, "partition_threshold": 0.0})
    try:
        for index in (0, 1):
            cluster.nodes[index].start(peers=[])  # alone: each mines a chain of its own
        wait_until(lambda: min(cluster.heights()) >= 4, 60, "both miners to build a few blocks")
        cluster.nodes[1].client().connect_peer(cluster.nodes[0].p2p_url)
        wait_until(lambda: any(n.client().status()["head"] == m.client().status()["head"]
                               for n in cluster.nodes for m in cluster.nodes if n is not m)
                   and any(n.client().reorgs() for n in cluster.nodes), 60,
                   "the two chains to merge with a reorg")
        switched = next(n for n in cluster.nodes if n.client().reorgs())
        with screenshot_on_failure(browser, tmp_path, "tree"):
            browser.get(switched.rpc_url + "/explorer/#/tree")
            wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#block-tree a.side"), "a side branch")
            assert browser.find_elements(By.CSS_SELECTOR, "#block-tree a.active")
            assert browser.find_elements(By.CSS_SELECTOR, "#block-tree line.edge.fork")  # joined to its fork point
            assert browser.find_elements(By.CSS_SELECTOR, "#block-tree line.final-line")
            # read inside the wait: the page redraws on every block, so a row found a moment ago may be gone
            depths = wait(browser, lambda b: [int(row.find_elements(By.TAG_NAME, "td")[1].text)
                                              for row in b.find_elements(By.CSS_SELECTOR, "#reorg-log tr")],
                          "the reorg log")
            assert depths[0] >= 1
    finally:
        cluster.stop()
