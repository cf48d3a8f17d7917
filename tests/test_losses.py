"""Losses against NumPy oracles written from irra_and_peers.md §1c, DESIGN §7 and kan_vpt_focal.md §4."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from vpmnet.config import LossConfig
from vpmnet.losses import (MINP_FORMS, IDLoss, ITCLoss, LossComposer, MINPLoss, MLMLoss, SDMLoss, id_loss, itc_loss,
                           minp_loss, mlm_loss, sdm_loss)

PIDS = np.array([3, 3, 7, 1, 1, 1, 9, 4])        # repeated identities, as in an identity-sampled batch


# ---------------------------------------------------------------- NumPy oracles (float64)
def l2n(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def np_sdm(img, txt, pids, scale=50.0, eps=1e-8):
    t2i = scale * l2n(txt) @ l2n(img).T
    labels = (pids[:, None] == pids[None, :]).astype(np.float64)
    q = labels / labels.sum(axis=1)          # IRRA divides column j by count_j; equal to row normalising
    loss = 0.0
    for z in (t2i.T, t2i):
        lp = log_softmax(z)
        loss += (np.exp(lp) * (lp - np.log(q + eps))).sum(1).mean()
    return loss


def np_ce(logits, labels):
    return -log_softmax(logits)[np.arange(len(labels)), labels].mean()


def np_focal(p, alpha, beta):
    return -alpha * (1 - p) ** beta * np.log(p)


def np_minp(img, txt, pids, alpha=1.0, beta=2.0, reg=1e-4, form="similarity", scale=50.0, il=None, tl=None):
    pos = pids[:, None] == pids[None, :]
    if form == "similarity":
        s = scale * l2n(txt) @ l2n(img).T
        focal = 0.0
        for z in (s, s.T):
            prob = np.exp(log_softmax(z))
            focal += np_focal((prob * pos).sum(1), alpha, beta).mean() / 2
    elif form == "identity":
        focal = sum(np_focal(np.exp(log_softmax(z))[np.arange(len(pids)), pids], alpha, beta).mean()
                    for z in (il, tl)) / 2
    else:
        p = np.clip((l2n(txt) @ l2n(img).T + 1) / 2, 1e-6, 1)
        focal = np_focal(p, alpha, beta)[pos].mean()
    return focal + reg * ((txt ** 2).sum(1) + (img ** 2).sum(1)).mean()


# ---------------------------------------------------------------- helpers
def feats(rng, b=8, d=16, scale=1.0):
    return rng.standard_normal((b, d)) * scale, rng.standard_normal((b, d)) * scale


def T(x, dtype=ms.float32):
    return Tensor(np.asarray(x), dtype)


def value_and_feature_grads(fn, img, txt, *args):
    """fn(img, txt, *args) and its gradients w.r.t. both feature tensors (PyNative)."""
    grad = ms.value_and_grad(fn, grad_position=(0, 1))
    value, (gi, gt) = grad(T(img), T(txt), *args)
    return value.asnumpy(), gi.asnumpy(), gt.asnumpy()


# ---------------------------------------------------------------- IRRA losses
def test_sdm_matches_numpy(rng):
    img, txt = feats(rng)
    got = sdm_loss(T(img), T(txt), T(PIDS, ms.int32)).asnumpy()
    np.testing.assert_allclose(got, np_sdm(img, txt, PIDS), rtol=1e-5)
    np.testing.assert_allclose(SDMLoss(logit_scale=20.0)(T(img), T(txt), T(PIDS, ms.int32)).asnumpy(),
                               np_sdm(img, txt, PIDS, scale=20.0), rtol=1e-5)


def test_sdm_is_scale_invariant_in_features(rng):
    img, txt = feats(rng)
    a = sdm_loss(T(img), T(txt), T(PIDS, ms.int32)).asnumpy()
    b = sdm_loss(T(img * 300), T(txt * 1e-3), T(PIDS, ms.int32)).asnumpy()
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_itc_matches_numpy(rng):
    img, txt = feats(rng)
    s = 50.0 * l2n(img) @ l2n(txt).T
    diag = np.arange(len(s))
    expected = (np_ce(s, diag) + np_ce(s.T, diag)) / 2
    np.testing.assert_allclose(itc_loss(T(img), T(txt)).asnumpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(ITCLoss()(T(img), T(txt)).asnumpy(), expected, rtol=1e-5)


def test_id_matches_numpy(rng):
    il, tl = rng.standard_normal((8, 10)) * 3, rng.standard_normal((8, 10)) * 3
    expected = (np_ce(il, PIDS) + np_ce(tl, PIDS)) / 2
    np.testing.assert_allclose(id_loss(T(il), T(tl), T(PIDS, ms.int32)).asnumpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(IDLoss()(T(il), T(tl), T(PIDS, ms.int32)).asnumpy(), expected, rtol=1e-5)


def test_mlm_ignores_label_zero(rng):
    scores = rng.standard_normal((3, 5, 12)) * 2
    labels = np.zeros((3, 5), np.int64)
    labels[0, 1], labels[1, 4], labels[2, 0], labels[2, 3] = 7, 2, 11, 5
    mask = labels != 0
    expected = np_ce(scores[mask], labels[mask])
    np.testing.assert_allclose(mlm_loss(T(scores), T(labels, ms.int32)).asnumpy(), expected, rtol=1e-5)
    # what sits at unlabelled positions does not matter
    scores[~mask] = 1e3
    np.testing.assert_allclose(MLMLoss()(T(scores), T(labels, ms.int32)).asnumpy(), expected, rtol=1e-5)


def test_mlm_without_labelled_positions_is_zero_with_finite_gradient(rng):
    scores = T(rng.standard_normal((2, 4, 9)))
    value, grad = ms.value_and_grad(mlm_loss)(scores, T(np.zeros((2, 4)), ms.int32))
    assert value.asnumpy() == 0
    assert np.all(grad.asnumpy() == 0)


# ---------------------------------------------------------------- MINP
@pytest.mark.parametrize("form", MINP_FORMS)
def test_minp_forms_match_numpy(rng, form):
    img, txt = feats(rng, scale=2.0)
    il, tl = rng.standard_normal((8, 10)) * 3, rng.standard_normal((8, 10)) * 3
    kw = dict(alpha=0.7, beta=1.5, reg=3e-3, form=form)
    got = minp_loss(T(img), T(txt), T(PIDS, ms.int32), image_logits=T(il), text_logits=T(tl), **kw).asnumpy()
    np.testing.assert_allclose(got, np_minp(img, txt, PIDS, il=il, tl=tl, **kw), rtol=1e-5)
    cell = MINPLoss(**kw)
    np.testing.assert_allclose(cell(T(img), T(txt), T(PIDS, ms.int32), T(il), T(tl)).asnumpy(), got, rtol=1e-6)


def test_minp_beta0_reg0_is_multi_positive_infonce(rng):
    img, txt = feats(rng)
    pos = PIDS[:, None] == PIDS[None, :]
    s = 50.0 * l2n(txt) @ l2n(img).T
    # -log Σ_{positives} softmax, written with logsumexp, both directions averaged
    infonce = 0.0
    for z in (s, s.T):
        lse_all = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        zp = np.where(pos, z, -np.inf)
        lse_pos = np.log(np.exp(zp - zp.max(1, keepdims=True)).sum(1)) + zp.max(1)
        infonce += (lse_all - lse_pos).mean() / 2
    got = minp_loss(T(img), T(txt), T(PIDS, ms.int32), beta=0.0, reg=0.0).asnumpy()
    np.testing.assert_allclose(got, infonce, rtol=1e-5)


def test_minp_focal_upweights_hard_positives():
    # four identities; text 0 sits between its image and image 1 (hard), text 2 is almost on its image (easy)
    img = np.eye(4, 6)
    txt = np.eye(4, 6).copy()
    txt[0] = [1.0, 0.95, 0, 0, 0, 0]
    txt[2, 3] = 0.05
    pids = T(np.arange(4), ms.int32)

    def text_grad_norms(beta):
        _, _, gt = value_and_feature_grads(lambda i, t: minp_loss(i, t, pids, beta=beta, reg=0.0), img, txt)
        return np.linalg.norm(gt, axis=1)

    focal, plain = text_grad_norms(2.0), text_grad_norms(0.0)
    ratio = focal / plain                        # the focal modulation relative to InfoNCE
    assert ratio[0] > 5 * ratio[2]
    assert focal[0] > focal[2]


PAPER_ORACLE = {-1.0: 13.8155, -0.5: 0.77979, 0.0: 0.17329, 0.2: 0.08173, 0.5: 0.01798, 0.9: 0.00013, 1.0: 0.0}


@pytest.mark.parametrize("s", sorted(PAPER_ORACLE))
def test_minp_literal_form_oracle_values(s):
    """kan_vpt_focal.md §4.2, row p = (S+1)/2 clamped at 1e-6, for one matched pair of cosine S."""
    img = np.array([[1.0, 0.0]])
    txt = np.array([[s, np.sqrt(max(1 - s * s, 0.0))]])
    loss = lambda i, t: minp_loss(i, t, T([0], ms.int32), reg=0.0, form="literal")  # noqa: E731
    value, _, gt = value_and_feature_grads(loss, img, txt)
    np.testing.assert_allclose(value, PAPER_ORACLE[s], rtol=2e-4, atol=1e-5)
    if -1 < s <= 0:                               # the hard pairs still learn (no clamp active)
        assert np.abs(gt).max() > 0.1


EDGE_CASES = {
    "one_instance_per_identity": (np.arange(8), 1.0),
    "one_identity_only": (np.zeros(8, np.int64), 1.0),
    "huge_features": (PIDS, 1e4),
    "tiny_features": (PIDS, 1e-30),
}


@pytest.mark.parametrize("form", MINP_FORMS)
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_minp_finite_at_edge_cases(rng, form, case):
    pids, scale = EDGE_CASES[case]
    img, txt = feats(rng, scale=scale)
    il, tl = T(rng.standard_normal((8, 10)) * 50), T(rng.standard_normal((8, 10)) * 50)
    loss = lambda i, t: minp_loss(i, t, T(pids, ms.int32), form=form, image_logits=il, text_logits=tl)  # noqa: E731
    value, gi, gt = value_and_feature_grads(loss, img, txt)
    assert np.isfinite(value) and np.isfinite(gi).all() and np.isfinite(gt).all()
    if case == "one_identity_only" and form == "similarity":
        np.testing.assert_allclose(value, 1e-4 * ((img ** 2).sum(1) + (txt ** 2).sum(1)).mean(), rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_minp_gradients_finite_for_small_beta_when_all_positive(rng, beta):
    img, txt = feats(rng)
    loss = lambda i, t: minp_loss(i, t, T(np.zeros(8), ms.int32), beta=beta)  # noqa: E731
    _, gi, gt = value_and_feature_grads(loss, img, txt)
    assert np.isfinite(gi).all() and np.isfinite(gt).all()


def test_minp_rejects_bad_options():
    with pytest.raises(ValueError, match="form"):
        MINPLoss(form="cosine")
    with pytest.raises(ValueError, match="beta"):
        MINPLoss(beta=-1.0)
    with pytest.raises(ValueError, match="image_logits"):
        minp_loss(T(np.ones((2, 3))), T(np.ones((2, 3))), T([0, 1], ms.int32), form="identity")


# ---------------------------------------------------------------- composer
def batch(rng, b=8, d=16, classes=10, length=5, vocab=13):
    img, txt = feats(rng, b, d)
    labels = rng.integers(0, vocab, (b, length))
    labels[:, ::2] = 0
    return dict(image_feats=img, text_feats=txt, pids=PIDS, image_logits=rng.standard_normal((b, classes)),
                text_logits=rng.standard_normal((b, classes)), mlm_scores=rng.standard_normal((b, length, vocab)),
                mlm_labels=labels)


def as_tensors(values):
    return {k: T(v, ms.int32 if k in ("pids", "mlm_labels") else ms.float32) for k, v in values.items()}


def test_composer_weights_and_order(rng):
    values = batch(rng)
    names = ["minp", "sdm", "id", "mlm", "itc"]
    weights = {"sdm": 1.0, "id": 0.5, "mlm": 2.0, "minp": 3.0}
    total, terms = LossComposer(names, weights, minp_beta=1.0)(**as_tensors(values))
    v = values
    expected = [
        3.0 * np_minp(v["image_feats"], v["text_feats"], PIDS, beta=1.0),
        np_sdm(v["image_feats"], v["text_feats"], PIDS),
        0.5 * (np_ce(v["image_logits"], PIDS) + np_ce(v["text_logits"], PIDS)) / 2,
        2.0 * np_ce(v["mlm_scores"][v["mlm_labels"] != 0], v["mlm_labels"][v["mlm_labels"] != 0]),
        itc_loss(T(v["image_feats"]), T(v["text_feats"])).asnumpy(),       # weight 1 when not given
    ]
    np.testing.assert_allclose([t.asnumpy() for t in terms], expected, rtol=1e-5)
    np.testing.assert_allclose(total.asnumpy(), sum(expected), rtol=1e-5)


def test_composer_from_config_and_unused_inputs(rng):
    config = LossConfig(names=["sdm", "minp"], weights={"minp": 0.25})
    config.minp.reg = 0.0
    composer = LossComposer.from_config(config)
    t = as_tensors(batch(rng))
    total, (sdm, minp) = composer(t["image_feats"], t["text_feats"], t["pids"])   # no logits, no MLM needed
    np.testing.assert_allclose(minp.asnumpy(), 0.25 * minp_loss(t["image_feats"], t["text_feats"], t["pids"],
                                                                reg=0.0).asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(total.asnumpy(), (sdm + minp).asnumpy(), rtol=1e-6)


@pytest.mark.parametrize("names,weights", [([], None), (["sdm", "sdm"], None), (["sdm", "triplet"], None),
                                           (["sdm"], {"id": 1.0})])
def test_composer_rejects_bad_names(names, weights):
    with pytest.raises(ValueError):
        LossComposer(names, weights)


class _ComposerGrad(nn.Cell):
    """Total loss and its gradients w.r.t. the features, compiled as one graph."""

    def __init__(self, composer):
        super().__init__()
        self.composer = composer
        self.grad = ms.value_and_grad(self.total, grad_position=(0, 1))

    def total(self, image_feats, text_feats, pids, image_logits, text_logits, mlm_scores, mlm_labels):
        return self.composer(image_feats, text_feats, pids, image_logits, text_logits, mlm_scores, mlm_labels)[0]

    def construct(self, *args):
        return self.grad(*args)


def test_composer_and_minp_cell_in_graph_mode(graph_mode, rng):
    values = batch(rng)
    t = as_tensors(values)
    args = [t[k] for k in ("image_feats", "text_feats", "pids", "image_logits", "text_logits", "mlm_scores",
                           "mlm_labels")]
    composer = LossComposer(["sdm", "id", "mlm", "minp"], {"minp": 0.5})
    total, terms = composer(*args)
    v = values
    np.testing.assert_allclose(terms[3].asnumpy(), 0.5 * np_minp(v["image_feats"], v["text_feats"], PIDS), rtol=1e-5)
    np.testing.assert_allclose(terms[0].asnumpy(), np_sdm(v["image_feats"], v["text_feats"], PIDS), rtol=1e-5)

    value, (gi, gt) = _ComposerGrad(composer)(*args)
    np.testing.assert_allclose(value.asnumpy(), total.asnumpy(), rtol=1e-6)
    assert np.isfinite(gi.asnumpy()).all() and np.abs(gt.asnumpy()).max() > 0

    literal = MINPLoss(form="literal")(t["image_feats"], t["text_feats"], t["pids"])
    np.testing.assert_allclose(literal.asnumpy(), np_minp(v["image_feats"], v["text_feats"], PIDS, form="literal"),
                               rtol=1e-5)
