"""Compressors without MPI: spec parsing, decompress(compress(x)) properties, the
error-feedback identity, payload sizes, state round trips."""
import numpy as np
import pytest

from dtnn.compress import COMPRESSORS, ErrorFeedback, Unit, build_compressor, parse_spec
from dtnn.compress.powersgd import orthonormalize
from dtnn.parallel.options import DistOptions
from dtnn.errors import ConfigError

ALL = ["fp16", "fp16:accumulate=fp32", "bf16", "int8", "int8:stochastic=false", "qsgd:bits=8",
       "qsgd:bits=4,chunk=128", "terngrad", "terngrad:chunk=0", "sign", "sign:chunk=0", "topk:ratio=0.05",
       "topk:ratio=0.05,scope=bucket", "randomk:ratio=0.1", "powersgd:rank=2"]


def _unit(index=0):
    shapes = [(16, 40), (300,), (8, 3, 3, 3)]
    tensors, off = [], 0
    for s in shapes:
        tensors.append((off, s))
        off += int(np.prod(s))
    return Unit(index, off, tensors)


def _x(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def _roundtrip(comp, x, unit, residual=None):
    """One rank alone: compress, (PowerSGD: run the second round on its own payload),
    decode."""
    p = comp.compress(x.copy(), unit, residual)
    if comp.summable:
        nxt = comp.next_round(p, unit)
        while nxt is not None:
            p = nxt
            nxt = comp.next_round(p, unit)
    out = np.zeros(unit.size, np.float32)
    comp.decompress_add(p, out, 1.0, unit)
    return p, out


def test_parse_spec():
    assert parse_spec("topk:ratio=0.01") == ("topk", {"ratio": 0.01})
    assert parse_spec("powersgd:rank=2,start_step=100") == ("powersgd",
                                                             {"rank": 2, "start_step": 100})
    assert parse_spec("QSGD: bits = 8 , ef=false") == ("qsgd", {"bits": 8, "ef": False})
    assert parse_spec("") == ("none", {})
    with pytest.raises(ConfigError):
        parse_spec("topk:ratio")


@pytest.mark.parametrize("bad", ["nope", "topk:ratio=2", "topk:foo=1", "qsgd:bits=9",
                                 "fp16:accumulate=int", "powersgd:rank=0", "none:x=1"])
def test_bad_specs_are_config_errors(bad):
    with pytest.raises(ConfigError):
        build_compressor(bad)
    with pytest.raises(ConfigError):
        DistOptions.resolve({"compress": bad}, env={})


def test_registry_and_defaults():
    assert {"none", "fp16", "bf16", "int8", "qsgd", "terngrad", "sign", "topk", "randomk",
            "powersgd"} <= set(COMPRESSORS)
    assert build_compressor("none") == (None, False)
    for name, ef in [("sign", True), ("topk", True), ("powersgd", True), ("randomk", True),
                     ("fp16", False), ("qsgd", False), ("terngrad", False)]:
        assert build_compressor(name)[1] is ef
    assert build_compressor("sign:ef=false")[1] is False
    assert build_compressor("int8:ef=true")[1] is True
    opts = DistOptions.resolve({"compress": "topk:ratio=0.01", "min_compress_size": 64},
                               env={})
    assert opts.compress == "topk:ratio=0.01" and opts.min_compress_size == 64


@pytest.mark.parametrize("spec", ALL)
def test_roundtrip_properties(spec):
    comp, _ = build_compressor(spec)
    comp.setup(1, 0, 0)
    unit = _unit()
    x = _x(unit.size)
    p, y = _roundtrip(comp, x, unit)
    if not comp.summable:
        assert p.dtype == np.uint8 and p.size == comp.payload_size(unit)
    name = spec.split(":")[0]
    err = np.linalg.norm(y - x) / np.linalg.norm(x)
    limit = {"fp16": 1e-3, "bf16": 1e-2, "int8": 0.05, "qsgd": 1.5, "terngrad": 2.0,
             "sign": 1.0, "topk": 1.0, "randomk": 1.0, "powersgd": 1.0}[name]
    assert err < limit, err
    if name == "topk":  # exactly the selected entries, unchanged
        nz = np.flatnonzero(y)
        np.testing.assert_array_equal(y[nz], x[nz])
    if name == "sign":
        assert np.all((y >= 0) == (x >= 0))
        chunk = 512 if spec == "sign" else x.size
        for s in range(0, x.size, chunk):
            assert np.allclose(np.abs(y[s:s + chunk]), np.abs(x[s:s + chunk]).mean(), rtol=1e-5)
    if name == "int8" and "false" in spec:  # nearest rounding: error <= half a level
        assert np.max(np.abs(y - x)) <= np.abs(x).max() / 127 * 0.5 * 1.0001


@pytest.mark.parametrize("spec", ALL)
def test_error_feedback_identity(spec):
    """decoded + new residual == input + old residual, for every compressor."""
    comp, _ = build_compressor(spec)
    comp.setup(1, 0, 0)
    unit = _unit()
    mem = ErrorFeedback()
    for step in range(3):
        unit.step = step
        x = _x(unit.size, step)
        e = mem.residual(unit.index, unit.size)
        before = x + e
        _, y = _roundtrip(comp, x, unit, e)
        np.testing.assert_allclose(y + e, before, rtol=0, atol=2e-6 * np.abs(before).max())


def test_stochastic_streams_depend_on_rank_step_and_seed():
    unit = _unit()
    x = _x(unit.size)
    outs = {}
    for seed, rank, step in [(0, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 0)]:
        comp, _ = build_compressor("qsgd:bits=4")
        comp.setup(2, rank, seed)
        unit.step = step
        outs.setdefault((seed, rank, step), []).append(comp.compress(x, unit))
    np.testing.assert_array_equal(*outs[(0, 0, 0)])
    keys = list(outs)
    for a in keys:
        for b in keys:
            if a != b:
                assert not np.array_equal(outs[a][0], outs[b][0])


def test_topk_layer_scope_keeps_every_tensor():
    comp, _ = build_compressor("topk:ratio=0.01")
    unit = _unit()
    x = _x(unit.size)
    x[:640] *= 100  # the first tensor dominates: bucket scope would take only from it
    _, y = _roundtrip(comp, x, unit)
    for off, shape in unit.tensors:
        assert np.count_nonzero(y[off:off + int(np.prod(shape))]) >= 1
    comp_b, _ = build_compressor("topk:ratio=0.01,scope=bucket")
    _, yb = _roundtrip(comp_b, x, unit)
    assert np.count_nonzero(yb[640:]) == 0


def test_randomk_indices_shared_by_ranks():
    unit = _unit()
    a, _ = build_compressor("randomk:ratio=0.1")
    b, _ = build_compressor("randomk:ratio=0.1")
    a.setup(2, 0, 5)
    b.setup(2, 1, 5)
    np.testing.assert_array_equal(a.indices(unit), b.indices(Unit(0, unit.size, unit.tensors)))


def test_powersgd_exact_for_low_rank_and_state():
    comp, _ = build_compressor("powersgd:rank=2")
    comp.setup(1, 0, 0)
    rng = np.random.default_rng(0)
    m = (rng.standard_normal((30, 2)) @ rng.standard_normal((2, 50))).astype(np.float32)
    unit = Unit(0, m.size, [(0, m.shape)])
    _, y = _roundtrip(comp, m.ravel(), unit)
    np.testing.assert_allclose(y, m.ravel(), atol=1e-4 * np.abs(m).max())
    state = comp.state_dict()
    assert set(state["q"]) == {"u0_0"} and state["q"]["u0_0"].shape == (50, 2)
    other, _ = build_compressor("powersgd:rank=2")
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.qs["u0_0"], state["q"]["u0_0"])
    p = orthonormalize(rng.standard_normal((20, 3)).astype(np.float32))
    np.testing.assert_allclose(p.T @ p, np.eye(3), atol=1e-5)


