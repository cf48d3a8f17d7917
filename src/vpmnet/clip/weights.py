"""Loading converted CLIP weights into MindSpore cells: strict key and shape checks, position-grid resizing."""
from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mindspore import Tensor, nn

from vpmnet.clip.config import CLIPConfig
from vpmnet.clip.model import CLIP
from vpmnet.config import ConfigError, from_dict

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
POSITION_KEY = "visual.positional_embedding"
# Tokenizer files `convert-clip` may write; without any, the default OpenAI vocabulary is used.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
# Longest list of names an error message prints in full.
_MAX_LISTED = 40

State = Dict[str, np.ndarray]


class CheckpointError(ValueError):
    """A weight file that cannot be read or does not fit the model; the message names the file and the keys."""


def read_safetensors(path: str) -> State:
    """Every tensor of a safetensors file as NumPy arrays (no torch needed)."""
    from safetensors.numpy import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path}")
    try:
        return load_file(path)
    except Exception as exc:  # the Rust reader raises its own error types for truncated or garbled files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_config(folder: str) -> CLIPConfig:
    """The CLIPConfig stored in a converted folder's config.json."""
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {folder} a folder written by `vpmnet convert-clip`?")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a CLIP config must be a JSON object")
    try:
        return from_dict(CLIPConfig, data, source=path)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from exc


def _interpolation_matrix(old: int, new: int) -> np.ndarray:
    """[new, old] weights of 1-D linear interpolation with align_corners=False, as torch computes them."""
    matrix = np.zeros((new, old), np.float64)
    src = np.maximum((np.arange(new) + 0.5) * (old / new) - 0.5, 0.0)   # torch clamps below 0, not above
    low = np.minimum(np.floor(src).astype(int), old - 1)
    high = np.minimum(low + 1, old - 1)
    frac = src - low
    rows = np.arange(new)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def resize_position_embedding(posemb: np.ndarray, old_grid: Sequence[int], new_grid: Sequence[int]) -> np.ndarray:
    """Resize a ViT position embedding [1+gh*gw, W] to a new grid, keeping the CLS entry.

    Bilinear with align_corners=False and no antialiasing: PyTorch's `F.interpolate(mode="bilinear")`,
    which is what IRRA applies to CLIP's 14x14 grid for 384x128 inputs.
    """
    (old_h, old_w), (new_h, new_w) = tuple(old_grid), tuple(new_grid)
    if posemb.ndim != 2 or posemb.shape[0] != 1 + old_h * old_w:
        raise ValueError(f"position embedding of shape {posemb.shape} does not hold CLS + a {old_h}x{old_w} grid")
    grid = posemb[1:].reshape(old_h, old_w, -1).astype(np.float64)
    resized = np.einsum("ih,hwc,jw->ijc", _interpolation_matrix(old_h, new_h), grid,
                        _interpolation_matrix(old_w, new_w))
    return np.concatenate([posemb[:1], resized.reshape(new_h * new_w, -1).astype(posemb.dtype)])


def _listed(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def check_state(expected: Mapping[str, Tuple[int, ...]], state: Mapping[str, np.ndarray], source: str) -> None:
    """Raise CheckpointError listing every missing, unexpected and mis-shaped key of `state`."""
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k])}"
             for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing ({len(missing)}): {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected ({len(unexpected)}): {_listed(unexpected)}")
    if wrong:
        problems.append(f"wrong shape ({len(wrong)}): {'; '.join(wrong[:_MAX_LISTED])}")
    if problems:
        raise CheckpointError(f"{source}: the weights do not fit the model:\n  " + "\n  ".join(problems))


def _is_prompt(name: str) -> bool:
    # VPT prompt tokens live in the blocks' `prompt` slots; they are trained, never part of CLIP weights.
    return ".prompt." in name


def _read_source(source: str) -> Tuple[State, Optional[Tuple[int, int]], str]:
    """(state, vision grid of the file if its config is known, file name) of a converted folder or file."""
    folder, path = (source, os.path.join(source, WEIGHTS_FILE)) if os.path.isdir(source) \
        else (os.path.dirname(source), source)
    grid = None
    if os.path.isdir(source) or os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        grid = read_config(folder).vision.grid()
    return read_safetensors(path), grid, path


def load_clip_weights(clip: nn.Cell, source: Union[str, Mapping[str, np.ndarray]],
                      grid: Optional[Tuple[int, int]] = None) -> None:
    """Copy CLIP weights into `clip` (a `CLIP` cell, e.g. `vpmnet_model.clip`), strictly.

    `source` is a folder written by `vpmnet convert-clip`, a safetensors file, or a name -> array mapping
    with MindSpore names. `grid` is the vision position grid of the source; by default it comes from the
    folder's config.json. When it differs from the cell's grid, the position embedding is resized
    bilinearly. Prompt parameters are skipped; anything else missing, unexpected or mis-shaped is an error.
    """
    if isinstance(source, Mapping):
        state, name = dict(source), "state dict"
    else:
        state, file_grid, name = _read_source(source)
        grid = grid or file_grid
    target = clip.config.vision.grid(clip.image_size)
    if grid is not None and tuple(grid) != tuple(target) and POSITION_KEY in state:
        state[POSITION_KEY] = resize_position_embedding(state[POSITION_KEY], grid, target)
    params = {n: p for n, p in clip.parameters_and_names() if not _is_prompt(n)}
    check_state({n: tuple(p.shape) for n, p in params.items()}, state, name)
    for n, p in params.items():
        p.set_data(Tensor(np.ascontiguousarray(state[n]), dtype=p.dtype))


def load_clip(path: str, image_size: Optional[Tuple[int, int]] = None):
    """(CLIP cell, tokenizer) from a folder written by `vpmnet convert-clip`.

    `image_size` (H, W) defaults to the checkpoint's; another size resizes the vision position grid.
    """
    from vpmnet.clip.tokenizer import load_tokenizer  # training code loads weights without the tokenizer

    if not os.path.isdir(path):
        raise FileNotFoundError(f"CLIP folder not found: {path} (create it with `vpmnet convert-clip`)")
    cfg = read_config(path)
    clip = CLIP(cfg, image_size=tuple(image_size) if image_size else None)
    load_clip_weights(clip, path)
    clip.set_train(False)
    has_vocab = any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES)
    return clip, load_tokenizer(path if has_vocab else None, context_length=cfg.text.context_length)
