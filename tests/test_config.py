"""Config schema: inheritance, overrides, typed coercion, and errors that point at the mistake."""
import glob
import os

import pytest

from vpmnet.config import ConfigError, dotted_keys, load_config, parse_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))


def test_every_shipped_config_resolves():
    assert len(CONFIGS) >= 17
    for path in CONFIGS:
        load_config(path)


def test_inheritance_and_paper_recipe():
    cfg = load_config(os.path.join(ROOT, "configs", "vpmnet_icfg.yaml"))
    assert cfg.data.dataset == "ICFG-PEDES"
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.epochs, cfg.train.warmup_epochs) == ("adamw", 2e-5, 90, 10)
    assert cfg.train.lr * cfg.train.warmup_factor == pytest.approx(1e-6)
    assert cfg.model.image_size == (384, 128) and cfg.prompts.mode == "portion" and cfg.kan.enabled
    assert cfg.loss.names == ["sdm", "id", "mlm", "minp"]
    irra = load_config(os.path.join(ROOT, "configs", "irra_cuhk.yaml"))
    assert (irra.train.optimizer, irra.train.lr, irra.train.lr_factor, irra.train.epochs) == ("adam", 1e-5, 5.0, 60)
    assert irra.prompts.mode == "none" and not irra.kan.enabled


def test_overrides_are_typed(tmp_path):
    cfg = load_config(os.path.join(ROOT, "configs", "cpu_smoke.yaml"),
                      ["train.epochs=3", "model.image_size=[64,32]", "loss.names=sdm+id", "loss.weights={id: 0.5}",
                       "data.root=/x y", "kan.enabled=false"])
    assert cfg.train.epochs == 3 and cfg.model.image_size == (64, 32)
    assert cfg.loss.names == ["sdm", "id"] and cfg.loss.weight("id") == 0.5 and cfg.loss.weight("sdm") == 1.0
    assert cfg.data.root == "/x y" and cfg.kan.enabled is False
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "did you mean train.epochs"),
    ("data.datset=x", "did you mean data.dataset"),
    ("train.epochs=three", "'train.epochs' must be int"),
    ("train.lr=fast", "'train.lr' must be float"),
    ("prompts.mode=middle", "choose one of none, shallow, deep, tail, portion"),
    ("loss.names=[sdm,foo]", "loss 'foo' is unknown"),
    ("model.image_size=[384]", "list of 2 values"),
    ("seed", "key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_base_: {os.path.join(ROOT, 'configs', 'irra_base.yaml')}\ntrain:\n  batchsize: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'train.batchsize'; did you mean train.batch_size"):
        load_config(str(bad))


def test_base_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.yaml"))


def test_round_trip_through_dict():
    cfg = load_config(os.path.join(ROOT, "configs", "vpmnet_cuhk.yaml"))
    from vpmnet.config import Config, from_dict

    assert from_dict(Config, cfg.to_dict()) == cfg
    assert "model.clip.vision.width" in dotted_keys() and "loss.minp.reg" in dotted_keys()
