"""The playground page of `pricing serve`, driven in headless Chromium with Selenium.

Skipped, with the reason, where Selenium or Chromium and its driver are not
installed (Debian: `apt-get install chromium chromium-driver`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the `serve` extra is not installed")
pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="Selenium is not installed")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from pricing_dsl import _serve  # noqa: E402

from .conftest import RULESETS  # noqa: E402


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "headless Chromium not found (need `chromium` and `chromedriver` on PATH; "
            "Debian: apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1300,900",
    ):
        options.add_argument(arg)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page() -> Iterator[str]:
    service = _serve.Service([str(RULESETS)])
    server, thread, port = _serve.run_in_thread(_serve.create_app(service))
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


def _type(driver: Any, text: str) -> None:
    box = driver.find_element(By.ID, "source")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def test_playground_checks_rates_and_draws(browser: Any, page: str) -> None:
    wait = WebDriverWait(browser, 15)
    browser.get(page)
    wait.until(lambda d: d.find_element(By.ID, "source").get_attribute("value"))
    Select(browser.find_element(By.ID, "file")).select_by_visible_text("(new contract)")

    # A mistake on line 2: MAU is priced per user.
    _type(
        browser,
        'contract trial "Trial" extends pro {\nmau included 20_000 overage 0.10 per minute\n}\n',
    )
    item = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#diagnostics li[data-code="E204"]')
    )[0]
    assert item.get_attribute("data-line") == "2"
    assert "per user" in item.text
    marked = browser.find_element(By.CSS_SELECTOR, '#gutter div[data-line="2"]')
    assert marked.get_attribute("class") == "err"
    assert (
        browser.find_element(By.CSS_SELECTOR, '#gutter div[data-line="1"]').get_attribute("class")
        == ""
    )

    # Fixed: no problems left.
    _type(
        browser,
        'contract trial "Trial" extends pro {\nmau included 20_000 overage 0.10 per user\n}\n',
    )
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#diagnostics li.ok"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#gutter div.err")

    browser.find_element(By.ID, "m-mau").send_keys("26250")
    Select(browser.find_element(By.ID, "vary")).select_by_visible_text("mau")
    high = browser.find_element(By.ID, "high")
    high.clear()
    high.send_keys("50000")
    browser.find_element(By.ID, "rate").click()
    total = wait.until(lambda d: d.find_elements(By.ID, "total"))[0]
    # pro's base 529.00, and (26250 - 20000) users x 0.10 = 625.00.
    assert total.text == "USD 1154.00"
    overage = browser.find_element(By.CSS_SELECTOR, 'tr[data-code="mau_overage"]')
    assert "6250 × 0.10 per user" in overage.text
    assert "20000 users included" in overage.text
    curve = browser.find_element(By.ID, "curve-line")
    # mau from 0 to 50000 in tenths: 11 points, flat until 20000 users, then rising.
    points = [tuple(map(float, p.split(","))) for p in curve.get_attribute("points").split()]
    assert len(points) == 11
    ys = [y for _, y in points]
    assert ys[0] == ys[4] and ys[5] < ys[4] and ys[10] < ys[5]  # SVG y grows downwards
