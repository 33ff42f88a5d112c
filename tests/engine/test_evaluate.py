"""One evaluation function: the end-of-training report and ``dtnn eval`` agree, read
the checkpoint once, use its stored normalisation and need no training files."""
import json
import os

import numpy as np
import pytest

from dtnn.cli.main import main
from dtnn.config import load_config
from dtnn.data import load_dataset, write_idx
from dtnn.engine.evaluate import Evaluation, evaluate, evaluate_checkpoint
from dtnn.engine.session import train
from dtnn.parallel import SerialContext


def _images(rng, n, k=3):
    y = rng.integers(0, k, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 8, 8)).astype(np.int32)
    for c in range(k):  # a bright bar per class: learnable
        x[y == c, 2 * c:2 * c + 2, :] += 150
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.fixture(scope="module")
def idx_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 240), ("t10k", 90)):
        x, y = _images(rng, n)
        write_idx(data / f"{split}-images-idx3-ubyte", x)
        write_idx(data / f"{split}-labels-idx1-ubyte", y)
    cfg = load_config(None, ['data.source="idx"', f'data.path="{data}"', "data.options.classes=3",
                             "model.options={filters=4,hidden=8}", "train.epochs=2",
                             "train.batch_size=16", "output.progress=false",
                             f'output.run_dir="{root / "run"}"'])
    result = train(cfg, SerialContext())
    return root, data, result


def test_final_report_is_the_evaluation_json(idx_run):
    root, _, result = idx_run
    saved = json.loads((root / "run" / "report.json").read_text())
    assert saved == result["test"]
    assert set(saved) >= {"accuracy", "loss", "confusion", "macro"}


def test_eval_needs_no_training_files_and_matches_the_report(idx_run, tmp_path):
    root, data, _ = idx_run
    copy = tmp_path / "test-only"
    copy.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (copy / name).write_bytes((data / name).read_bytes())
    ckpt = str(root / "run" / "checkpoint.h5")
    ev = evaluate_checkpoint(ckpt, overrides=[f'data.path="{copy}"'])
    saved = json.loads((root / "run" / "report.json").read_text())
    assert isinstance(ev, Evaluation)
    assert ev.confusion.tolist() == saved["confusion"]
    assert ev.accuracy == saved["accuracy"]
    assert ev.loss == pytest.approx(saved["loss"], rel=1e-6)
    out = tmp_path / "eval.json"
    assert main(["eval", ckpt, "--set", f'data.path="{copy}"', "--out", str(out)]) == 0
    assert json.loads(out.read_text())["confusion"] == saved["confusion"]


def test_eval_uses_the_checkpoints_normalisation(idx_run, tmp_path):
    """Stored statistics, not the test set's own: shifting every test pixel by a
    constant must change the logits (fresh statistics would absorb the shift)."""
    root, data, _ = idx_run
    from dtnn.data import read_idx_images
    ckpt = str(root / "run" / "checkpoint.h5")
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    x = read_idx_images(data / "t10k-images-idx3-ubyte").astype(np.int32)
    write_idx(shifted / "t10k-images-idx3-ubyte", np.clip(x + 90, 0, 255).astype(np.uint8))
    (shifted / "t10k-labels-idx1-ubyte").write_bytes((data / "t10k-labels-idx1-ubyte").read_bytes())
    base = evaluate_checkpoint(ckpt)
    moved = evaluate_checkpoint(ckpt, overrides=[f'data.path="{shifted}"'])
    assert moved.loss != pytest.approx(base.loss, rel=1e-3)


def test_eval_train_split_still_works(idx_run):
    root, _, _ = idx_run
    ev = evaluate_checkpoint(str(root / "run" / "checkpoint.h5"), split="train")
    assert ev.confusion.sum() == 240


def test_test_only_loading_of_array_files(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "only_test.npz"
    np.savez(p, x_test=rng.random((7, 1, 4, 4)).astype(np.float32),
             y_test=np.arange(7) % 2, classes=np.array(["a", "b"]))
    train, test = load_dataset("npz", str(p), only="test")
    assert train is None and len(test) == 7 and test.classes == ["a", "b"]
    with pytest.raises(Exception, match="x_train"):
        load_dataset("npz", str(p))


def test_evaluate_function_shards_like_the_trainer():
    from dtnn.data import load_synthetic
    from dtnn.models import build_model
    _, test = load_synthetic(shape=(1, 6, 6), classes=3, n_train=10, n_test=50)
    model = build_model("simplecnn", (1, 6, 6), 3, filters=2, hidden=4)
    a = evaluate(model, test, SerialContext(), batch_size=7)
    b = evaluate(model, test, SerialContext(), batch_size=500)
    assert a.confusion.tolist() == b.confusion.tolist() and a.confusion.sum() == 50
    assert a.loss == pytest.approx(b.loss, rel=1e-6)
