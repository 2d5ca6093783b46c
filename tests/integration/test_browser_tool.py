"""The browser the report tests look through (tests/tools/browser.py) sees what it must: a page that
logs an error, throws, and asks for a file over the network is caught on every count, and a clean
page passes. Without this, a report test that sees nothing would pass on any page."""
from pathlib import Path

import pytest

from conftest import assert_report_in_browser, browser


@pytest.fixture
def chromium(chromium):
    """The worker's browser; these tests, unlike the reports' own, need it and skip saying why."""
    if chromium is None:
        pytest.skip(browser.missing())
    return chromium

CLEAN = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>復旧レポート</title>
<style>@media print { .screen { display: none } }</style></head>
<body><h1 id="status">合格</h1><p>RTO <span id="rto" data-seconds="12.5">12.5 秒</span></p>
<svg width="120" height="10" role="img"><rect width="60" height="10" fill="#2b7"/></svg></body></html>"""

# Only loopback, on a port nothing serves: the request is seen whether or not it could be answered.
DIRTY = """<!doctype html><html><head><meta charset="utf-8"><title>dirty</title>
<link rel="stylesheet" href="http://127.0.0.1:9/style.css"></head>
<body><p id="rto">1 s</p><p id="rto">2 s</p><script>console.error("broken"); undefined_function();</script></body></html>"""


def test_a_clean_page_passes_and_shows_its_figures(chromium, tmp_path):
    page_file = tmp_path / "clean.html"
    page_file.write_text(CLEAN, encoding="utf-8")
    page = assert_report_in_browser(chromium, page_file, [("status", "合格"), ("rto", "12.5")])
    assert page.attributes["rto"] == {"seconds": "12.5"} and page.lang == "ja" and page.title == "復旧レポート"
    assert (tmp_path / "clean.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "clean.png").stat().st_mode & 0o777 == 0o600


def test_console_errors_scripts_and_requests_are_all_caught(chromium, tmp_path):
    page_file = tmp_path / "dirty.html"
    page_file.write_text(DIRTY, encoding="utf-8")
    page = chromium.open(page_file)
    assert "http://127.0.0.1:9/style.css" in page.requests
    assert any("broken" in message for message in page.console_errors), page.console_errors
    assert any("Uncaught" in message or "undefined_function" in message for message in page.console_errors)
    assert page.scripts == 1 and page.duplicate_ids == ["rto"]
    with pytest.raises(AssertionError):
        assert_report_in_browser(chromium, page_file, ["rto"])
    # A figure the page does not have fails too.
    page_file.write_text(CLEAN, encoding="utf-8")
    with pytest.raises(AssertionError):
        assert_report_in_browser(chromium, page_file, ["rpo"])
    assert Path(page_file).exists()
