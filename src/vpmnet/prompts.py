"""Visual prompt tuning (VPT): which layers get prompts, and the cell that inserts or replaces them."""
from __future__ import annotations

import math
from typing import List, Optional

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Uniform, initializer

# Number of trailing layers prompted by the partial-depth modes (DESIGN §5).
_TRAILING = {"tail": 4, "portion": 8}


def prompted_layers(mode: str, num_layers: int) -> List[int]:
    """Indices of the transformer layers that receive fresh prompts in `mode`."""
    if mode == "none":
        return []
    if mode == "shallow":
        return [0]
    if mode == "deep":
        return list(range(num_layers))
    if mode in _TRAILING:
        return list(range(max(0, num_layers - _TRAILING[mode]), num_layers))
    raise ValueError(f"unknown prompt mode {mode!r}; choose none, shallow, deep, tail or portion")


def prompt_init_bound(width: int, patch_size: int = 16) -> float:
    """VPT's uniform bound: the Xavier bound of a 3·p·p -> width patch embedding."""
    return math.sqrt(6.0 / (3 * patch_size * patch_size + width))


class PromptSlot(nn.Cell):
    """`length` learnable tokens placed right after the first token (CLS or SOT).

    The first prompted layer inserts them (the sequence grows by `length`); each later prompted layer
    replaces the previous layer's prompt outputs, so the sequence keeps its length (DESIGN §5).
    Prompts carry no positional embedding.
    """

    def __init__(self, length: int, width: int, insert: bool, dropout: float = 0.0, patch_size: int = 16):
        super().__init__()
        bound = prompt_init_bound(width, patch_size)
        self.embedding = Parameter(initializer(Uniform(bound), (length, width), ms.float32), name="embedding")
        self.length = length
        self.insert = insert
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else None

    def construct(self, x):
        batch = x.shape[0]
        prompts = ops.broadcast_to(self.embedding.astype(x.dtype).expand_dims(0), (batch, self.length, x.shape[2]))
        if self.dropout is not None:
            prompts = self.dropout(prompts)
        rest = x[:, 1:] if self.insert else x[:, 1 + self.length:]
        return ops.concat((x[:, :1], prompts, rest), axis=1)


def strip_prompts(tokens, length: int):
    """Drop the prompt outputs so token positions line up with the encoder's inputs again."""
    if length == 0:
        return tokens
    return ops.concat((tokens[:, :1], tokens[:, 1 + length:]), axis=1)


def build_prompt_slots(mode: str, num_layers: int, length: int, width: int, dropout: float,
                       patch_size: int = 16) -> List[Optional[PromptSlot]]:
    """One entry per layer: a PromptSlot where that layer is prompted, None elsewhere."""
    layers = prompted_layers(mode, num_layers) if length > 0 else []
    return [PromptSlot(length, width, insert=(i == layers[0]), dropout=dropout, patch_size=patch_size)
            if i in layers else None for i in range(num_layers)]
