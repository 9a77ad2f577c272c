"""JupyterLab and the reproduced HTML in a real browser: Playwright driving Debian's chromium.

Without a chromium (or Playwright) these tests are skipped, except in CI (``CI=true``), where
they fail. Everything runs on a copy of the working tree, so nothing here writes into it except
the screenshot under ``build/browser/``.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from snapshots import ROOT, snapshot

from inc_utils.lab import command

pytestmark = pytest.mark.slow
CHAPTER = "01_intermediate_nc"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
SCREENSHOTS = ROOT / "build" / "browser"


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _clean_env(**extra) -> dict:
    """The environment without the test session's INC_* folders and its Agg backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INC_") and k != "MPLBACKEND"}
    return {**env, "INC_PROGRESS": "0", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab started as ``make lab`` does, on a copy of the repository with a tiny scale
    chosen in chapter 1's parameters cell; yields (repository copy, lab URL). Stops its own process."""
    root = snapshot(tmp_path / "repo", tiny_scale=True)
    source = root / "notebooks" / f"{CHAPTER}.py"
    source.write_text(source.read_text().replace("scale = None ", 'scale = "tiny"', 1))
    port, token = _free_port(), "inc-test-token"
    options = ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
               "--LabApp.expose_app_in_browser=True"]
    env = _clean_env(PYTHONPATH=str(root), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
                     JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
                     JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(command(root, *options), cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "jupyterlab.log").read_text()[-3000:]
                time.sleep(0.5)
        yield root, f"http://127.0.0.1:{port}/lab/tree/notebooks/{CHAPTER}.py?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


RUN_ALL = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.ready;
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
  const cells = [];
  for (const cell of panel.content.model.cells) {
    const json = cell.toJSON();
    cells.push({type: json.cell_type, count: json.execution_count ?? null, outputs: json.outputs ?? []});
  }
  return cells;
}"""


def test_jupyterlab_opens_a_chapter_as_a_notebook_and_runs_it(browser, jupyterlab):
    root, url = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)   # a notebook, not a text editor
    import jupytext
    expected = len(jupytext.read(root / "notebooks" / f"{CHAPTER}.py").cells)
    count = "() => window.jupyterapp.shell.currentWidget.content.model.cells.length"
    page.wait_for_function(f"() => ({count})() === {expected}", timeout=60_000)  # the model fills in after the first cell
    assert page.evaluate(count) == expected

    cells = page.evaluate(RUN_ALL)
    code = [c for c in cells if c["type"] == "code"]
    assert all(c["count"] is not None for c in code), "not every code cell ran"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert errors == [], f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else ""
    assert sum("image/png" in o.get("data", {}) for c in code for o in c["outputs"]) >= 5
    figure = page.locator(".jp-OutputArea-output img").first
    figure.scroll_into_view_if_needed()
    assert figure.evaluate("img => img.complete && img.naturalWidth > 0")       # displayed, not just stored
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).filter(has_text="Traceback").count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab.png"))
    assert (root / "build" / "lab" / "figures" / "ch1_nc1.png").exists()          # interactive output folder
    assert len(list((root / "runs").iterdir())) == 1
    page.close()


def _check_page(page, url: str, seen: set) -> list[str]:
    """Open ``url``; every image must load and every local link resolve (followed once). Problems found."""
    if url in seen:
        return []
    seen.add(url)
    page.goto(url, wait_until="load")
    problems = [f"{url}: image {src[:80]} did not load" for src, ok in page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.getAttribute('src') || '', i.complete && i.naturalWidth > 0])") if not ok]
    ids = set(page.eval_on_selector_all("[id], a[name]", "es => es.map(e => e.id || e.getAttribute('name'))"))
    followed = []
    for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
        target = urlparse(href)
        if target.scheme in ("http", "https", "mailto"):
            continue                                                   # offline: not ours to resolve
        if target.path == urlparse(url).path:
            if target.fragment and not {target.fragment, unquote(target.fragment)} & ids:
                problems.append(f"{url}: anchor #{target.fragment} has no target")
        elif not Path(unquote(target.path)).is_file():
            problems.append(f"{url}: link to missing {target.path}")
        elif target.path.endswith(".html"):
            followed.append(href.split("#")[0])
    for href in followed:
        problems += _check_page(page, href, seen)
    return problems


def _assert_site_works(browser, index: Path):
    page = browser.new_page()
    seen: set = set()
    problems = _check_page(page, index.as_uri(), seen)
    assert problems == []
    assert len(seen) >= 2                                              # the index and its chapters
    page.close()


def test_a_reproduced_site_has_working_links_and_images(browser, tmp_path):
    root = snapshot(tmp_path / "repo", tiny_scale=True)
    subprocess.run([sys.executable, "-m", "inc_utils", "reproduce", "--scale", "tiny"], cwd=root, check=True,
                   capture_output=True, env=_clean_env(PYTHONPATH=str(root), MPLBACKEND="Agg"), timeout=600)
    _assert_site_works(browser, root / "build" / "tiny" / "index.html")


def test_the_smoke_site_has_working_links_and_images(browser):
    index = ROOT / "build" / "smoke" / "index.html"
    if not index.exists():
        pytest.skip("build/smoke/index.html not built yet (make reproduce)")
    _assert_site_works(browser, index)
