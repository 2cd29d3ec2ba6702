"""The built leaderboard page in a real headless Chromium (Debian's chromium + chromium-driver).

CI: ``apt-get install -y chromium chromium-driver`` and ``pip install selenium``. Selenium is given
the Debian chromedriver explicitly, so it never tries to download a driver.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from leaderboard import build

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _rec(
    method, seed, status="ok", *, dataset="tetrominoes", variant="default", split="test", metrics=None, by_length=None
):
    r = {
        "schema": 1,
        "run_id": f"{method}-{dataset}-{split}-{seed}",
        "status": status,
        "error": None if status == "ok" else "RuntimeError: diverged",
        "method": method,
        "dataset": dataset,
        "variant": variant,
        "split": split,
        "seed": seed,
        "profile": "quick",
        "metrics": {k: {"value": v} for k, v in (metrics or {}).items()},
        "train_seconds": 5.0 + seed,
        "created": "2026-11-22T16:00:00Z",
    }
    if by_length:
        r["by_length"] = by_length
    return r


def _records() -> list[dict]:
    # FG-ARI on tetrominoes/test is deliberately not in method order: ConnComp 0.6, IODINE 0.3,
    # Slot Attention 0.9, MONet only failed runs (empty cell, must stay last in both directions).
    recs = []
    for s in range(2):
        recs.append(_rec("conncomp", s, metrics={"fg_ari": 0.6, "ari": -0.05 - 0.1 * s, "mse": 0.001}))
        recs.append(_rec("iodine", s, metrics={"fg_ari": 0.3, "ari": 0.5, "mse": 2e-05}))
        recs.append(_rec("slot_attention", s, metrics={"fg_ari": 0.9, "ari": -0.2, "mse": 0.0003}))
        recs.append(_rec("monet", s, "failed"))
        recs.append(
            _rec(
                "provide",
                s,
                dataset="bouncing_balls",
                variant="binary",
                metrics={"fg_ari": 0.8},
                by_length={"fg_ari": {"10": 0.9, "20": 0.8}},
            )
        )
        recs.append(_rec("conncomp", s, dataset="scattered_mnist", variant="max6", metrics={"mota": 0.5}))
    return recs


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("lb_browser")
    paths = build(_records(), out)
    return paths["index.html"]


@pytest.fixture(scope="module")
def driver():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install selenium")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ocbench-chromium-")
    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        opts.add_argument(arg)
    opts.binary_location = str(CHROMIUM)
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _column(table, index: int) -> list[str]:
    return [
        tr.find_elements("css selector", "td")[index].get_attribute("data-value")
        for tr in table.find_elements("css selector", "tbody tr[data-source]")
    ]


def _labels(table) -> list[str]:
    return [
        tr.find_elements("css selector", "td")[0].get_attribute("data-value")
        for tr in table.find_elements("css selector", "tbody tr[data-source]")
    ]


def test_page_loads_with_every_dataset_section(driver, page):
    driver.get(page.as_uri())
    assert driver.title.startswith("ocbench leaderboard")
    ids = [s.get_attribute("id") for s in driver.find_elements("css selector", "section.dataset")]
    # run datasets plus the datasets that only have paper rows (multi_dsprites)
    assert ids == ["ds-tetrominoes", "ds-multi_dsprites", "ds-bouncing_balls", "ds-scattered_mnist"]
    for sid in ids:
        sec = driver.find_element("id", sid)
        assert sec.is_displayed() and sec.find_elements("css selector", "table.lb tbody tr")
        link = driver.find_element("css selector", f'nav.toc a[href="#{sid}"]')
        assert link.is_displayed()
    # embedded figures decoded by the browser
    widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert widths and min(widths) > 100
    # paper rows are visually distinct: own background colour and a visible badge
    paper = driver.find_element("css selector", "section#ds-tetrominoes tr.paper")
    ocb = driver.find_element("css selector", 'section#ds-tetrominoes tr[data-source="ocbench"]')
    assert paper.value_of_css_property("background-color") != ocb.value_of_css_property("background-color")
    assert paper.find_element("css selector", ".badge").text.strip().lower() == "paper"
    assert "P320" in paper.text


def test_clicking_a_header_sorts_numerically_with_empty_cells_last(driver, page):
    driver.get(page.as_uri())
    table = driver.find_element(
        "css selector", 'table[data-dataset="tetrominoes"][data-split="test"][data-kind="main"]'
    )
    headers = table.find_elements("css selector", "thead th")
    col = next(i for i, th in enumerate(headers) if th.get_attribute("data-metric") == "fg_ari")
    before = _labels(table)
    assert before == ["ConnComp", "IODINE", "MONet", "Slot Attention"]

    headers[col].click()
    assert headers[col].get_attribute("aria-sort") == "ascending"
    assert _labels(table) == ["IODINE", "ConnComp", "Slot Attention", "MONet"]
    vals = _column(table, col)
    assert [float(v) for v in vals[:3]] == sorted(float(v) for v in vals[:3]) and vals[3] == ""

    headers[col].click()
    assert headers[col].get_attribute("aria-sort") == "descending"
    assert _labels(table) == ["Slot Attention", "ConnComp", "IODINE", "MONet"]

    # the method column sorts as text; another column resets the previous header's state
    headers[0].click()
    assert _labels(table) == ["ConnComp", "IODINE", "MONet", "Slot Attention"]
    assert headers[col].get_attribute("aria-sort") is None


def test_numeric_sort_is_not_text_sort(driver, page):
    # orders where comparing the strings would be wrong: negative ARI means ("-0.1" vs "-0.2") and
    # an MSE in scientific notation ("2e-05" sorts after "0.001" as text)
    driver.get(page.as_uri())
    table = driver.find_element(
        "css selector", 'table[data-dataset="tetrominoes"][data-split="test"][data-kind="main"]'
    )
    headers = table.find_elements("css selector", "thead th")
    index = {th.get_attribute("data-metric"): i for i, th in enumerate(headers)}
    headers[index["ari"]].click()
    assert _labels(table) == ["Slot Attention", "ConnComp", "IODINE", "MONet"]  # -0.2 < -0.1 < 0.5
    headers[index["mse"]].click()
    assert _labels(table) == ["IODINE", "Slot Attention", "ConnComp", "MONet"]  # 2e-05 < 3e-04 < 1e-03
    runs = next(i for i, th in enumerate(headers) if th.text.startswith("runs"))
    headers[runs].click()  # 0 ok (MONet) < 2 ok
    assert _labels(table)[0] == "MONet"


@pytest.fixture(scope="module")
def tiered_page(tmp_path_factory):
    """A smoke page with the three kinds of ocbench rows: a reference run (paper profile, GPU), ConnComp,
    and two learned methods trained for seconds (pipeline check)."""

    def tier_rec(method, profile, fg, fit=None, device="cpu"):
        r = _rec(method, 0, metrics={"fg_ari": fg, "ari": 0.5})
        r.update(profile=profile, device=device, fit_info=fit or {}, run_id=f"{method}-{profile}")
        return r

    fit = {"steps": 2, "total_steps": 2}
    recs = [
        tier_rec("slot_attention", "paper", 0.979, {"steps": 83480, "total_steps": 500000}, "cuda"),
        tier_rec("conncomp", "smoke", 0.973),
        tier_rec("slot_attention", "smoke", 0.05, fit),
        tier_rec("iodine", "smoke", 0.2, fit),
    ]
    return build(recs, tmp_path_factory.mktemp("lb_tiers"), profile="smoke", paper=False)["index.html"]


def test_tiers_are_marked_and_sorting_never_mixes_them(driver, tiered_page):
    driver.get(tiered_page.as_uri())
    table = driver.find_element(
        "css selector", 'table[data-dataset="tetrominoes"][data-split="test"][data-kind="main"]'
    )
    heads = [h.text for h in table.find_elements("css selector", "tr.tier-head .tier-title")]
    assert heads == ["ocbench reference runs", "Your runs (smoke profile)", "Pipeline check (smoke profile)"]
    assert all(h.is_displayed() for h in table.find_elements("css selector", "tr.tier-head"))
    ref = table.find_element("css selector", 'tbody[data-tier="reference"] tr[data-source]')
    assert "cuda · 83,480 / 500,000 steps · seed 0" in ref.text
    pipe = table.find_element("css selector", 'tbody[data-tier="pipeline"] tr[data-source]')
    assert pipe.value_of_css_property("color") != ref.value_of_css_property("color")  # greyed out

    def tiers():
        return [
            (
                b.get_attribute("data-tier"),
                [
                    tr.find_element("css selector", "td").get_attribute("data-value")
                    for tr in b.find_elements("css selector", "tr[data-source]")
                ],
            )
            for b in table.find_elements("css selector", "tbody")
        ]

    assert tiers() == [
        ("reference", ["Slot Attention"]),
        ("yours", ["ConnComp"]),
        ("pipeline", ["IODINE", "Slot Attention"]),
    ]
    col = next(
        th for th in table.find_elements("css selector", "thead th") if th.get_attribute("data-metric") == "fg_ari"
    )
    col.click()
    col.click()  # descending: Slot Attention (paper, 97.9) would lead the whole table if tiers were mixed
    assert tiers() == [
        ("reference", ["Slot Attention"]),
        ("yours", ["ConnComp"]),
        ("pipeline", ["IODINE", "Slot Attention"]),
    ]
    col.click()  # ascending within the pipeline check: Slot Attention (5.0) before IODINE (20.0)
    assert tiers()[2] == ("pipeline", ["Slot Attention", "IODINE"])
    assert [tr.get_attribute("class") for tr in table.find_elements("css selector", "tbody tr")][0] == "tier-head"
