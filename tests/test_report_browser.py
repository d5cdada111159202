"""report.html in a real browser: headless Chromium opens it, takes a screenshot, reports problems.

How each point is checked:
* it renders, not blank: a screenshot of the untouched page (--screenshot) is read back; most of
  it must not be white, and some of it must be coloured, which only the pictures are;
* every image loaded: a test copy of the page gets a small script (and its CSP allows that one
  inline script) that, on the window's load event, counts document.images that are complete
  with a natural width > 0 and writes the counts into the DOM; --dump-dom returns the DOM;
* nothing is fetched and nothing fails: the same script records every error event and every
  Content-Security-Policy violation (the page's CSP allows data: images and inline styles only,
  so any attempt to load a file or a URL is a violation), and the untouched page is opened with
  --enable-logging=stderr --v=0, which prints every console message as a "CONSOLE" line: there
  must be none (the report has no script, so any message is the browser complaining);
* the checks can fail: a control copy with a missing image, a remote image and a console.error
  must trip each of them.
Without Chromium (Debian: apt-get install chromium) the test is skipped, the reason shown.
"""

import html
import json
import os
import re
import shutil
import subprocess
import warnings

import pytest

pytest.importorskip("numpy")
pytest.importorskip("matplotlib")

from helpers import NAMES, run_cli

from microgpt.pictures import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# running as root needs --no-sandbox; the rest keeps a browser on a machine without network quiet
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=5000",
         "--enable-logging=stderr", "--v=0"]  # every console message on stderr, as a "CONSOLE" line

PROBE = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  __problems.push("error: " + (e.message || (e.target && e.target.outerHTML || "").slice(0, 100)));
}, true);
document.addEventListener("securitypolicyviolation", function (e) {
  __problems.push("blocked by CSP: " + e.blockedURI + " (" + e.violatedDirective + ")");
});
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = document.createElement("pre");
  out.id = "probe";
  var cards = Array.prototype.slice.call(document.querySelectorAll(".card")).map(function (c) {
    var r = c.getBoundingClientRect(); return [Math.round(r.top), Math.round(r.width)]; });
  out.textContent = JSON.stringify({images: imgs.length, problems: __problems, cards: cards,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def browser():
    path = os.environ.get("MICROGPT_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if not path:
        reason = ("headless Chromium not found (apt-get install chromium, or set MICROGPT_CHROMIUM): "
                  "report.html not opened in a browser")
        warnings.warn(reason, stacklevel=2)  # shown in pytest's summary even with -q
        pytest.skip(reason)
    return path


def open_page(browser, page, tmp_path, *args):
    """Run the browser on one local file; returns (stdout, stderr)."""
    profile = tmp_path / f"profile-{len(os.listdir(tmp_path))}"  # a fresh profile for every launch
    p = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args, f"file://{page}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, p.stderr


def console_lines(stderr):
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def probe(browser, page_html, tmp_path, name):
    """The probe's counts for a copy of the page (its CSP let through the one inline script)."""
    page_html = page_html.replace("style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
    page_html = page_html.replace("<head>", "<head>" + PROBE, 1)
    path = tmp_path / name
    path.write_text(page_html, encoding="utf-8")
    dom, stderr = open_page(browser, path, tmp_path, "--dump-dom", "--window-size=1000,2000")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: " + dom[-500:]
    return json.loads(html.unescape(found.group(1))), console_lines(stderr)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    if not os.path.exists(NAMES):
        pytest.skip("names.txt not found: set MICROGPT_DATA_DIR")
    tmp = tmp_path_factory.mktemp("browser")
    data = tmp / "names.txt"
    with open(NAMES) as f:
        data.write_text("".join(f.readlines()[:300]))
    run = tmp / "run"
    run_cli("train", "--out", run, "--data", data, "--engine", "numpy", "--steps", "40", "--batch-size", "4",
            "--eval-every", "20", "--num-samples", "0", "--quiet", check=True)
    samples = [("emma", "train"), ("<img src=x onerror=alert(1)>", "new"), ("zoe", "val")]
    return report.build_report(str(run), samples=samples, eval_results={"pass@1": 0.5})


def test_report_renders_in_chromium(browser, report_page, tmp_path):
    import matplotlib.image
    # 1) the untouched page: a screenshot, and no console message at all
    shot = tmp_path / "report.png"
    # a window taller than the page: every picture is in the screenshot
    _, stderr = open_page(browser, report_page, tmp_path, f"--screenshot={shot}", "--window-size=1100,6000")
    assert console_lines(stderr) == []
    pixels = matplotlib.image.imread(str(shot))[..., :3]             # [H, W, RGB] in 0..1
    assert pixels.shape[:2] == (6000, 1100)
    not_white = (pixels < 0.97).any(axis=-1).mean()
    coloured = (pixels.max(axis=-1) - pixels.min(axis=-1) > 0.25).mean()  # the pictures' colours
    assert not_white > 0.08, f"the page looks blank ({not_white:.1%} not white)"
    assert coloured > 0.01, f"no pictures visible ({coloured:.2%} coloured pixels)"

    # 2) a copy with the probe: every image decoded, no error, nothing blocked
    with open(report_page, encoding="utf-8") as f:
        page = f.read()
    result, console = probe(browser, page, tmp_path, "probe.html")
    cards = result.pop("cards")
    assert result == {"images": 4, "loaded": 4, "problems": []}, result  # curves, 2 x attention, embeddings
    assert console == []
    # the summary cards at 1000 pixels wide: rows as even as can be (11 cards: 4 + 4 + 3, not 5 + 5 + 1)
    per_row = [[top for top, _ in cards].count(top) for top in sorted({top for top, _ in cards})]
    assert len(cards) == 11 and per_row == [4, 4, 3], per_row
    assert len({width for _, width in cards}) == 1  # one width for every card

    # 3) the checks can fail: a missing file, a remote image and a console error are all caught
    bad = page.replace("<footer>", '<img src="missing.png" alt="missing"><img src="https://example.com/x.png" '
                                   'alt="remote"><script>console.error("probe-error")</script><footer>')
    result, console = probe(browser, bad, tmp_path, "bad.html")
    assert result["images"] == 6 and result["loaded"] == 4
    assert any("blocked by CSP: https://example.com/x.png" in p for p in result["problems"]), result
    assert any("missing.png" in p for p in result["problems"]), result
    assert any("probe-error" in line for line in console), console
