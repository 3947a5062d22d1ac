"""The report in a real headless Chromium: it loads, every figure decodes (naturalWidth > 0), no
console errors; the page is self-contained, escapes what it shows, and results.json holds the
numbers it shows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from lrsim.analysis.evaluation import identify
from lrsim.analysis.features import synthetic_scan
from lrsim.analysis.report import write_report

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + e.message), true);
const _ce = console.error.bind(console);
console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); _ce(...a); };
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement('pre');
  out.id = 'lrsim-probe';
  out.textContent = JSON.stringify({images: imgs.length, undecoded: bad,
                                    errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ds = synthetic_scan(n_runs_per_rule=6, planted="weights.abs_q75", effect=8.0, n_time=5)
    results = identify(ds, classifiers=["forest", "linear"], quick=True, n_splits=10,
                       n_permutations=3, holdout="architecture=32",
                       store="<script>alert('x')</script>")
    out = tmp_path_factory.mktemp("report")
    return write_report(results, out), results


def test_page_is_self_contained_and_escaped(report):
    page, _ = report
    html = page.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert html.count('src="data:image/png;base64,') >= 7


def test_results_json_holds_the_numbers_shown(report):
    page, results = report
    saved = json.loads((page.parent / "results.json").read_text())
    html = page.read_text()
    best = max(saved["main"], key=lambda c: saved["main"][c]["accuracy_mean"])
    assert f"{100 * saved['main'][best]['accuracy_mean']:.1f}%" in html
    assert f"{100 * saved['chance']['uniform']:.1f}%" in html
    assert f"p = {saved['null']['p_value']:.3f}" in html
    assert saved["protocol"]["sentence"] in html
    assert saved["holdout"]["key"] == "architecture" and saved["settings"]["n_splits"] == 10
    assert saved["main"]["forest"]["accuracy_mean"] == pytest.approx(
        results["main"]["forest"]["accuracy_mean"])


def test_report_opens_in_headless_chromium(report, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome on PATH (apt-get install chromium; .ci/run does it)")
    page, _ = report
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("<head>", "<head>\n" + PROBE, 1))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--mute-audio", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
           probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="lrsim-probe">(.*?)</pre>', done.stdout, re.S)
    assert m, f"the page did not finish loading: rc={done.returncode} {done.stderr[-2000:]}"
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert found["images"] >= 7
    assert found["undecoded"] == []
    assert found["errors"] == []
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "error" in line.lower()]
