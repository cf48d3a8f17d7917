"""Training losses (SDM, ITC, ID, MLM, MINP) as plain functions on MindSpore tensors, thin Cells, and a composer.

Every loss casts its inputs to fp32 and returns a 0-d fp32 tensor; all run in PyNative and graph mode.

- `sdm_loss`, `itc_loss`, `id_loss`, `mlm_loss`: IRRA's objectives (reference irra_and_peers.md §1c).
- `minp_loss`: the MINP focal loss of DESIGN §7 plus λ·mean(‖t‖² + ‖v‖²) on the un-normalised features.
- `SDMLoss`, `ITCLoss`, `IDLoss`, `MLMLoss`, `MINPLoss`: Cells holding the hyper-parameters.
- `LossComposer(names, weights, ...)`: the model's loss head. Names and weights are fixed at construction
  (`LossComposer.from_config(config.loss)` reads a `LossConfig`), and
  `composer(image_feats, text_feats, pids, image_logits, text_logits, mlm_scores, mlm_labels)`
  returns `(total, terms)`, where `terms` is a tuple of the weighted scalars in `names` order. Inputs that no
  selected loss uses may be None. The term selection unrolls at compile time, so it is graph-compilable.
"""
import mindspore as ms
from mindspore import nn, ops

from vpmnet.config import LOSS_NAMES, MINP_FORMS

__all__ = [
    "sdm_loss", "itc_loss", "id_loss", "mlm_loss", "minp_loss",
    "SDMLoss", "ITCLoss", "IDLoss", "MLMLoss", "MINPLoss", "LossComposer",
    "LOSS_NAMES", "MINP_FORMS",
]


# Floor of the focal factor's base 1 - p: keeps d/dx x^β finite at p = 1 for any β >= 0 (including 0 < β < 1);
# the value it replaces is multiplied by log p = 0 there, so the loss is unchanged.
_FOCAL_FLOOR = 1e-12
# Floor of (S + 1) / 2 in the `literal` MINP form (kan_vpt_focal.md §4.2), so log p stays finite at S = -1.
_LITERAL_FLOOR = 1e-6
# Subtracted from the logits of non-positives to remove them from a log-sum-exp. Logits are cosines times
# the logit scale, far smaller than this, so exp() underflows to exactly 0 in fp32.
_MASK_OFFSET = 1e4


def _fp32(x):
    return x.astype(ms.float32)


def _l2_normalize(x, eps=1e-12):
    """x / max(‖x‖, eps) along the last axis, via rsqrt of the clamped square norm: no NaN gradient at x = 0."""
    return x * ops.rsqrt(ops.maximum((x * x).sum(-1, keepdims=True), eps * eps))


def _cosine(image_feats, text_feats):
    """Text-to-image cosine similarity [B_text, B_image] of (fp32, normalised) features."""
    return ops.matmul(_l2_normalize(_fp32(text_feats)), _l2_normalize(_fp32(image_feats)).T)


def _same_identity(pids):
    """The label matrix y_ij = 1[pid_i = pid_j] as fp32."""
    return (pids.expand_dims(1) == pids.expand_dims(0)).astype(ms.float32)


