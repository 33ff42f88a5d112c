"""Metrics against scikit-learn, mergeability, formatting."""
import json

import numpy as np
import pytest
from sklearn import metrics as skm

from dtnn import metrics as m


def random_labels(n, k, seed, never_predicted=()):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.4, t, rng.integers(0, k, n))
    for c in never_predicted:
        p[p == c] = (c + 1) % k
    return t, p


@pytest.mark.parametrize("seed", range(4))
def test_against_sklearn(seed):
    k = 7
    t, p = random_labels(300, k, seed, never_predicted=(2, 5))
    t[t == 6] = 0                           # class 6: never true; classes 2, 5: never predicted
    labels = np.arange(k)
    cm = m.confusion_matrix(t, p, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=labels))
    rep = m.classification_report(t, p, [f"c{i}" for i in range(k)])
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert m.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    for avg in ("macro", "weighted"):
        sp, sr, sf, _ = skm.precision_recall_fscore_support(t, p, labels=labels, average=avg,
                                                            zero_division=0)
        assert rep[avg]["precision"] == pytest.approx(sp)
        assert rep[avg]["recall"] == pytest.approx(sr)
        assert rep[avg]["f1"] == pytest.approx(sf)
    sp, sr, sf, ss = skm.precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    np.testing.assert_allclose([r["precision"] for r in rep["per_class"]], sp)
    np.testing.assert_allclose([r["recall"] for r in rep["per_class"]], sr)
    np.testing.assert_allclose([r["f1"] for r in rep["per_class"]], sf)
    assert [r["support"] for r in rep["per_class"]] == ss.tolist()
    assert rep["per_class"][2]["precision"] == 0.0 and rep["per_class"][6]["recall"] == 0.0


def test_default_sklearn_macro_matches_when_every_class_appears():
    t, p = random_labels(500, 5, 11, never_predicted=(3,))
    rep = m.classification_report(t, p, list("abcde"))
    _, _, f, _ = skm.precision_recall_fscore_support(t, p, average="macro", zero_division=0)
    assert rep["macro"]["f1"] == pytest.approx(f)
    assert m.macro_f1(m.confusion_matrix(t, p, 5)) == pytest.approx(f)


def test_confusion_is_mergeable_and_report_json_able():
    t, p = random_labels(400, 4, 3)
    parts = [m.confusion_matrix(t[i::3], p[i::3], 4) for i in range(3)]   # three "ranks"
    merged = m.report_from_confusion(sum(parts), list("wxyz"))
    assert merged == m.classification_report(t, p, list("wxyz"))
    assert json.loads(json.dumps(merged)) == merged
    assert merged["num_samples"] == 400 and merged["classes"] == list("wxyz")


def test_zero_division_without_warnings():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = m.report_from_confusion(np.zeros((3, 3), int))
        assert rep["accuracy"] == 0.0 and rep["macro"]["f1"] == 0.0
        assert m.accuracy([], []) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="out of range"):
        m.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="entries"):
        m.confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError, match="class names"):
        m.report_from_confusion(np.eye(2, dtype=int), ["a"])


def test_formatting():
    names = ["T-shirt/top", "Trouser", "Ankle boot"]
    cm = np.array([[1234, 5, 0], [7, 88, 1], [0, 0, 3]])
    text = m.format_confusion(cm, names)
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(l) for l in lines}) == 1          # aligned
    assert "T-sh." in lines[0] and "Ankl." in lines[0]                    # abbreviated headers
    assert lines[1].startswith("T-shirt/top") and lines[1].split()[1:] == ["1234", "5", "0"]
    assert m.abbreviate("Ankle boot", 5) == "Ankl." and m.abbreviate("Bag", 5) == "Bag"
    rep = m.report_from_confusion(cm, names)
    out = m.format_report(rep)
    assert "macro avg" in out and "weighted avg" in out and "Trouser" in out
    assert f"{rep['accuracy']:.4f}" in out and f"{rep['macro']['f1']:.4f}" in out
    rows = [l for l in out.splitlines() if l.startswith(("T-shirt", "Trouser", "Ankle"))]
    assert len({len(r) for r in rows}) == 1
