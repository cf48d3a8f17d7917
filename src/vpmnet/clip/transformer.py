"""CLIP's pre-LN residual attention blocks, with an optional VPT prompt slot per block."""
from __future__ import annotations

from typing import Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from vpmnet.prompts import PromptSlot


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the activation dtype (CLIP, DESIGN §10); torch's epsilon."""

    def __init__(self, width: int):
        super().__init__((width,), begin_norm_axis=-1, begin_params_axis=-1, epsilon=1e-5)

    def construct(self, x):
        return super().construct(x.astype(ms.float32)).astype(x.dtype)


class QuickGELU(nn.Cell):
    def construct(self, x):
        return x * ops.sigmoid(1.702 * x)


def linear(x, weight, bias=None):
    """x [..., in] @ weight[out, in].T + bias, as one 2-D matmul.

    `ops.matmul` of a 3-D activation with a 2-D weight broadcasts the weight to every batch item and runs
    a batched matmul; on the CPU that copy cost as much as the product (measured).
    """
    out = ops.MatMul(transpose_b=True)(x.reshape(-1, x.shape[-1]), weight.astype(x.dtype))
    if bias is not None:
        out = ops.bias_add(out, bias.astype(x.dtype))
    return out.reshape(x.shape[:-1] + (weight.shape[0],))


class MultiheadAttention(nn.Cell):
    """Multi-head attention with OpenAI's packed `in_proj_weight` layout, batch-first.

    Queries and keys/values may differ (the IRR cross-attention); `attn_mask` is additive.
    """

    def __init__(self, width: int, heads: int, flash: bool = False):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.width, self.heads, self.head_dim = width, heads, width // heads
        self.scale = self.head_dim ** -0.5
        std = width ** -0.5
        self.in_proj_weight = Parameter(initializer(Normal(std), (3 * width, width), ms.float32), name="in_proj_weight")
        self.in_proj_bias = Parameter(initializer("zeros", (3 * width,), ms.float32), name="in_proj_bias")
        self.out_proj = nn.Dense(width, width, weight_init=Normal(std), bias_init="zeros")
        # Ascend's fused kernel; the CPU has none (reference notes §3.2).
        self.flash = flash

    def _project(self, x, index: int):
        start, stop = index * self.width, (index + 1) * self.width
        return linear(x, self.in_proj_weight[start:stop], self.in_proj_bias[start:stop])

    def _split_heads(self, x):
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.heads, self.head_dim).transpose(0, 2, 1, 3)

    def construct(self, query, key_value=None, attn_mask=None):
        batch, length, _ = query.shape
        if key_value is None:
            # One matmul for q, k and v: the packed layout exists for this. unstack, not qkv[0..2]: on the
            # CPU, three StridedSlices of the transposed tensor cost twice the matmul itself (measured).
            qkv = linear(query, self.in_proj_weight, self.in_proj_bias)
            qkv = qkv.reshape(batch, length, 3, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = ops.unstack(qkv, 0)
        else:
            q = self._split_heads(self._project(query, 0))
            k = self._split_heads(self._project(key_value, 1))
            v = self._split_heads(self._project(key_value, 2))
        if self.flash:
            mask = None if attn_mask is None else (attn_mask < 0).astype(ms.uint8)
            out = ops.flash_attention_score(q, k, v, self.heads, attn_mask=mask, scalar_value=self.scale,
                                            input_layout="BNSD")
        else:
            scores = ops.BatchMatMul(transpose_b=True)(q * self.scale, k)
            if attn_mask is not None:
                scores = scores + attn_mask.astype(scores.dtype)
            out = ops.BatchMatMul()(ops.softmax(scores.astype(ms.float32), axis=-1).astype(q.dtype), v)
        out = out.transpose(0, 2, 1, 3).reshape(batch, length, self.width)
        return self.out_proj(out)


class ResidualAttentionBlock(nn.Cell):
    """x + attn(ln_1(x)); x + mlp(ln_2(x)), after placing this layer's prompts if it has a slot."""

    def __init__(self, width: int, heads: int, prompt: Optional[PromptSlot] = None, flash: bool = False):
        super().__init__()
        self.prompt = prompt
        self.ln_1 = LayerNorm(width)
        self.attn = MultiheadAttention(width, heads, flash=flash)
        self.ln_2 = LayerNorm(width)
        self.mlp = nn.SequentialCell([
            nn.Dense(width, 4 * width, weight_init=Normal((2 * width) ** -0.5)),
            QuickGELU(),
            nn.Dense(4 * width, width, weight_init=Normal(width ** -0.5)),
        ])

    def construct(self, x, attn_mask=None):
        if self.prompt is not None:
            x = self.prompt(x)
        x = x + self.attn(self.ln_1(x), None, attn_mask)
        return x + self.mlp(self.ln_2(x))


def causal_mask(length: int) -> Tensor:
    """Additive mask: position t sees positions <= t."""
    return Tensor(np.triu(np.full((length, length), -np.inf, np.float32), 1))


class Transformer(nn.Cell):
    """A stack of residual attention blocks; `prompts[i]` is layer i's PromptSlot or None."""

    def __init__(self, width: int, layers: int, heads: int, causal_length: int = 0,
                 prompts: Optional[Sequence[Optional[PromptSlot]]] = None, flash: bool = False):
        super().__init__()
        prompts = list(prompts) if prompts is not None else [None] * layers
        self.resblocks = nn.CellList([ResidualAttentionBlock(width, heads, prompts[i], flash) for i in range(layers)])
        self.prompt_length = next((p.length for p in prompts if p is not None), 0)
        first = next((i for i, p in enumerate(prompts) if p is not None), layers)
        # Layers from the first prompted one on see `prompt_length` more tokens, so they need a larger mask.
        self.grown = [i >= first for i in range(layers)]
        self.causal = causal_length > 0
        if self.causal:
            self.mask = causal_mask(causal_length)
            self.mask_grown = causal_mask(causal_length + self.prompt_length)

    def construct(self, x):
        for i, block in enumerate(self.resblocks):
            mask = None
            if self.causal:
                mask = self.mask_grown if self.grown[i] else self.mask
            x = block(x, mask)
        return x
