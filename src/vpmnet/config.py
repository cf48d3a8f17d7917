"""Experiment configuration: typed dataclasses, YAML files with `_base_` inheritance, `key=value` overrides."""
from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple, Union, get_args, get_origin, get_type_hints

import yaml

from vpmnet.clip.config import CLIPConfig


@dataclass
class ModelConfig:
    pretrained: str = ""            # folder written by `vpmnet convert-clip`; empty = random init from `clip`
    image_size: Tuple[int, int] = (384, 128)   # H, W (DESIGN §1)
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    cmt_depth: int = 4              # IRR cross-modal transformer layers
    mlm_positions: int = 24         # masked positions per caption scored by the MLM head; 0 = all (as IRRA)
    masked_global_text: bool = True  # IRRA feeds the MLM-masked caption to SDM/ID too (DESIGN §4)
    attention: str = "vanilla"      # vanilla | flash (Ascend only)


@dataclass
class PromptConfig:
    mode: str = "none"              # none | shallow | deep | tail | portion (DESIGN §5)
    vision_length: int = 8
    text_length: int = 8
    dropout: float = 0.0
    freeze: str = "prompted"        # prompted | backbone | none


@dataclass
class KANConfig:
    enabled: bool = False
    hidden: int = 64
    grid_size: int = 5
    spline_order: int = 3
    grid_range: Tuple[float, float] = (-1.0, 1.0)


@dataclass
class MINPConfig:
    alpha: float = 1.0
    beta: float = 2.0
    reg: float = 1e-4               # λ of the L2 penalty on the projected features
    form: str = "similarity"        # similarity | identity | literal (DESIGN §7)


@dataclass
class LossConfig:
    names: List[str] = field(default_factory=lambda: ["sdm", "id", "mlm"])
    weights: Dict[str, float] = field(default_factory=dict)   # missing names weigh 1.0
    logit_scale: float = 50.0       # 1 / temperature, fixed (IRRA)
    minp: MINPConfig = field(default_factory=MINPConfig)

    def weight(self, name: str) -> float:
        return float(self.weights.get(name, 1.0))


@dataclass
class DataConfig:
    dataset: str = "synthetic"      # CUHK-PEDES | ICFG-PEDES | RSTPReid | synthetic
    root: str = "data/synthetic"
    missing_images: str = "error"   # error | skip
    text_length: int = 77
    img_aug: bool = True            # IRRA's flip / pad-crop / random erasing
    affine_aug: bool = False        # the paper's random affine augmentation
    sampler: str = "random"         # random | identity
    num_instance: int = 4           # K of the identity sampler
    num_workers: int = 2
    mlm_probability: float = 0.15


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    optimizer: str = "adam"         # adam (coupled L2, IRRA) | adamw (decoupled, the paper)
    lr: float = 1e-5
    lr_factor: float = 5.0          # cross-modal module, classifier and MLM head (IRRA)
    bias_lr_factor: float = 2.0
    weight_decay: float = 4e-5
    weight_decay_bias: float = 0.0
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_epochs: int = 5
    warmup_factor: float = 0.1      # first warm-up lr = warmup_factor * lr
    scheduler: str = "cosine"       # cosine | constant
    min_lr: float = 0.0
    grad_clip: float = 0.0          # global-norm clip; 0 disables
    precision: str = "auto"         # auto (fp32 on CPU, bf16 on Ascend) | fp32 | bf16 | fp16
    log_every: int = 20
    max_nonfinite: int = 10         # stop after this many non-finite losses in a row
    max_steps: int = 0              # stop early after this many steps in total; 0 = no limit
    checkpoint_every: int = 0       # also write `last` every N steps inside an epoch; 0 = at epoch ends


@dataclass
class EvalConfig:
    every: int = 1                  # epochs between evaluations
    split: str = "val"              # split that selects `best` (IRRA used test)
    batch_size: int = 64
    i2t: bool = False


