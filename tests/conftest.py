"""Shared fixtures: deterministic keys (key generation and signing dominate test time, so keys are cached) and a
headless browser for the tests of HTML pages (marked `browser`)."""

from __future__ import annotations

import functools
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from chain.crypto import PrivateKey

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the tests marked `long` (minutes each; `make test-long`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `long` (the long variants of scenarios and swarms) keep `make test` under its 15-minute bound:
    they run only with --long."""
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --long (make test-long)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@functools.cache
def key(index: int) -> PrivateKey:
    """The test key number `index` (deterministic)."""
    return PrivateKey.from_seed(b"chainlab-test-key" + index.to_bytes(4, "big"))


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_LOAD_TIMEOUT_S = 20


def _missing_browser() -> str:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package (pip install -e '.[test]')")
    return ", ".join(missing)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by selenium. Skipped when Chromium, chromedriver or selenium is missing,
    unless CHAINLAB_REQUIRE_BROWSER=1 (CI sets it after installing them), where a missing browser is a failure
    rather than a silently skipped test."""
    missing = _missing_browser()
    if missing:
        reason = f"no headless browser to drive: missing {missing} (apt-get install chromium chromium-driver)"
        if os.environ.get("CHAINLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CHAINLAB_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chainlab-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=1500,1000", f"--user-data-dir={profile}"):
            options.add_argument(argument)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
            yield driver
        finally:
            driver.quit()