def _logsumexp(x, axis=-1):
    m = ops.stop_gradient(x.max(axis=axis, keepdims=True))
    return (m + ops.log(ops.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _focal(log_p, alpha, beta):
    """Element-wise focal loss -α (1 - p)^β log p from log p; 1 - p = -expm1(log p) keeps precision near p = 1."""
    one_minus_p = ops.clamp(-ops.expm1(log_p), min=_FOCAL_FLOOR)
    return -alpha * ops.pow(one_minus_p, beta) * log_p


def _log_prob_of(logits, labels):
    """log softmax(logits)[i, labels[i]] for every row."""
    return ops.gather_elements(ops.log_softmax(_fp32(logits), -1), 1, labels.astype(ms.int32).expand_dims(1)).squeeze(1)


def sdm_loss(image_feats, text_feats, pids, logit_scale=50.0, epsilon=1e-8):
    """IRRA's similarity-distribution matching: KL(P‖Q) per row, image→text plus text→image.

    P = softmax of κ·cosine over the batch; Q = the row-normalised label matrix (every same-identity item).
    """
    logits = logit_scale * _cosine(image_feats, text_feats)
    labels = _same_identity(pids)
    log_q = ops.log(labels / labels.sum(1, keepdims=True) + epsilon)
    loss = 0.0
    for direction in (logits, logits.T):
        log_p = ops.log_softmax(direction, -1)
        loss = loss + (ops.exp(log_p) * (log_p - log_q)).sum(1).mean()
    return loss


def itc_loss(image_feats, text_feats, logit_scale=50.0):
    """CLIP's contrastive loss: the mean of the image→text and text→image CE, the i-th pair as target."""
    logits = logit_scale * _cosine(image_feats, text_feats)
    return -(ops.diagonal(ops.log_softmax(logits, -1)).mean() + ops.diagonal(ops.log_softmax(logits.T, -1)).mean()) / 2


def id_loss(image_logits, text_logits, pids):
    """Identity classification: the mean of the image and text cross-entropies (each a batch mean)."""
    return -(_log_prob_of(image_logits, pids).mean() + _log_prob_of(text_logits, pids).mean()) / 2


def mlm_loss(scores, labels):
    """Masked-token CE over scores [B, L, V] and labels [B, L]; label 0 marks an unselected position.

    The mean over labelled positions; 0 (not NaN) when no position is labelled.
    """
    scores = _fp32(scores)
    labels = labels.reshape(-1).astype(ms.int32)
    nll = -_log_prob_of(scores.reshape(-1, scores.shape[-1]), labels)
    selected = (labels != 0).astype(ms.float32)
    return (nll * selected).sum() / ops.maximum(selected.sum(), 1.0)


def _check_minp(form, beta):
    if form not in MINP_FORMS:
        raise ValueError(f"MINP form must be one of {MINP_FORMS}, got {form!r}")
    if beta < 0:
        raise ValueError(f"MINP beta must be >= 0, got {beta}")


def minp_loss(image_feats, text_feats, pids, alpha=1.0, beta=2.0, reg=1e-4, form="similarity",
              logit_scale=50.0, image_logits=None, text_logits=None):
    """MINP (DESIGN §7): a focal term plus reg·mean(‖t‖² + ‖v‖²) on the un-normalised features.

    Focal term by `form`:
    - "similarity": for text i, P_i = Σ_{j: pid_j = pid_i} softmax_j(κ s_ij), the positive mass of every
      instance of the identity pooled against all negatives; L_i = -α (1 - P_i)^β log P_i with
      log P_i = logsumexp over positives - logsumexp over all. The same for image→text; the directions averaged.
      β = 0, reg = 0 gives multi-positive InfoNCE.
    - "identity": focal CE on the ID classifier's logits (`image_logits`, `text_logits`), the two averaged.
    - "literal": the paper's eq. 16 on every same-identity pair, S mapped to p = (S + 1) / 2 clamped to
      [1e-6, 1], averaged over those pairs.
    """
    _check_minp(form, beta)
    if form == "similarity":
        logits = logit_scale * _cosine(image_feats, text_feats)
        offset = (1.0 - _same_identity(pids)) * _MASK_OFFSET
        focal = 0.0
        for direction in (logits, logits.T):
            log_mass = _logsumexp(direction - offset) - _logsumexp(direction)
            focal = focal + _focal(log_mass, alpha, beta).mean()
        focal = focal / 2
    elif form == "identity":
        if image_logits is None or text_logits is None:
            raise ValueError("MINP form 'identity' needs image_logits and text_logits")
        focal = (_focal(_log_prob_of(image_logits, pids), alpha, beta).mean()
                 + _focal(_log_prob_of(text_logits, pids), alpha, beta).mean()) / 2
    else:
        positives = _same_identity(pids)
        p = ops.clamp((_cosine(image_feats, text_feats) + 1.0) / 2, _LITERAL_FLOOR, 1.0)
        focal = (_focal(ops.log(p), alpha, beta) * positives).sum() / positives.sum()
    text_feats, image_feats = _fp32(text_feats), _fp32(image_feats)
    penalty = ((text_feats * text_feats).sum(-1) + (image_feats * image_feats).sum(-1)).mean()
    return focal + reg * penalty


class SDMLoss(nn.Cell):
    """Cell form of `sdm_loss`: (image_feats, text_feats, pids) -> scalar."""

    def __init__(self, logit_scale=50.0, epsilon=1e-8):
        super().__init__()
        self.logit_scale = logit_scale
        self.epsilon = epsilon

    def construct(self, image_feats, text_feats, pids):
        return sdm_loss(image_feats, text_feats, pids, self.logit_scale, self.epsilon)


class ITCLoss(nn.Cell):
    """Cell form of `itc_loss`: (image_feats, text_feats) -> scalar."""

    def __init__(self, logit_scale=50.0):
        super().__init__()
        self.logit_scale = logit_scale

    def construct(self, image_feats, text_feats):
        return itc_loss(image_feats, text_feats, self.logit_scale)


class IDLoss(nn.Cell):
    """Cell form of `id_loss`: (image_logits, text_logits, pids) -> scalar."""

    def construct(self, image_logits, text_logits, pids):
        return id_loss(image_logits, text_logits, pids)


class MLMLoss(nn.Cell):
    """Cell form of `mlm_loss`: (scores [B, L, V], labels [B, L]) -> scalar."""

    def construct(self, scores, labels):
        return mlm_loss(scores, labels)


class MINPLoss(nn.Cell):
    """Cell form of `minp_loss`: (image_feats, text_feats, pids, image_logits=None, text_logits=None) -> scalar."""

    def __init__(self, alpha=1.0, beta=2.0, reg=1e-4, form="similarity", logit_scale=50.0):
        super().__init__()
        _check_minp(form, beta)
        self.alpha, self.beta, self.reg, self.form, self.logit_scale = alpha, beta, reg, form, logit_scale

    def construct(self, image_feats, text_feats, pids, image_logits=None, text_logits=None):
        return minp_loss(image_feats, text_feats, pids, self.alpha, self.beta, self.reg, self.form,
                         self.logit_scale, image_logits, text_logits)


class LossComposer(nn.Cell):
    """Weighted sum of the selected losses; `construct` returns (total, weighted terms in `names` order).

    `names` is a sequence drawn from LOSS_NAMES; `weights` maps a name to its weight (missing names weigh 1).
    """

    def __init__(self, names, weights=None, logit_scale=50.0, sdm_epsilon=1e-8, minp_alpha=1.0, minp_beta=2.0,
                 minp_reg=1e-4, minp_form="similarity"):
        super().__init__()
        names = tuple(names)
        unknown = [n for n in names if n not in LOSS_NAMES]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(f"loss names must be distinct names from {LOSS_NAMES}, got {list(names)}")
        weights = dict(weights or {})
        if set(weights) - set(names):
            raise ValueError(f"weights given for unselected losses {sorted(set(weights) - set(names))}")
        self.names = names
        self.weights = tuple(float(weights.get(n, 1.0)) for n in names)
        self.sdm = SDMLoss(logit_scale, sdm_epsilon)
        self.itc = ITCLoss(logit_scale)
        self.id = IDLoss()
        self.mlm = MLMLoss()
        self.minp = MINPLoss(minp_alpha, minp_beta, minp_reg, minp_form, logit_scale)

    @classmethod
    def from_config(cls, loss_config):
        """Build from a `vpmnet.config.LossConfig` (names, weights, logit_scale, minp)."""
        minp = loss_config.minp
        return cls(loss_config.names, {n: loss_config.weight(n) for n in loss_config.names},
                   logit_scale=loss_config.logit_scale, minp_alpha=minp.alpha, minp_beta=minp.beta,
                   minp_reg=minp.reg, minp_form=minp.form)

    def _term(self, name, image_feats, text_feats, pids, image_logits, text_logits, mlm_scores, mlm_labels):
        if name == "sdm":
            return self.sdm(image_feats, text_feats, pids)
        if name == "itc":
            return self.itc(image_feats, text_feats)
        if name == "id":
            return self.id(image_logits, text_logits, pids)
        if name == "mlm":
            return self.mlm(mlm_scores, mlm_labels)
        return self.minp(image_feats, text_feats, pids, image_logits, text_logits)

    def construct(self, image_feats, text_feats, pids, image_logits=None, text_logits=None, mlm_scores=None,
                  mlm_labels=None):
        terms = ()
        for name, weight in zip(self.names, self.weights):
            term = self._term(name, image_feats, text_feats, pids, image_logits, text_logits, mlm_scores,
                              mlm_labels)
            terms = terms + (weight * term,)
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total, terms
