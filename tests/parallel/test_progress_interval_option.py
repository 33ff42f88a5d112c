"""dist.progress_interval: parsed from the config and the environment, checked."""
import pytest

from dtnn.errors import ConfigError
from dtnn.parallel.options import DistOptions


def test_default_config_and_env():
    assert DistOptions.resolve({}, env={}).progress_interval == 0.0
    assert DistOptions.resolve({"progress_interval": "2e-4"}, env={}).progress_interval == 2e-4
    env = {"DTNN_PROGRESS_INTERVAL": "0.001"}
    assert DistOptions.resolve({}, env=env).progress_interval == pytest.approx(1e-3)


@pytest.mark.parametrize("bad", ["-1", "soon"])
def test_bad_value_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="dist.progress_interval"):
        DistOptions.resolve({"progress_interval": bad}, env={})
