"""The HTML report in a real browser: headless Debian Chromium opens it from a file:// URL and the DOM has the
lanes, a visible highlighted operation and the nemesis events.

Skipped when Chromium, chromedriver or selenium is missing, unless CHAINLAB_REQUIRE_BROWSER=1 (CI sets it after
installing them), where a missing browser is a failure rather than a silently skipped test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testnet.report import render_history_report
from tests.testnet.test_report import EVENTS, HISTORY

pytestmark = pytest.mark.browser  # the `browser` fixture is in tests/conftest.py


def test_the_report_shows_the_lanes_the_highlighted_operation_and_the_nemesis_events(browser: Any,
                                                                                      tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    report = tmp_path / "report.html"
    report.write_text(render_history_report(
        title="history.jsonl", operations=HISTORY, highlighted={2: "stale read"}, events=EVENTS,
        summary=[("linearizable", "violated", "client-2 read r 0")]), encoding="utf-8")
    browser.get(report.as_uri())

    lanes = browser.find_elements(By.CSS_SELECTOR, "svg .lane")
    assert sorted(lane.get_attribute("data-process") for lane in lanes) == sorted({op.process for op in HISTORY})
    [violation] = browser.find_elements(By.CSS_SELECTOR, "rect.op.violation")
    assert violation.get_attribute("data-op-id") == "2"
    browser.find_element(By.CSS_SELECTOR, "a.finding").click()  # scrolls the bar into view
    assert violation.is_displayed() and violation.size["width"] > 0 and violation.size["height"] > 0
    fill = browser.execute_script("return getComputedStyle(arguments[0]).fill", violation)
    ordinary = browser.find_element(By.CSS_SELECTOR, "rect.op.read:not(.violation)")
    assert fill != browser.execute_script("return getComputedStyle(arguments[0]).fill", ordinary)
    events = browser.find_elements(By.CSS_SELECTOR, "svg .nemesis.event")
    assert [e.get_attribute("data-action") for e in events] == ["partition", "pause", "heal", "kill"]
    assert all(e.find_element(By.TAG_NAME, "line").size["height"] > 0 for e in events)
    [band] = browser.find_elements(By.CSS_SELECTOR, "svg .nemesis.band")
    assert band.size["width"] > 0
    on_top = browser.execute_script(  # the middle of the band in client-1's empty lane: the band, not a lane's fill
        "var band = arguments[0].getBoundingClientRect();"
        "var lane = document.querySelector('.lane-bg').getBoundingClientRect();"
        "return document.elementFromPoint(band.left + band.width / 2, lane.top + lane.height / 2);", band)
    assert on_top == band
    assert browser.execute_script("return document.querySelectorAll('script:not(:empty)').length") == 1
