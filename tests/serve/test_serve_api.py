"""The JSON API and page assets through Starlette's test client / httpx's ASGI transport."""
import base64
import io
import json
import re

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from starlette.testclient import TestClient

from dtnn.cli.main import main
from dtnn.serve.app import create_app
from dtnn.serve.predictor import Predictor

from .conftest import STROKES, png_bytes, render, side_by_side

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def predictor(digits_checkpoint):
    return Predictor(digits_checkpoint)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, max_body=LIMIT), raise_server_exceptions=False) as c:
        yield c


def _post_png(client, png, **params):
    return client.post("/api/predict", content=png, params=params,
                       headers={"content-type": "image/png"})


def test_health_and_model_card(client):
    assert client.get("/healthz").json()["status"] == "ok"
    card = client.get("/api/model").json()
    assert card["name"] == "simplecnn" and card["input_shape"] == [1, 8, 8]
    assert card["classes"] == [str(i) for i in range(10)]
    assert card["parameters"] > 1000 and card["file_bytes"] > card["parameter_bytes"] > 0
    assert 0.5 < card["accuracy"]["value"] <= 1.0 and card["pruned"] is False
    assert card["ink"]["light_ink"] is True and card["file"] == "checkpoint.h5"
    assert "/" not in card["file"]


def test_page_and_every_asset_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/app.js" in assets and "/static/style.css" in assets
    for url in assets:
        assert url.startswith("/"), f"asset {url} is not served by dtnn"
        res = client.get(url)
        assert res.status_code == 200, url
        # nothing inside the assets reaches out either (no CDN, fonts, imports)
        text = res.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://|@import|//cdn", text), url
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp


