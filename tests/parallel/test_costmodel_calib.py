"""The cost model's codec calibration per compressor and per collective
(model_calib.calibrate_codecs, Codec.on): synthetic dtnn bench dist files whose
answers follow from the definitions by hand."""
import json

import pytest

from dtnn.bench.costmodel import Codec, Exchange, Link, predict_step, transport_seconds
from dtnn.bench.model_calib import calibrate_codecs

PARAMS = 1_000_000
FREE = Link(1e-6, 1e-12)


def _bench(path, *rows):
    path.write_text(json.dumps({"params": PARAMS, "results": [
        {"compress": spec, "mode": "overlap", "algorithm": algo, "ranks": 2,
         "codec_seconds": sec} for spec, algo, sec in rows]}))
    return path


def _codec_ms(codec, algo):
    return 1e3 * transport_seconds(algo, 4.0 * PARAMS, codec.on(algo), 2, FREE)[1]


def test_first_row_sets_the_factor_other_collectives_their_own(tmp_path):
    codecs = {"int8": Codec(1e-9, 1e-9, 0.25), "none": None}
    # kernels alone: allgather at 2 ranks = n (enc + 2 dec) = 3 ms; qring = 2 n (enc + dec) = 4 ms
    a = _bench(tmp_path / "a.json", ("int8", "allgather", 6e-3), ("none", "ring", 1.0))
    b = _bench(tmp_path / "b.json", ("int8", "qring", 2e-3), ("int8", "qring", 9.0))
    out = calibrate_codecs(codecs, a, b)
    assert out["int8"]["factor"] == pytest.approx(2.0)
    assert out["int8"]["collectives"]["qring"]["factor"] == pytest.approx(0.5)
    assert codecs["int8"].encode == pytest.approx(2e-9)
    # each collective reproduces its own measurement; the later qring row is ignored
    assert _codec_ms(codecs["int8"], "allgather") == pytest.approx(6.0)
    assert _codec_ms(codecs["int8"], "qring") == pytest.approx(2.0)
    assert codecs["int8"].on("qring").on_collective == {}


def test_one_file_is_the_old_calibration(tmp_path):
    codecs = {"sign": Codec(1e-9, 1e-9, 0.03)}
    out = calibrate_codecs(codecs, _bench(tmp_path / "a.json", ("sign", "allgather", 6e-3),
                                          ("sign", "allgather", 1.0)))
    assert out["sign"]["collectives"] == {}
    assert codecs["sign"].on_collective == {}
    assert _codec_ms(codecs["sign"], "qring") == pytest.approx(8.0)


def test_predict_step_spends_the_collectives_own_codec():
    plain = Codec(1e-9, 1e-9, 0.25)
    ring = Codec(1e-9, 1e-9, 0.25, on_collective={"qring": 3.0})
    ex = Exchange([(4.0 * PARAMS, 1.0)])
    link = Link(1e-5, 8 / 1e9)
    p = predict_step(0.05, ex, 4, link, "qring", plain)
    q = predict_step(0.05, ex, 4, link, "qring", ring)
    assert q["codec"] == pytest.approx(3.0 * p["codec"])
    # the other collectives keep the base codec
    assert predict_step(0.05, ex, 2, link, "allgather", ring)["codec"] == pytest.approx(
        predict_step(0.05, ex, 2, link, "allgather", plain)["codec"])
    # the progress-bound hops spend it too
    hp = predict_step(0.05, ex, 4, link, "qring", plain, progress=[0.5, 1.0])
    hq = predict_step(0.05, ex, 4, link, "qring", ring, progress=[0.5, 1.0])
    assert hq["codec"] == pytest.approx(3.0 * hp["codec"])


def test_bench_model_rejects_a_missing_codec_file_before_any_work(tmp_path, capsys):
    from dtnn.cli.main import main
    sweep = tmp_path / "sweep.jsonl"
    sweep.write_text("")
    good = _bench(tmp_path / "a.json", ("int8", "allgather", 1e-3))
    out = tmp_path / "out"
    assert main(["bench", "model", "--sweep", str(sweep), "--out", str(out), "--codec-from",
                 str(good), str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.json: no such results file" in err[0], err
    assert not out.exists()


def test_profile_model_times_steps_after_the_conv_tuner_decided():
    import dtnn.tune
    from dtnn.bench.model import _tuning, profile_model
    dtnn.tune.reset()
    prof = profile_model("simplecnn", batch=4, steps=1)
    assert prof.compute > 0 and prof.ready and prof.hooks
    assert not _tuning()
