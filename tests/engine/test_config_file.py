"""The typed config: TOML files, --set overrides, errors, round trip."""
import tomllib

import pytest

from dtnn.config import Config, apply_dict, load_config, parse_override, to_toml
from dtnn.errors import ConfigError


def test_toml_file_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "lenet"\n[train]\nepochs = 4\n[optim]\nlr = 1\n')
    cfg = load_config(str(path), ["train.batch_size=32", "model.options.padding=0",
                                  "data.source=digits"])
    assert cfg.model.name == "lenet" and cfg.train.epochs == 4
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.batch_size == 32 and cfg.model.options == {"padding": 0}
    assert cfg.data.source == "digits"


def test_set_merges_into_tables():
    cfg = load_config(None, ["model.name=vgg11_bn", "model.options.width=0.5",
                             "model.options.hidden=32"])
    assert cfg.model.options == {"width": 0.5, "hidden": 32}


@pytest.mark.parametrize("override, words", [
    ("train.epoch=3", ["unknown key 'train.epoch'", "train.epochs"]),
    ("trian.epochs=3", ["unknown key 'trian'"]),
    ("train.epochs=three", ["'train.epochs' must be an integer"]),
    ("train.epochs=1.5", ["must be an integer"]),
    ("optim.nesterov=1", ["true or false"]),
    ("optim.lr=0", ["optim.lr must be > 0"]),
    ("noequals", ["expected key=value"]),
])
def test_bad_overrides_are_one_line_errors(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_bad_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config(str(missing))
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\nepochs = 3\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_config(str(broken))


def test_resolved_config_round_trips_through_toml():
    cfg = load_config(None, ["model.options.hidden=16", "optim.betas=[0.8, 0.9]",
                             "output.run_dir=\"a \\\"quoted\\\" dir\""])
    again = apply_dict(Config(), tomllib.loads(to_toml(cfg)), "round trip")
    assert again == cfg


def test_parse_override_values():
    assert parse_override("a.b=1") == {"a": {"b": 1}}
    assert parse_override("a.b=hello") == {"a": {"b": "hello"}}
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
