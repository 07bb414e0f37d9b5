"""The training dashboard in a real browser: Voila serves tests/dashboard_app.ipynb on 127.0.0.1, Debian's chromium
(driven by the playwright Python package; no browser download) clicks Start, sees the progress bar and the loss plot
advance and the validation panel fill, clicks Stop, moves the slice slider and sees the snapshot change. Screenshots go to test-artifacts/."""
import os, re, shutil, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest
from waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "widgets_browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing: install Debian's chromium "
                       "(apt-get install chromium; .ci/run does) to run the browser tests"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing (pip install playwright)")
pytest.importorskip("voila", reason="voila is missing (pip install voila)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_url(tmp_path):
    "Voila serving the dashboard app on a free local port; stopped (with its kernel) afterwards."
    port = free_port()
    log = open(tmp_path / "voila.log", "w")
    env = {**os.environ, "DACAPO_NB_APP_DIR": str(tmp_path / "app"), "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "voila", str(ROOT / "tests" / "dashboard_app.ipynb"), "--no-browser",
                             f"--port={port}", "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while True:   # bounded wait for the server to listen
        if proc.poll() is not None: pytest.fail(f"voila exited with {proc.returncode}: {(tmp_path / 'voila.log').read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1): break
        except OSError:
            if time.time() > deadline: pytest.fail("voila did not listen within 60 s")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: pass
        try: os.killpg(proc.pid, signal.SIGKILL)   # the group we started: voila and its kernel
        except ProcessLookupError: pass
        proc.wait(timeout=15)
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "voila.log", ARTIFACTS / "voila.log")


@pytest.fixture
def page(tmp_path):
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "chromium-profile"), executable_path=CHROMIUM,
                                                       headless=True, args=CHROMIUM_ARGS, viewport={"width": 1300, "height": 1400})
        try:
            yield context.new_page()
        finally:
            context.close()


def iteration_shown(page) -> int:
    text = page.inner_text(".dn-progress-label")
    match = re.match(r"iteration (\d+)/2000", text)
    assert match, f"unexpected progress text {text!r}"
    return int(match.group(1))


def displayed_and_natural_size(image) -> tuple:
    "((width, height) on the page, (width, height) of the picture itself), in CSS pixels."
    w, h, nw, nh = image.evaluate("e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height, e.naturalWidth, e.naturalHeight]")
    return (round(w), round(h)), (nw, nh)


def test_dashboard_in_the_browser(voila_url, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(voila_url, timeout=120_000)
    start = page.locator("button.dn-start")
    start.wait_for(timeout=120_000)   # Voila runs the notebook (imports, synthetic data) before the widgets show
    page.screenshot(path=str(ARTIFACTS / "01_ready.png"), full_page=True)
    assert start.is_enabled() and page.locator("button.dn-stop").is_disabled()
    assert iteration_shown(page) == 0
    for empty in ("img.dn-curves", "img.dn-snapshot"):   # a clean empty state: no broken-image icon before Start
        assert not page.locator(empty).is_visible(), empty

    validation = page.locator("img.dn-validation")
    assert "no validation yet" in page.inner_text(".dn-validation-label")   # the validation panel is there, empty
    assert not page.locator("img.dn-validation").is_visible()   # no picture until the first validation
    validation_before = validation.get_attribute("src")
    curves = page.locator("img.dn-curves")
    curves_before = curves.get_attribute("src")
    start.click()
    wait_until(lambda: iteration_shown(page) >= 3, 120, "training shows progress")
    first, bar_first = iteration_shown(page), page.locator(".dn-progress .progress-bar").evaluate("e => e.style.width")
    curves_first = curves.get_attribute("src")
    assert curves_first != curves_before
    wait_until(lambda: iteration_shown(page) >= first + 3, 120, "progress advances")
    wait_until(lambda: curves.get_attribute("src") != curves_first, 30, "the loss plot is redrawn")
    assert "it/s" in page.inner_text(".dn-progress-label")
    assert float(page.locator(".dn-progress .progress-bar").evaluate("e => parseFloat(e.style.width)")) > float(bar_first.rstrip("%") or 0)
    snapshot = page.locator("img.dn-snapshot")
    wait_until(lambda: bool(snapshot.get_attribute("src")), 60, "a snapshot is shown")
    wait_until(lambda: "best voi" in page.inner_text(".dn-validation-label"), 180, "a validation is shown")
    wait_until(lambda: validation.get_attribute("src") != validation_before, 30, "the validation plot is drawn")
    wait_until(lambda: snapshot.is_visible(), 30, "the snapshot becomes visible")
    for image in (curves, snapshot, validation):   # every picture at its natural size: not stretched (blurry)
        shown, natural = displayed_and_natural_size(image)
        assert shown == natural, (image, shown, natural)
    page.screenshot(path=str(ARTIFACTS / "02_training.png"), full_page=True)

    page.locator("button.dn-stop").click()
    wait_until(lambda: "stopped" in page.inner_text(".dn-status"), 60, "Stop takes effect")
    assert start.is_enabled() and page.locator("button.dn-stop").is_disabled()
    wait_until(lambda: "it/s" not in page.inner_text(".dn-progress-label"), 10, "rate and ETA are cleared on Stop")
    assert "ETA" not in page.inner_text(".dn-progress-label")
    stopped_at = iteration_shown(page)
    time.sleep(1.0)
    assert iteration_shown(page) == stopped_at   # nothing trains after Stop
    page.screenshot(path=str(ARTIFACTS / "03_stopped.png"), full_page=True)

    slice_readout = page.locator(".dn-slice .widget-readout")
    before_value, before_src = int(slice_readout.inner_text()), snapshot.get_attribute("src")
    before_png = snapshot.screenshot(path=str(ARTIFACTS / "04_slice_before.png"))
    handle = page.locator(".dn-slice .noUi-handle")
    handle.focus()
    for _ in range(5): page.keyboard.press("ArrowRight")
    wait_until(lambda: int(slice_readout.inner_text()) == before_value + 5, 10, "the slice slider moves")
    wait_until(lambda: snapshot.get_attribute("src") != before_src, 30, "the snapshot is redrawn")
    after_png = snapshot.screenshot(path=str(ARTIFACTS / "05_slice_after.png"))
    assert after_png != before_png, "moving the slice slider did not change the image"
    page.screenshot(path=str(ARTIFACTS / "06_final.png"), full_page=True)
