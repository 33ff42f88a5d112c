"""Criteria: Taylor against torch autograd on the twin; L1, random and selection."""
import numpy as np
import pytest

from dtnn.parallel.context import SerialContext
from dtnn.prune.criteria import CRITERIA, normalised, select
from dtnn.prune.graph import prunable_groups

from ._models import all_followers, zoo

torch = pytest.importorskip("torch")
from dtnn.export.torch_twin import torch_twin  # noqa: E402


def _batches(model, n, seed=0, count=2):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = rng.standard_normal((n,) + model.input_shape).astype(np.float32)
        y = rng.integers(0, model.output_shape[0], n)
        out.append((x, y))
    return out


def _torch_taylor(model, batches):
    """Θ per producer from torch autograd: |mean over batch and positions of a * dL/da|
    at the tap module's output, summed over the batches (training mode)."""
    groups = [g for g in prunable_groups(model) if g.prunable]
    net = torch_twin(model).train()
    totals = {g.producer: np.zeros(g.units) for g in groups}
    for x, y in batches:
        acts = {}

        def keep(module, inputs, output, producer):
            output.retain_grad()
            acts[producer] = output

        hooks = [net[g.tap].register_forward_hook(
            lambda m, i, o, p=g.producer: keep(m, i, o, p)) for g in groups]
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)),
                                                 torch.from_numpy(y))
        loss.backward()
        for h in hooks:
            h.remove()
        for p, a in acts.items():
            prod = (a * a.grad).detach().double()
            prod = prod.reshape(prod.shape[0], prod.shape[1], -1)
            totals[p] += prod.mean(dim=(0, 2)).abs().numpy()
    return totals


@pytest.mark.parametrize("name", ["all_followers", "cnet", "lenet"])
def test_taylor_matches_torch_autograd(name):
    model = all_followers() if name == "all_followers" else zoo(name)
    groups = [g for g in prunable_groups(model) if g.prunable]
    batches = _batches(model, 6)
    ref = _torch_taylor(model, batches)
    ours = CRITERIA.get("taylor")().scores(model, groups, batches, SerialContext())
    assert set(ours) == set(ref)
    for p in ref:
        assert ours[p].shape == ref[p].shape
        scale = max(ref[p].max(), 1e-12)
        np.testing.assert_allclose(ours[p], ref[p], rtol=2e-3, atol=2e-4 * scale,
                                   err_msg=f"{name} layer {p}")


def test_taylor_tap_is_after_batchnorm_before_nonlinearity():
    groups = {g.producer: g for g in prunable_groups(zoo("cnet"))}
    cnet = zoo("cnet")
    for p, g in groups.items():
        if g.kind == "conv":
            assert cnet.layers[g.tap].registry_name == "batchnorm"
            assert cnet.layers[g.tap + 1].registry_name == "prelu"


def test_l1_is_filter_norm():
    model = zoo("lenet")
    groups = [g for g in prunable_groups(model) if g.prunable]
    s = CRITERIA.get("l1")().scores(model, groups, [], SerialContext())
    w = model.layers[0].params["weight"]
    np.testing.assert_allclose(s[0], np.abs(w).sum(axis=(1, 2, 3)), rtol=1e-6)
    w = model.layers[7].params["weight"]
    np.testing.assert_allclose(s[7], np.abs(w).sum(axis=0), rtol=1e-6)


def test_random_is_seeded_by_step():
    model = zoo("lenet")
    groups = [g for g in prunable_groups(model) if g.prunable]
    r = CRITERIA.get("random")()
    a = r.scores(model, groups, [], SerialContext(), step=1, seed=0)
    b = r.scores(model, groups, [], SerialContext(), step=1, seed=0)
    c = r.scores(model, groups, [], SerialContext(), step=2, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_select_global_after_layer_normalisation():
    scores = {0: np.array([1.0, 2.0, 3.0, 4.0]), 5: np.array([10.0, 0.1, 20.0])}
    norm = normalised(scores)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-12 for v in norm.values())
    chosen = select(scores, 2)
    assert chosen == {5: [1], 0: [0]}
    # min_units keeps at least that many per layer
    chosen = select(scores, 7, min_units=2)
    assert sum(len(v) for v in chosen.values()) == 3
    assert len(chosen[0]) == 2 and len(chosen[5]) == 1


def test_unknown_criterion():
    from dtnn.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown pruning criterion 'taylr'"):
        CRITERIA.get("taylr")
