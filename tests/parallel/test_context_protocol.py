"""The typed ``Context`` protocol and the one path from ``[dist]`` to the reducer."""
import pytest

from dtnn.config import load_config
from dtnn.errors import ConfigError
from dtnn.parallel.context import Context, MismatchedContext, SerialContext
from dtnn.parallel.options import DistOptions


def test_serial_contexts_implement_the_protocol():
    assert isinstance(SerialContext(), Context)
    assert isinstance(MismatchedContext("x"), Context)
    assert not isinstance(object(), Context)


def test_contexts_no_longer_have_a_configure_side_channel():
    assert not hasattr(SerialContext(), "configure")
    from dtnn.parallel.mpi import MPIContext
    assert not hasattr(MPIContext, "configure")


def test_dist_section_is_resolved_once_by_the_config(monkeypatch):
    monkeypatch.setenv("DTNN_DIST_MODE", "blocking")
    monkeypatch.setenv("DTNN_BUCKET_MB", "0.5")
    cfg = load_config(None, ["dist.bucket_mb=2"])
    assert isinstance(cfg.dist, DistOptions)
    # environment over the defaults, explicit config over the environment
    assert cfg.dist.mode == "blocking" and cfg.dist.bucket_mb == 2.0
    monkeypatch.setenv("DTNN_DIST_MODE", "sideways")
    with pytest.raises(ConfigError, match="dist.mode"):
        load_config(None, [])


def test_serial_make_reducer_checks_options_and_returns_none():
    from dtnn.models import build_model
    m = build_model("simplecnn", (1, 8, 8), 3, filters=2, hidden=4)
    ctx = SerialContext()
    assert ctx.make_reducer(m, DistOptions()) is None
    assert ctx.make_reducer(m, {"bucket_mb": 1}) is None
    with pytest.raises(ConfigError):
        ctx.make_reducer(m, {"mode": "sideways"})
    with pytest.raises(ConfigError):
        ctx.make_reducer(m, DistOptions(mode="sideways"))
