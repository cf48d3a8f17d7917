"""VPMNet as configured: every shipped config builds and takes a training step on a tiny model."""
import glob
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from conftest import caption_ids, tiny_config
from vpmnet.model import ImageEncoder, TextEncoder, build_model
from vpmnet.optim import build_optimizer
from vpmnet.runtime import Runtime
from vpmnet.train import make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
SMALL_VOCAB = ["model.clip.text.vocab_size=512", "model.clip.vision.layers=2", "model.clip.text.layers=2"]


def _batch(rng, batch=4, vocab=512):
    ids = caption_ids(rng, batch, vocab=vocab)
    masked, labels = ids.copy(), np.zeros_like(ids)
    labels[:, 1], masked[:, 1] = ids[:, 1], vocab - 3
    images = rng.standard_normal((batch, 3, 32, 16)).astype(np.float32)
    pids = np.array([0, 0, 1, 2][:batch], np.int32)
    return [Tensor(images), Tensor(ids), Tensor(masked), Tensor(labels), Tensor(pids)]


def _variants():
    """Configs grouped by what shapes the training graph; datasets and paths do not."""
    groups = {}
    for config in CONFIGS:
        cfg = tiny_config(os.path.join(ROOT, config), *SMALL_VOCAB).to_dict()
        key = repr([cfg[k] for k in ("model", "prompts", "kan", "loss", "train")])
        groups.setdefault(key, []).append(config)
    return list(groups.values())


@pytest.mark.parametrize("configs", _variants(), ids=lambda group: "+".join(os.path.basename(c)[:-5] for c in group))
def test_every_config_builds_and_steps(configs, rng):
    for config in configs:
        cfg = tiny_config(os.path.join(ROOT, config), *SMALL_VOCAB)
        ms.set_seed(0)
        model = build_model(cfg, num_classes=3, load_pretrained=False)
    # One step per group: the graph is the same for every member.
    optimizer = build_optimizer(model, cfg.train)
    step = make_train_step(model, optimizer, Runtime("CPU"), cfg, compile=False)
    before = [p.asnumpy().copy() for p in optimizer.parameters]
    loss, terms, ok = step(*_batch(rng), Tensor(1e-3, ms.float32))
    assert bool(ok.asnumpy()) and np.isfinite(loss.asnumpy())
    assert len(terms) == len(cfg.loss.names)
    assert float(loss.asnumpy()) == pytest.approx(float(sum(t.asnumpy() for t in terms)), rel=1e-5)
    moved = sum(not np.array_equal(b, p.asnumpy()) for b, p in zip(before, optimizer.parameters))
    assert moved >= 0.9 * len(before)


def test_kan_adapter_starts_as_identity(rng):
    """With KAN on, the retrieval features at initialisation equal CLIP's (DESIGN §6)."""
    cfg = tiny_config(None, *SMALL_VOCAB, "kan.enabled=true")
    model = build_model(cfg, num_classes=3, load_pretrained=False)
    images, ids = _batch(rng)[:2]
    np.testing.assert_allclose(model.encode_image(images).asnumpy(), model.clip.encode_image(images).asnumpy(),
                               atol=1e-6)
    np.testing.assert_allclose(model.encode_text(ids).asnumpy(), model.clip.encode_text(ids).asnumpy(), atol=1e-6)
    feats = ImageEncoder(model)(images).asnumpy()
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert TextEncoder(model)(ids).shape == (4, 24)


def test_masked_global_text_switch(rng):
    """IRRA's aliasing (default) feeds the masked caption to SDM/ID; switching it off uses the clean one."""
    losses = {}
    for aliased in (True, False):
        cfg = tiny_config(None, *SMALL_VOCAB, f"model.masked_global_text={str(aliased).lower()}", "loss.names=[sdm]")
        ms.set_seed(0)
        model = build_model(cfg, num_classes=3, load_pretrained=False)
        batch = _batch(np.random.default_rng(1))
        losses[aliased] = float(model(*batch)[0].asnumpy())
        clean = float(model(batch[0], batch[1], batch[1], batch[3], batch[4])[0].asnumpy())
        assert (clean == losses[aliased]) == (not aliased)
    assert losses[True] != losses[False]


def test_scoring_only_masked_positions_equals_scoring_all(rng):
    """`model.mlm_positions` gathers the masked tokens before the vocabulary projection: same loss as IRRA's."""
    values = []
    for positions in (0, 5):
        cfg = tiny_config(None, *SMALL_VOCAB, "loss.names=[mlm]", f"model.mlm_positions={positions}")
        ms.set_seed(0)
        model = build_model(cfg, num_classes=3, load_pretrained=False)
        batch = _batch(np.random.default_rng(2))
        labels = batch[1].asnumpy() * (np.arange(77) % 3 == 1)     # several masked tokens per caption
        batch[3] = Tensor(labels.astype(np.int32))
        values.append(float(model(*batch)[0].asnumpy()))
    assert values[0] == pytest.approx(values[1], rel=1e-5) and values[0] > 0
