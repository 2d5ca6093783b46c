"""What every report of lifeboat.db.report must be, checked from the files beside the evidence:
report.html with its key figures (found by their ids and data- attributes), in the run's language,
with nothing to run or fetch; recovery-report.md for the recoveries; both 0600."""
import re
import stat

from conftest import assert_report_in_browser

HEADINGS = {"en": ("## Recovery report: ", "### Incident summary", "### Recovery steps", "### Improvements"),
            "ja": ("## 復旧レポート: ", "### 障害概要", "### 復旧手順", "### 改善点")}


def figure(page, ident, attribute):
    """The data- attribute of the element with this id in report.html."""
    found = re.search(r'id="%s"[^>]*%s="([^"]*)"' % (re.escape(ident), re.escape(attribute)), page)
    assert found, f"no {ident} {attribute} in the page"
    return found.group(1)


def assert_reports(run_dir, lang, status, figures, recovery=True, chromium=None):
    """The run's reports; `figures` maps a figure's id to (data- attribute, expected value: a number
    compared as a number, else as text). With `chromium` (the conftest fixture), the page is also
    opened in the browser (assert_report_opens). Returns (page, recovery report or None)."""
    page = (run_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in page and '<meta charset="utf-8">' in page
    assert figure(page, "status", "data-status") == status
    for ident, (attribute, expected) in figures.items():
        shown = figure(page, ident, attribute)
        if isinstance(expected, (int, float)):
            assert float(shown) == float(expected), (ident, shown, expected)
        else:
            assert shown == expected, (ident, shown, expected)
    # Nothing to run or fetch: no script, no reference to load.
    assert "<script" not in page.lower() and not re.search(r"\b(src|href)=|url\(|@import", page)
    paths = [run_dir / "report.html"]
    text = None
    if recovery:
        text = (run_dir / "recovery-report.md").read_text()
        assert all(heading in text for heading in HEADINGS[lang]), text[:400]
        paths.append(run_dir / "recovery-report.md")
    else:
        assert not (run_dir / "recovery-report.md").exists()
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert_report_opens(chromium, run_dir, lang, status, figures)
    return page, text


def dataset_key(attribute):
    """data-backup-id -> backupId: how the DOM's dataset names a data- attribute."""
    first, *rest = attribute[len("data-"):].split("-")
    return first + "".join(part.capitalize() for part in rest)


def assert_report_opens(chromium, run_dir, lang, status, figures):
    """report.html as Chromium shows it (conftest.assert_report_in_browser: no console error, no
    request, no script, a screenshot kept beside it): the status and each figure's data- attribute
    are in the page the browser built, as in the file. Nothing is checked where there is no browser."""
    if chromium is None:
        return None
    page = assert_report_in_browser(chromium, run_dir / "report.html", ["status", *figures])
    assert page.lang == lang and page.attributes["status"].get("status") == status, (page.lang, page.attributes["status"])
    for ident, (attribute, expected) in figures.items():
        shown = page.attributes[ident].get(dataset_key(attribute))
        assert shown is not None, (ident, attribute, page.attributes[ident])
        if isinstance(expected, (int, float)):
            assert float(shown) == float(expected), (ident, shown, expected)
        else:
            assert shown == expected, (ident, shown, expected)
    return page
