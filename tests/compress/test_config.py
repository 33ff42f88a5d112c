"""``--compress SPEC`` and the dist.compress* config keys."""
import argparse

import pytest

from dtnn.cli.train import add_arguments, resolve_config
from dtnn.config import explicit_dist_options, load_config, to_toml
from dtnn.errors import ConfigError


def _args(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_compress_flag_sets_dist_compress():
    cfg = resolve_config(_args("--compress", "powersgd:rank=2,start_step=100"))
    assert cfg.dist.compress == "powersgd:rank=2,start_step=100"
    # (cfg.dist also holds what DTNN_* variables set, e.g. the suite's DTNN_STALL_TIMEOUT)
    assert explicit_dist_options(cfg)["compress"] == "powersgd:rank=2,start_step=100"
    assert 'compress = "powersgd:rank=2,start_step=100"' in to_toml(cfg)


def test_compress_keys_in_config():
    cfg = load_config(None, ['dist.compress="topk:ratio=0.01,scope=global"',
                             "dist.min_compress_size=64", "dist.compress_warmup_steps=10"])
    assert cfg.dist.min_compress_size == 64 and cfg.dist.compress_warmup_steps == 10
    with pytest.raises(ConfigError):
        load_config(None, ['dist.compress="topk:ratio=5"'])
    with pytest.raises(ConfigError):
        resolve_config(_args("--compress", "nonsense"))