def test_predict_png_answers_with_topk_timings_and_the_model_input(client, drawing):
    res = _post_png(client, drawing("1"), top_k=3)
    assert res.status_code == 200
    out = res.json()
    assert len(out["top"]) == 3 and out["prediction"] == out["top"][0]["class"]
    probs = [t["probability"] for t in out["top"]]
    assert probs == sorted(probs, reverse=True) and sum(out["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert "1" in [t["class"] for t in out["top"][:2]]
    assert set(out["timings_ms"]) >= {"decode", "preprocess", "inference", "total"}
    assert re.match(r"app;dur=[0-9.]+$", res.headers["server-timing"])
    # the exact small image the model received, 8x8 grey
    from PIL import Image
    seen = Image.open(io.BytesIO(base64.b64decode(out["input"].split(",", 1)[1])))
    assert seen.size == (8, 8) and seen.mode == "L"


def test_page_path_and_dtnn_predict_give_identical_probabilities(client, drawing, tmp_path,
                                                                 capsys, digits_checkpoint):
    png = drawing("7")
    (tmp_path / "seven.png").write_bytes(png)
    api = _post_png(client, png, top_k=10).json()
    as_json = client.post("/api/predict", json={
        "image": "data:image/png;base64," + base64.b64encode(png).decode(), "top_k": 10}).json()
    capsys.readouterr()
    assert main(["predict", digits_checkpoint, str(tmp_path / "seven.png"), "--top", "10",
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip())
    by_class = lambda top: {t["class"]: t["probability"] for t in top}  # noqa: E731
    assert by_class(api["top"]) == by_class(cli["top"]) == by_class(as_json["top"])


def test_raw_arrays_match_dtnn_predict_on_npy(client, tmp_path, capsys, digits_checkpoint,
                                              predictor):
    from sklearn.datasets import load_digits
    sample = (load_digits().images[7] / 16.0).astype(np.float32)
    np.save(tmp_path / "x.npy", sample)
    api = client.post("/api/predict", json={"array": sample.tolist(), "top_k": 10}).json()
    npy = io.BytesIO()
    np.save(npy, sample)
    raw = client.post("/api/predict", content=npy.getvalue(),
                      headers={"content-type": "application/x-npy"}).json()
    capsys.readouterr()
    assert main(["predict", digits_checkpoint, str(tmp_path / "x.npy"), "--top", "10",
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip())
    assert {t["class"]: t["probability"] for t in api["top"]} == \
        {t["class"]: t["probability"] for t in cli["top"]}
    assert raw["probabilities"] == api["probabilities"]
    assert api["prediction"] == "7" == cli["prediction"]   # a real test digit


def test_twenty_concurrent_requests_equal_sequential_answers(client):
    rng = np.random.default_rng(0)
    wobbly = lambda strokes: [[(x + rng.normal(0, 0.03), y + rng.normal(0, 0.03))  # noqa: E731
                               for x, y in s] for s in strokes]
    bodies = [png_bytes(render(wobbly(STROKES[name]), width=w))
              for name in ("1", "7") for w in (8, 14, 20, 26, 32) for _ in range(2)]

    def ask(body):  # the client's one event loop serves all 20 at once
        return _post_png(client, body, top_k=10, segment=1)

    sequential = [ask(b) for b in bodies]
    with ThreadPoolExecutor(20) as pool:
        concurrent = list(pool.map(ask, bodies))
    strip = lambda r: {k: v for k, v in r.json().items() if k != "timings_ms"}  # noqa: E731
    assert all(r.status_code == 200 for r in concurrent)
    assert [strip(r) for r in concurrent] == [strip(r) for r in sequential]
    # different drawings really got different answers
    assert len({json.dumps(strip(r)["probabilities"]) for r in sequential}) == 20


def test_segmented_drawing_transcribes_left_to_right(client):
    out = _post_png(client, side_by_side("1", "7"), segment="true").json()
    chars = out["characters"]
    assert len(chars) == 2 and chars[0]["box"][2] < chars[1]["box"][2]
    assert out["text"] == chars[0]["prediction"] + chars[1]["prediction"]
    assert out["latex"] == f"${out['text']}$"           # digits are LaTeX tokens
    assert "1" in [t["class"] for t in chars[0]["top"][:2]]
    assert "7" in [t["class"] for t in chars[1]["top"][:2]]


@pytest.mark.parametrize("body, ctype, params, status, words", [
    (b"", "image/png", {}, 400, "empty"),
    (b"not an image at all", "image/png", {}, 422, "not an image"),
    (b"{not json", "application/json", {}, 400, "not valid JSON"),
    (b'{"image": "data:image/png;base64,%%%"}', "application/json", {}, 422, "base64"),
    (b'{"array": [[1, 2], [3, 4]]}', "application/json", {}, 422, "shape"),
    (b'{"array": [[1, 2], [3]]}', "application/json", {}, 422, "list of numbers"),
    (b'{"array": [1], "image": "x"}', "application/json", {}, 400, "exactly one"),
    (b'{"image": "x", "path": "/etc/passwd"}', "application/json", {}, 400, "unknown field"),
    (b"\x93NUMPYjunk", "application/x-npy", {}, 422, ".npy"),
    (b"hello", "text/plain", {}, 415, "Content-Type"),
    (b"PNG", "image/png", {"top_k": "zero"}, 422, "top_k"),
    (b"PNG", "image/png", {"bogus": "1"}, 400, "unknown option"),
])
def test_bad_requests_get_one_line_json_4xx(client, body, ctype, params, status, words):
    res = client.post("/api/predict", content=body, params=params,
                      headers={"content-type": ctype})
    assert res.status_code == status, res.text
    err = res.json()["error"]
    assert words in err and "\n" not in err and "Traceback" not in err


def test_blank_drawing_oversized_body_and_wrong_routes(client):
    blank = png_bytes(render([], width=16))
    res = _post_png(client, blank)
    assert res.status_code == 422 and "no ink" in res.json()["error"]
    res = _post_png(client, b"\x89PNG" + b"0" * (LIMIT + 1))
    assert res.status_code == 413 and "limit" in res.json()["error"]

    def chunks():  # no Content-Length: refused while streaming
        for _ in range(LIMIT // 4096 + 2):
            yield b"0" * 4096
    res = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert res.status_code == 413
    assert client.get("/api/predict").status_code == 405
    missing = client.get("/nope")
    assert missing.status_code == 404 and "error" in missing.json()
    assert client.get("/static/../predictor.py").status_code == 404


def test_a_pruned_checkpoint_is_served_like_any_other(digits_checkpoint, tmp_path, drawing):
    run = tmp_path / "prune"
    assert main(["prune", digits_checkpoint, "--keep", "0.5", "--set", "prune.step_fraction=0.25",
                 "--set", "prune.batches=2", "--set", "prune.finetune_steps=3",
                 "--set", "prune.latency_reps=2", "--run-dir", str(run)]) == 0
    pruned = Predictor(str(run / "pruned.h5"))
    with TestClient(create_app(pruned)) as c:
        card = c.get("/api/model").json()
        assert card["pruned"]["criterion"] == "taylor"
        assert card["pruned"]["original_parameters"] > card["parameters"]
        assert str(tmp_path) not in json.dumps(card)          # no server paths
        out = _post_png(c, drawing("1"), top_k=3).json()
    assert len(out["top"]) == 3 and out["top"][0]["class"] in card["classes"]