@dataclass
class Config:
    seed: int = 1
    device: str = "auto"            # auto | CPU | Ascend
    mode: str = "graph"             # graph | pynative
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    kan: KANConfig = field(default_factory=KANConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def dotted_keys(cls=Config, prefix: str = "") -> List[str]:
    """Every settable key of a config dataclass, in dotted form."""
    keys = []
    for name, hint in get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            keys.extend(dotted_keys(hint, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


def _unknown_key(key: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(key, dotted_keys(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"{source}: unknown config key '{key}'{hint}")


def _coerce(value, hint, key: str, source: str):
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return from_dict(hint, value, key + ".", source)
    if origin in (tuple, Tuple):
        args = get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{source}: '{key}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
    if origin in (list, List):
        (item,) = get_args(hint)
        if isinstance(value, str):
            value = [v for v in value.replace("+", ",").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_coerce(v, item, key, source) for v in value]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        _, item = get_args(hint)
        return {str(k): _coerce(v, item, f"{key}.{k}", source) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads `1e-4` (no dot) as a string; users mean the number.
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{source}: '{key}' must be {getattr(hint, '__name__', hint)}, got {value!r}")


def from_dict(cls, data: Dict[str, Any], prefix: str = "", source: str = "config"):
    """Build dataclass `cls` from a nested mapping; unknown keys and wrong types are errors."""
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            raise _unknown_key(prefix + key, source)
        kwargs[key] = _coerce(value, hints[key], prefix + key, source)
    return cls(**kwargs)


def _merge(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "weights":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str, _seen: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config, resolving `_base_` (a path or list of paths relative to the file)."""
    path = os.path.abspath(path)
    if path in _seen:
        raise ConfigError(f"{path}: `_base_` cycle through {' -> '.join(_seen)}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    bases = data.pop("_base_", [])
    merged: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _merge(merged, read_yaml(os.path.join(os.path.dirname(path), base), (*_seen, path)))
    return _merge(merged, data)


def parse_overrides(pairs: Sequence[str]) -> Dict[str, Any]:
    """`a.b=1 c=[1,2]` -> nested mapping; values are parsed as YAML scalars or lists."""
    out: Dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' is not of the form key=value")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def load_config(path: Union[str, None] = None, overrides: Sequence[str] = ()) -> Config:
    """The resolved config of a YAML file (or the defaults) with `key=value` overrides applied."""
    data = read_yaml(path) if path else {}
    source = path or "defaults"
    try:
        data_cfg = from_dict(Config, data, source=source)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    if overrides:
        merged = _merge(data_cfg.to_dict(), parse_overrides(overrides))
        data_cfg = from_dict(Config, merged, source="command-line override")
    validate(data_cfg)
    return data_cfg


LOSS_NAMES = ("sdm", "itc", "id", "mlm", "minp")
MINP_FORMS = ("similarity", "identity", "literal")
_CHOICES = {
    "device": ("auto", "CPU", "Ascend"),
    "mode": ("graph", "pynative"),
    "model.attention": ("vanilla", "flash"),
    "prompts.mode": ("none", "shallow", "deep", "tail", "portion"),
    "prompts.freeze": ("prompted", "backbone", "none"),
    "loss.minp.form": MINP_FORMS,
    "data.missing_images": ("error", "skip"),
    "data.sampler": ("random", "identity"),
    "train.optimizer": ("adam", "adamw"),
    "train.scheduler": ("cosine", "constant"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "eval.split": ("val", "test"),
}


def get_key(cfg: Config, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(cfg: Config) -> None:
    for key, choices in _CHOICES.items():
        value = get_key(cfg, key)
        if value not in choices:
            raise ConfigError(f"'{key}' is {value!r}; choose one of {', '.join(choices)}")
    for name in list(cfg.loss.names) + list(cfg.loss.weights):
        if name not in LOSS_NAMES:
            raise ConfigError(f"loss '{name}' is unknown; choose from {', '.join(LOSS_NAMES)}")
    if cfg.train.batch_size < 2:
        raise ConfigError("'train.batch_size' must be at least 2 for the contrastive losses")
    if cfg.data.sampler == "identity" and cfg.train.batch_size % cfg.data.num_instance:
        raise ConfigError("'train.batch_size' must be a multiple of 'data.num_instance' for the identity sampler")


def save_config(cfg: Config, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
