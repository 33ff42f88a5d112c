"""End to end in a real headless browser: Debian's chromium driven by Playwright.

``dtnn serve`` runs as a subprocess on a free port with a model trained on scikit-learn's
real handwritten digits; the test draws with real mouse, touch and pen events, clicks
Predict and Clear, and reads the prediction and probabilities from the page.

Set ``DTNN_SCREENSHOT_DIR`` to keep the desktop and phone screenshots (docs/serve.png
and docs/serve-phone.png are made that way).
"""
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import STROKES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install playwright)")
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="no system chromium (apt-get install chromium)"),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def server(digits_checkpoint):
    """``dtnn serve CHECKPOINT --port 0``; yields its URL from the "serving on" line."""
    proc = subprocess.Popen([sys.executable, "-m", "dtnn", "serve", digits_checkpoint,
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, line + proc.stderr.read()
        yield line.rsplit(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    # Playwright's launch() gives chromium a new, empty profile directory of its own
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _open(browser, url, **context):
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(url)
    page.locator('#card dd[data-key="pruned"]').wait_for()   # model card loaded
    return ctx, page, requested


def _points(page, stroke):
    box = page.locator("#pad").bounding_box()
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]


def draw_mouse(page, strokes):
    for stroke in strokes:
        pts = _points(page, stroke)
        page.mouse.move(*pts[0])
        page.mouse.down()
        for x, y in pts[1:]:
            page.mouse.move(x, y, steps=12)
        page.mouse.up()


def _steps(pts, n=12):
    out = [pts[0]]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        out += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1)]
    return out


def draw_touch(page, cdp, strokes):
    for stroke in strokes:
        pts = _steps(_points(page, stroke))
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                              "touchPoints": [{"x": pts[0][0], "y": pts[0][1]}]})
        for x, y in pts[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                                  "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def draw_pen(page, cdp, strokes, pressure=0.5):
    def pen(kind, x, y, buttons):
        cdp.send("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
            "clickCount": 1, "pointerType": "pen", "force": pressure})
    for stroke in strokes:
        pts = _steps(_points(page, stroke))
        pen("mousePressed", *pts[0], 1)
        for x, y in pts[1:]:
            pen("mouseMoved", x, y, 1)
        pen("mouseReleased", *pts[-1], 0)


def answer(page, count):
    """Wait for the page's ``count``-th answer; return (prediction, [(class, p)])."""
    try:
        page.locator(f'body[data-answers="{count}"][data-state="done"]').wait_for(timeout=20000)
    except playwright_api.TimeoutError:
        state = page.eval_on_selector("body", "b => [b.dataset.state, b.dataset.answers]")
        raise AssertionError(f"no answer {count}: state {state}, error "
                             f"{page.inner_text('#error')!r}") from None
    bars = page.eval_on_selector_all(
        "#top5 li", "els => els.map(e => [e.dataset.class, Number(e.dataset.probability)])")
    return page.inner_text("#prediction"), [(c, float(p)) for c, p in bars]


def _top2(bars):
    return [c for c, _ in bars[:2]]


def test_draw_predict_clear_on_desktop(browser, server):
    ctx, page, requested = _open(browser, server, viewport={"width": 1200, "height": 760})
    try:
        draw_mouse(page, STROKES["1"])
        page.click("#predict")
        prediction, bars = answer(page, 1)
        assert len(bars) == 5 and prediction == bars[0][0]
        assert "1" in _top2(bars), bars
        assert all(0 <= p <= 1 for _, p in bars) and sum(p for _, p in bars) <= 1 + 1e-6
        assert [p for _, p in bars] == sorted((p for _, p in bars), reverse=True)
        assert page.get_attribute("#model-input", "src").startswith("data:image/png;base64,")
        assert "ms on the server" in page.inner_text('#card dd[data-key="last request"]')

        page.click("#clear")
        assert page.inner_text("#prediction") == "–"
        assert page.locator("#top5 li").count() == 0
        assert page.get_attribute("#model-input", "src") is None

        draw_mouse(page, STROKES["7"])
        page.click("#predict")
        prediction, bars = answer(page, 2)
        assert "7" in _top2(bars), bars

        # two characters side by side: transcription and LaTeX with a copy button
        page.click("#clear")
        draw_mouse(page, [[(x - 0.15, y) for x, y in s] for s in STROKES["1"]] +
                   [[(x + 0.15, y) for x, y in s] for s in STROKES["7"]])
        page.click("#predict")
        answer(page, 3)
        assert page.locator("#chars li").count() == 2
        text = page.inner_text("#transcription")
        assert len(text) == 2 and page.inner_text("#latex") == f"${text}$"
        assert page.is_visible("#copy-latex")
        page.locator("#chars li button").nth(1).click()         # bars of the 2nd character
        assert page.get_attribute("#chars li:nth-child(2) button", "aria-pressed") == "true"
        shots = os.environ.get("DTNN_SCREENSHOT_DIR")
        if shots:
            page.screenshot(path=os.path.join(shots, "serve.png"), full_page=True)
        assert not page.is_visible("#error")
        # every request went to dtnn itself: nothing from a CDN, no external fonts
        assert requested and all(u.startswith(server) or u.startswith("data:")
                                 for u in requested), requested
    finally:
        ctx.close()


def test_phone_touch_pen_and_live_prediction(browser, server):
    ctx, page, requested = _open(browser, server, viewport={"width": 390, "height": 844},
                                 has_touch=True, is_mobile=True, device_scale_factor=2)
    try:
        cdp = ctx.new_cdp_session(page)
        # usable on a phone: nothing wider than the screen, canvas and buttons in view
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        pad = page.locator("#pad").bounding_box()
        assert pad["width"] >= 300 and pad["x"] >= 0 and pad["x"] + pad["width"] <= 390
        assert page.locator("#predict").bounding_box()["y"] < 844

        draw_touch(page, cdp, STROKES["1"])
        # buttons by click: on a loaded machine a slow tap turns into a long press
        page.locator("#predict").click()
        _, bars = answer(page, 1)
        assert "1" in _top2(bars), bars

        page.locator("#clear").click()
        page.locator("#live").click()                # answers while drawing, no Predict
        draw_pen(page, cdp, STROKES["7"])
        page.locator('body[data-state="done"]').wait_for(timeout=20000)
        page.wait_for_timeout(300)
        page.locator('body[data-state="done"]').wait_for(timeout=20000)
        bars = page.eval_on_selector_all(
            "#top5 li", "els => els.map(e => e.dataset.class)")
        assert "7" in bars[:2], bars
        shots = os.environ.get("DTNN_SCREENSHOT_DIR")
        if shots:
            page.screenshot(path=os.path.join(shots, "serve-phone.png"), scale="css")
    finally:
        ctx.close()
