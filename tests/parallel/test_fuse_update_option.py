"""dist.fuse_update: parsed from the config and the environment, checked (opt in)."""
import pytest

from dtnn.errors import ConfigError
from dtnn.parallel.options import DistOptions


def test_default_config_and_env():
    assert DistOptions.resolve({}, env={}).fuse_update is False   # opt in
    assert DistOptions.resolve({"fuse_update": "true"}, env={}).fuse_update is True
    assert DistOptions.resolve({}, env={"DTNN_FUSE_UPDATE": "1"}).fuse_update is True
    assert DistOptions.resolve({"fuse_update": "off"},
                               env={"DTNN_FUSE_UPDATE": "1"}).fuse_update is False


@pytest.mark.parametrize("bad", ["maybe", "2"])
def test_bad_value_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="dist.fuse_update") as err:
        DistOptions.resolve({"fuse_update": bad}, env={})
    assert "\n" not in str(err.value)
