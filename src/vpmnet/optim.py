"""Optimisation: IRRA's per-parameter learning-rate groups, torch-exact Adam/AdamW, and warm-up + cosine."""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from vpmnet.config import TrainConfig


def lr_multipliers(names: Sequence[str], cfg: TrainConfig) -> List[Tuple[float, float]]:
    """(lr multiplier, weight decay) per parameter, by IRRA's rules applied in order (reference notes §1d).

    Randomly initialised cross-modal parts get `lr_factor`; biases get `bias_lr_factor` and
    `weight_decay_bias` (overriding the cross-modal factor); the classifier and MLM head get `lr_factor`.
    LayerNorm scales (`gamma`/`beta`) count as weights and biases like torch's `weight`/`bias`.
    """
    groups = []
    for name in names:
        lr, wd = 1.0, cfg.weight_decay
        if "cross" in name:
            lr = cfg.lr_factor
        if name.endswith("bias") or name.endswith(".beta"):
            lr, wd = cfg.bias_lr_factor, cfg.weight_decay_bias
        if "classifier" in name or "mlm_head" in name:
            lr = cfg.lr_factor
        groups.append((lr, wd))
    return groups


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Base learning rate at global `step`: linear warm-up from `warmup_factor*lr`, then cosine to `min_lr`.

    Evaluated per step (IRRA steps per epoch; per-step is smoother and equals it at epoch boundaries).
    """
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        alpha = step / warmup
        return cfg.lr * (cfg.warmup_factor * (1 - alpha) + alpha)
    if cfg.scheduler == "constant":
        return cfg.lr
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


_adam_update = ops.MultitypeFuncGraph("adam_update")


@_adam_update.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Bool",
                       "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _update(lr, beta1, beta2, eps, bias1, bias2_sqrt, decoupled, scale, decay, param, m, v, grad):
    grad = grad.astype(ms.float32)
    p = param.astype(ms.float32)
    lr = lr * scale
    if not decoupled:
        grad = grad + decay * p      # Adam's coupled L2 (torch.optim.Adam weight_decay)
    m = ops.assign(m, beta1 * m + (1 - beta1) * grad)
    v = ops.assign(v, beta2 * v + (1 - beta2) * grad * grad)
    if decoupled:
        p = p * (1 - lr * decay)     # AdamW
    # torch's arrangement: one full-size division per parameter, the bias corrections folded into scalars.
    p = p - (lr / bias1) * m / (ops.sqrt(v) / bias2_sqrt + eps)
    return ops.assign(param, p.astype(param.dtype))


class Adam(nn.Cell):
    """torch.optim.Adam / AdamW semantics (bias-corrected), with a per-parameter lr multiplier and decay.

    `construct(grads, lr)` applies one step at base learning rate `lr`. MindSpore's `nn.AdamWeightDecay`
    has no bias correction (reference notes §3.3), hence this cell.
    """

    def __init__(self, params, multipliers: Sequence[Tuple[float, float]], betas=(0.9, 0.999), eps=1e-8,
                 decoupled: bool = True):
        super().__init__()
        self.parameters = ParameterTuple(params)
        self.exp_avg = self.parameters.clone(prefix="exp_avg", init="zeros")
        self.exp_avg_sq = self.parameters.clone(prefix="exp_avg_sq", init="zeros")
        self.step = Parameter(Tensor(0, ms.int32), name="optimizer_step", requires_grad=False)
        self.scales = tuple(Tensor(s, ms.float32) for s, _ in multipliers)
        self.decays = tuple(Tensor(d, ms.float32) for _, d in multipliers)
        self.beta1 = Tensor(betas[0], ms.float32)
        self.beta2 = Tensor(betas[1], ms.float32)
        self.eps = Tensor(eps, ms.float32)
        self.decoupled = decoupled
        self.hyper_map = ops.HyperMap()

    def construct(self, grads, lr):
        step = ops.assign_add(self.step, ops.ones((), ms.int32))
        t = step.astype(ms.float32)
        bias1 = 1 - ops.pow(self.beta1, t)
        bias2_sqrt = ops.sqrt(1 - ops.pow(self.beta2, t))
        update = ops.partial(_adam_update, lr, self.beta1, self.beta2, self.eps, bias1, bias2_sqrt, self.decoupled)
        return self.hyper_map(update, self.scales, self.decays, self.parameters, self.exp_avg, self.exp_avg_sq, grads)


def build_optimizer(model: nn.Cell, cfg: TrainConfig) -> Adam:
    params = model.trainable_params()
    return Adam(params, lr_multipliers([p.name for p in params], cfg), tuple(cfg.betas), cfg.eps,
                decoupled=cfg.optimizer == "adamw")
