"""IRRA's implicit relation reasoning: masked caption tokens attend to image tokens and predict the masked words."""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from mindspore.common.initializer import Normal, initializer

from vpmnet.clip.transformer import LayerNorm, MultiheadAttention, QuickGELU, Transformer


class MLMHead(nn.Cell):
    """dense -> QuickGELU -> LayerNorm -> vocabulary logits."""

    def __init__(self, width: int, vocab_size: int, proj_std: float, fc_std: float):
        super().__init__()
        self.dense = nn.Dense(width, width, weight_init=Normal(fc_std))
        self.gelu = QuickGELU()
        self.ln = LayerNorm(width)
        self.fc = nn.Dense(width, vocab_size, weight_init=Normal(proj_std))

    def construct(self, x):
        return self.fc(self.ln(self.gelu(self.dense(x))))


class ImplicitRelationReasoning(nn.Cell):
    """One cross-attention (no residual, as IRRA), `depth` self-attention blocks, and the MLM head.

    Parameter names keep IRRA's words (`cross_attn`, `cross_modal_transformer`, `mlm_head`) because its
    learning-rate rule matches on them (reference notes §1d).
    """

    def __init__(self, width: int, depth: int, vocab_size: int, context_length: int = 77, positions: int = 0,
                 flash: bool = False):
        super().__init__()
        self.positions = positions if 0 < positions < context_length else 0
        self.position_index = ms.Tensor(np.arange(context_length, dtype=np.float32))
        heads = max(1, width // 64)
        scale = width ** -0.5
        proj_std, attn_std, fc_std = scale * (2 * depth) ** -0.5, scale, (2 * width) ** -0.5
        self.cross_attn = MultiheadAttention(width, heads, flash=flash)
        self.cross_modal_transformer = Transformer(width, depth, heads, flash=flash)
        self.ln_pre_t = LayerNorm(width)
        self.ln_pre_i = LayerNorm(width)
        self.ln_post = LayerNorm(width)
        self.mlm_head = MLMHead(width, vocab_size, proj_std, fc_std)
        attentions = [self.cross_attn] + [b.attn for b in self.cross_modal_transformer.resblocks]
        for attn in attentions:
            attn.in_proj_weight.set_data(_normal(attn.in_proj_weight.shape, attn_std))
            attn.out_proj.weight.set_data(_normal(attn.out_proj.weight.shape, proj_std))
        for block in self.cross_modal_transformer.resblocks:
            block.mlp[0].weight.set_data(_normal(block.mlp[0].weight.shape, fc_std))
            block.mlp[2].weight.set_data(_normal(block.mlp[2].weight.shape, proj_std))

    def construct(self, text_tokens, image_tokens, labels):
        """Masked caption tokens [B,L,D], image tokens [B,N,D], MLM labels [B,L] -> (logits [B,P,V], labels [B,P]).

        Only the masked positions reach the vocabulary projection, its dominant cost (512 x 49,408 per
        token): the first `positions` selected positions of each caption, in order (all L when 0). The loss
        equals IRRA's whenever a caption has at most `positions` masked tokens.
        """
        x = self.cross_attn(self.ln_pre_t(text_tokens), self.ln_pre_i(image_tokens))
        x = self.ln_post(self.cross_modal_transformer(x))
        if self.positions:
            length = labels.shape[1]
            # Selected positions rank first, earlier before later; unselected ones keep label 0 (ignored).
            key = (labels > 0).astype(ms.float32) * (2 * length) - self.position_index
            _, index = ops.topk(key, self.positions)
            labels = ops.gather_elements(labels, 1, index)
            x = ops.gather_elements(x, 1, ops.broadcast_to(index.expand_dims(-1), index.shape + (x.shape[2],)))
        return self.mlm_head(x), labels


def _normal(shape, std):
    return initializer(Normal(std), shape)
