"""The dashboard of a real 4-node testnet in headless Chromium, driven as a user drives it (docs/DASHBOARD.md):
`testnet web` prints its URL; the page shows the four nodes and their heads in the block tree; `testnet partition`
shows as two groups, a nemesis event and two heads on two branches (both halves mine), `heal` as one group, one
head, and the branch left behind still drawn; a `testnet check` shows its verdict. A page that
fails leaves a screenshot in the test's temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testnet import procs
from tests.node.test_explorer_browser import screenshot_on_failure, wait

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def chainlab(*args: str, timeout_s: float = 60, codes: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)
    assert done.returncode in codes, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


def partition_state(browser: Any) -> tuple[str, list[str]]:
    from selenium.webdriver.common.by import By

    view = browser.find_element(By.CSS_SELECTOR, "#partition > div")
    groups = [g.get_attribute("data-members") for g in view.find_elements(By.CSS_SELECTOR, ".group")]
    return view.get_attribute("data-partitioned"), groups


def tree_columns(browser: Any) -> list[str]:
    """The statuses of the union tree's columns (first: the highest chain)."""
    from selenium.webdriver.common.by import By

    return (browser.find_element(By.ID, "union-tree").get_attribute("data-columns") or "").split(",")


def first_event(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    cells = browser.find_elements(By.CSS_SELECTOR, "#event-table tbody tr:first-child td")
    return cells[1].text if len(cells) > 1 else ""


def test_the_dashboard_of_a_4_node_testnet_shows_a_partition_and_its_end(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    directory = tmp_path / "net"
    web: subprocess.Popen[str] | None = None
    try:
        chainlab("testnet", "up", "--nodes", "4", "--dir", str(directory), "--seed", "dashboard",
                 "--hashrate-hps", "2000", "--load-accounts", "2", "--genesis-param", "block_interval_s=1",
                 # threshold 0.2: both halves keep mining through the partition, so the chain forks
                 "--genesis-param", "partition_threshold=0.2")
        web = subprocess.Popen([sys.executable, "-m", "cli.main", "testnet", "web", "--dir", str(directory)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                               start_new_session=True)
        assert web.stdout is not None
        url = web.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url

        with screenshot_on_failure(browser, tmp_path, "dashboard-nodes"):
            browser.get(url)
            wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#node-table tbody tr")) == 4, "4 nodes")
            heads = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#union-tree text.heads"),
                         "the nodes' heads in the block tree")
            named = {name for label in heads for name in (label.get_attribute("data-heads") or "").split(",")}
            assert named <= {"node0", "node1", "node2", "node3"} and named
            assert partition_state(browser) == ("false", ["node0,node1,node2,node3"])

        chainlab("testnet", "partition", "--dir", str(directory), "node0,node1", "node2,node3")
        with screenshot_on_failure(browser, tmp_path, "dashboard-partition"):
            wait(browser, lambda b: partition_state(b) == ("true", ["node0,node1", "node2,node3"]),
                 "two partition groups")
            wait(browser, lambda b: first_event(b) == "partition", "the partition in the nemesis events")
            assert "partitioned into 2 groups" in browser.find_element(By.ID, "partition-summary").text
            wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#union-tree text.heads")) >= 2
                 and len(tree_columns(b)) >= 2, "the two halves' heads on two branches of the tree")

        chainlab("testnet", "heal", "--dir", str(directory))
        with screenshot_on_failure(browser, tmp_path, "dashboard-heal"):
            wait(browser, lambda b: partition_state(b) == ("false", ["node0,node1,node2,node3"]), "one group")
            wait(browser, lambda b: first_event(b) == "heal", "the heal in the nemesis events")
            wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#union-tree text.heads")) == 1,
                 "every node on one head again")
            columns = wait(browser, tree_columns, "the tree")
            assert columns[0] == "active" and len(columns) >= 2, columns  # the branch left behind is still drawn

        chainlab("testnet", "check", "--dir", str(directory), "--only", "no-safety-alarm")
        with screenshot_on_failure(browser, tmp_path, "dashboard-check"):
            verdict = wait(browser, lambda b: b.find_elements(By.ID, "check-verdict"), "the check's verdict")
            assert verdict[0].text == "all checks passed"
    finally:
        if web is not None:
            procs.kill_group(web.pid, timeout_s=5.0)
        chainlab("testnet", "down", "--dir", str(directory), codes=(0, 1, 2))
