"""ONNX export: ONNX Runtime computes what dtnn computes, for every layer type and for
pruned shapes; the batch dimension is symbolic."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from dtnn.export.onnx import check, export_onnx, ort_session, to_onnx  # noqa: E402
from dtnn.prune.graph import prunable_groups  # noqa: E402
from dtnn.prune.surgery import remove_units  # noqa: E402

from ._models import all_followers, gap_model, global_pools, kmax_model, zoo  # noqa: E402
from .test_surgery import _randomise  # noqa: E402

FACTORIES = [all_followers, global_pools, gap_model, kmax_model,
             lambda: zoo("cnet"), lambda: zoo("vgg11_bn"), lambda: zoo("lenet")]


@pytest.mark.parametrize("factory", FACTORIES)
def test_onnx_runtime_matches_dtnn(factory, tmp_path):
    model = factory()
    _randomise(model)
    path = export_onnx(model, str(tmp_path / "m.onnx"))
    for n in (1, 5):   # symbolic batch
        x = np.random.default_rng(n).standard_normal((n,) + model.input_shape).astype(np.float32)
        result = check(model, path, x)
        assert result["max_abs_diff"] <= 1e-4 * max(1.0, result["max_abs_output"]), result


def test_pruned_model_exports(tmp_path):
    model = zoo("cnet")
    _randomise(model)
    groups = [g for g in prunable_groups(model) if g.prunable]
    pruned = remove_units(model, {g.producer: [0] for g in groups})
    path = export_onnx(pruned, str(tmp_path / "p.onnx"))
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    out = ort_session(path).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(out, pruned.forward(x), rtol=1e-4, atol=1e-4)
    proto = to_onnx(pruned)
    weights = {i.name: i for i in proto.graph.initializer}
    first = [w for name, w in weights.items() if name.startswith("l0_w")][0]
    assert list(first.dims)[0] == pruned.layers[0].out_channels


def test_blocks_and_relu6_export(tmp_path):
    from dtnn.models import build_model
    model = build_model("mobilenet_v2", (1, 28, 28), 10, width=0.25)
    _randomise(model)
    path = export_onnx(model, str(tmp_path / "mb.onnx"))
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    result = check(model, path, x)
    assert result["max_abs_diff"] <= 1e-4 * max(1.0, result["max_abs_output"]), result