def test_fp16_prescale_avoids_overflow():
    comp, _ = build_compressor("fp16")
    comp.setup(4, 0, 0)
    unit = Unit(0, 4, [(0, (4,))])
    x = np.full(4, 30000.0, np.float32)
    payloads = [comp.compress(x, unit) for _ in range(4)]
    summed = np.sum([p.astype(np.float32) for p in payloads], axis=0).astype(np.float16)
    assert np.all(np.isfinite(summed))
    out = np.zeros(4, np.float32)
    comp.decompress_add(summed, out, 0.25, unit)
    np.testing.assert_allclose(out, 30000.0, rtol=1e-3)


def test_error_feedback_state_round_trip():
    mem = ErrorFeedback()
    mem.residual(3, 5)[:] = 1.5
    other = ErrorFeedback()
    other.load_state_dict(mem.state_dict())
    np.testing.assert_array_equal(other.residual(3, 5), np.full(5, 1.5, np.float32))


@pytest.mark.parametrize("spec", ALL)
def test_twin_kernels_give_the_same_payloads(spec, monkeypatch):
    """The compressors on the numpy twins (DTNN_KERNELS=numpy) decode to the same
    values as on the compiled kernels (up to the last bits of the norms)."""
    from dtnn.compress import kernels as K
    from dtnn.compress import twins
    unit = _unit()
    x = _x(unit.size, 3)
    comp, _ = build_compressor(spec)
    comp.setup(2, 1, 0)
    _, y_compiled = _roundtrip(comp, x, unit)
    for name in twins.KERNELS:
        monkeypatch.setattr(K, name, getattr(twins, name))
    comp, _ = build_compressor(spec)
    comp.setup(2, 1, 0)
    _, y_twin = _roundtrip(comp, x, unit)
    np.testing.assert_allclose(y_twin, y_compiled, rtol=1e-5, atol=1e-6 * np.abs(x).max())
