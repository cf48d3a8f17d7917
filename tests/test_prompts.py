"""VPT prompts in both encoders: layer choice, sequence growth, EOT alignment, freezing and gradients."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from conftest import caption_ids, tiny_config
from vpmnet.clip.model import CLIP
from vpmnet.config import PromptConfig
from vpmnet.model import build_model
from vpmnet.prompts import prompt_init_bound, prompted_layers


def test_prompted_layers_per_mode():
    assert prompted_layers("none", 12) == []
    assert prompted_layers("shallow", 12) == [0]
    assert prompted_layers("deep", 12) == list(range(12))
    assert prompted_layers("tail", 12) == [8, 9, 10, 11]
    assert prompted_layers("portion", 12) == list(range(4, 12))
    assert prompted_layers("portion", 4) == [0, 1, 2, 3]
    assert prompt_init_bound(768) == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="unknown prompt mode"):
        prompted_layers("middle", 12)


def _clip(mode, vision_length=3, text_length=2, seed=0):
    cfg = tiny_config().model.clip
    ms.set_seed(seed)
    return CLIP(cfg, prompts=PromptConfig(mode=mode, vision_length=vision_length, text_length=text_length))


def _copy_backbone(src, dst):
    weights = {p.name: p for p in src.get_parameters()}
    for p in dst.get_parameters():
        if ".prompt." not in p.name:
            p.set_data(weights[p.name].value())


def _block_lengths(encoder, run):
    """Sequence length seen by each residual block (after its prompt slot), via forward hooks."""
    lengths = []
    handles = [block.attn.register_forward_hook(lambda cell, inputs, output: lengths.append(output.shape[1]))
               for block in encoder.transformer.resblocks]
    run()
    for handle in handles:
        handle.remove()
    return lengths


@pytest.mark.parametrize("mode, grown_from", [("shallow", 0), ("deep", 0), ("tail", 0), ("portion", 0)])
def test_sequence_grows_at_first_prompted_layer(mode, grown_from, rng):
    net = _clip(mode)
    layers = len(net.visual.transformer.resblocks)
    first = prompted_layers(mode, layers)[0]
    images = Tensor(rng.standard_normal((2, 3, 32, 16)).astype(np.float32))
    seen = _block_lengths(net.visual, lambda: net.encode_image(images))
    patches = 1 + 4 * 2
    assert seen == [patches if i < first else patches + 3 for i in range(layers)]
    ids = Tensor(caption_ids(rng, 2))
    seen = _block_lengths(net.text, lambda: net.encode_text(ids))
    assert seen == [77 if i < first else 79 for i in range(layers)]
    tokens, _ = net.visual(images)
    assert tokens.shape == (2, patches, 24)   # prompt outputs are stripped again


@pytest.mark.parametrize("mode", ["none", "deep"])
def test_no_prompts_is_plain_clip_bit_for_bit(mode, rng):
    plain = _clip("none", seed=1)
    other = _clip(mode, vision_length=0, text_length=0, seed=2)
    _copy_backbone(plain, other)
    images = Tensor(rng.standard_normal((2, 3, 32, 16)).astype(np.float32))
    ids = Tensor(caption_ids(rng, 3))
    assert np.array_equal(plain.encode_image(images).asnumpy(), other.encode_image(images).asnumpy())
    assert np.array_equal(plain.encode_text(ids).asnumpy(), other.encode_text(ids).asnumpy())


def test_prompts_change_features_and_the_eot_feature_stays_causal(rng):
    plain, prompted = _clip("none"), _clip("shallow")
    _copy_backbone(plain, prompted)
    ids = caption_ids(rng, 2, words=(4, 6))
    base = prompted.encode_text(Tensor(ids)).asnumpy()
    assert not np.allclose(base, plain.encode_text(Tensor(ids)).asnumpy(), atol=1e-4)
    # Tokens after EOT are invisible to it under the grown causal mask; a word before EOT is not.
    after = ids.copy()
    after[:, 20:] = 7
    assert np.allclose(prompted.encode_text(Tensor(after)).asnumpy(), base, atol=1e-6)
    before = ids.copy()
    before[:, 1] = 1234
    assert not np.allclose(prompted.encode_text(Tensor(before)).asnumpy(), base, atol=1e-4)
    # The pooled feature is the EOT row of the (prompt-stripped) token outputs.
    tokens, pooled = prompted.text(Tensor(ids))
    eot = ids.argmax(axis=1)
    assert np.allclose(tokens.asnumpy()[np.arange(2), eot], pooled.asnumpy(), atol=1e-6)


@pytest.mark.parametrize("mode, freeze", [("tail", "prompted"), ("shallow", "backbone")])
def test_freeze_policy_and_prompt_gradients(mode, freeze, rng):
    from vpmnet.optim import build_optimizer
    from vpmnet.runtime import Runtime
    from vpmnet.train import make_train_step

    cfg = tiny_config(None, f"prompts.mode={mode}", f"prompts.freeze={freeze}", "loss.names=[sdm,id,mlm,minp]")
    ms.set_seed(0)
    model = build_model(cfg, 4, load_pretrained=False)
    frozen = {p.name for p in model.get_parameters() if not p.requires_grad and not p.name.endswith(".grid")}
    layers = prompted_layers(mode, 4)
    for p in model.clip.get_parameters():
        expect_frozen = ".prompt." not in p.name and (
            freeze == "backbone" or any(f".resblocks.{i}." in p.name for i in layers))
        assert (p.name in frozen) == expect_frozen, p.name
    prompt_names = [p.name for p in model.trainable_params() if ".prompt." in p.name]
    assert len(prompt_names) == 2 * len(layers)
    before = {p.name: p.asnumpy().copy() for p in model.get_parameters()}
    optimizer = build_optimizer(model, cfg.train)
    assert not frozen & {p.name for p in optimizer.parameters}
    step = make_train_step(model, optimizer, Runtime("CPU"), cfg, compile=False)
    ids = caption_ids(rng, 4)
    labels = np.zeros_like(ids)
    labels[:, 1] = ids[:, 1]
    step(Tensor(rng.standard_normal((4, 3, 32, 16)).astype(np.float32)), Tensor(ids), Tensor(ids), Tensor(labels),
         Tensor(np.array([0, 0, 1, 1], np.int32)), Tensor(1e-3, ms.float32))
    after = {p.name: p.asnumpy() for p in model.get_parameters()}
    for name in frozen:
        assert np.array_equal(before[name], after[name]), f"frozen {name} changed"
    for name in prompt_names:
        assert not np.array_equal(before[name], after[name]), f"prompt {name} received no update"


def test_prompt_parameter_counts_match_layers_times_length_times_width():
    cfg = tiny_config(None, "prompts.mode=portion", "prompts.vision_length=5", "prompts.text_length=7")
    model = build_model(cfg, 4, load_pretrained=False)
    counts = {"visual": 0, "text": 0}
    for p in model.get_parameters():
        if ".prompt." in p.name:
            counts[p.name.split(".")[1]] += p.size
    assert counts == {"visual": 4 * 5 * 32, "text": 4 * 7 * 32}
