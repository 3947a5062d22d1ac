"""The report in a real headless Chromium: it loads, every figure decodes (naturalWidth > 0), no
console errors, the headline (measurable observables) and the trajectory panels are on screen;
the page is self-contained, escapes what it shows, and results.json holds the numbers it
shows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from lrsim.analysis.features import synthetic_scan
from lrsim.analysis.identify import identify
from lrsim.analysis.report import write_report

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + e.message), true);
const _ce = console.error.bind(console);
console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); _ce(...a); };
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const shown = el => { const r = el.getBoundingClientRect();
                        return r.width > 100 && r.height > 100; };
  const panels = Array.from(document.querySelectorAll('#trajectories img'));
  const headline = document.getElementById('headline');
  const out = document.createElement('pre');
  out.id = 'lrsim-probe';
  out.textContent = JSON.stringify({
    images: imgs.length, undecoded: bad, errors: window.__errors,
    panels: panels.filter(i => i.complete && i.naturalWidth > 0 && shown(i)).length,
    headline: headline ? headline.innerText : '',
    headlineTop: headline ? headline.getBoundingClientRect().top : -1});
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
    results = identify(ds, classifiers=["forest", "linear"], quick=True, n_splits=4,
                       n_permutations=3, holdout="architecture=32",
                       store="<script>alert('x')</script>")
    out = tmp_path_factory.mktemp("report")
    return write_report(results, out), results


def test_page_is_self_contained_and_escaped(report):
    page, _ = report
    html = page.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert html.count('src="data:image/png;base64,') >= 10


def test_results_json_holds_the_numbers_shown(report):
    page, results = report
    saved = json.loads((page.parent / "results.json").read_text())
    html = page.read_text()
    head = saved["headline"]
    best = max(head["section"]["scores"], key=lambda c: head["section"]["scores"][c]["accuracy"])
    shown = head["section"]["scores"][best]
    headline = html[html.index('id="headline"'):html.index("</div>")]
    assert f"{100 * shown['accuracy']:.1f}%" in headline
    assert f"{100 * shown['run_accuracy']:.1f}%" in headline
    assert f"{100 * saved['chance']:.1f}%" in headline
    assert f"p = {head['null']['p_value']:.3f}" in headline
    assert "measurable observables alone" in headline and "alignment" not in \
        headline.split("Model-internal")[0]
    held = head["held_out"][0]
    assert held["key"] == "architecture" and held["value"] == "32"
    assert f"{100 * held['scores']['forest']['accuracy']:.1f}%" in headline
    assert saved["protocol"]["sentence"] in html
    assert saved["settings"]["n_splits"] == 4
    assert shown["accuracy"] == pytest.approx(
        results.headline.section.scores[best].accuracy)
    assert 'id="model-internal"' in html and "Model-internal quantities" in html
    assert saved["features"]["features"] == "recorded"
    assert f"features: {saved['features']['description']}" in headline


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
    assert found["images"] >= 10
    assert found["undecoded"] == []
    assert found["errors"] == []
    assert found["panels"] == 1  # the trajectory panels, decoded and laid out
    assert "Headline: what an experiment could record" in found["headline"]
    assert 0 <= found["headlineTop"] < 1000  # near the top of the page
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "error" in line.lower()]
