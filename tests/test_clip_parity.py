"""Parity with transformers' CLIPModel after `vpmnet convert-clip` (HF folder, OpenAI .pt, IRRA checkpoint)."""
import mindspore as ms
import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import cli
from vpmnet.clip import load_clip

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SOT, EOT = 49406, 49407
TOL = 1e-4


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny random quick_gelu CLIPModel saved with save_pretrained (safetensors)."""
    torch.manual_seed(0)
    # eos_token_id = EOT, so transformers pools the first EOT; our ids have exactly one EOT, the largest id,
    # so that is also OpenAI's argmax pooling.
    cfg = transformers.CLIPConfig(
        text_config=dict(hidden_size=48, intermediate_size=192, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu",
                         bos_token_id=SOT, eos_token_id=EOT, pad_token_id=0),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=8, image_size=32, hidden_act="quick_gelu"),
        projection_dim=32)
    model = transformers.CLIPModel(cfg).eval()
    with torch.no_grad():   # LayerNorm starts at (1, 0) and biases at 0: randomise so no swap goes unnoticed
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder, safe_serialization=True)
    return folder, model


@pytest.fixture(scope="module")
def reference(hf_folder):
    """(images, ids, transformers' image features, text features)."""
    _, model = hf_folder
    rng = np.random.default_rng(0)
    images = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    ids = np.zeros((3, 77), np.int32)
    for row, length in enumerate((5, 30, 75)):   # the last caption fills all 77 positions
        ids[row, 0] = SOT
        ids[row, 1:1 + length] = rng.integers(1, SOT - 1, length)
        ids[row, 1 + length] = EOT
    with torch.no_grad():
        image_feats = model.get_image_features(pixel_values=torch.from_numpy(images)).pooler_output.numpy()
        text_feats = model.get_text_features(input_ids=torch.from_numpy(ids).long()).pooler_output.numpy()
    return images, ids, image_feats, text_feats


def _convert(src, out, *extra):
    result = cli("convert-clip", src, out, *extra)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def converted_hf(hf_folder, tmp_path_factory):
    return _convert(hf_folder[0], tmp_path_factory.mktemp("ms") / "hf")


def _openai_state(model):
    """The same weights under OpenAI CLIP's key names and layouts (written out here, independently)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {"logit_scale": sd["logit_scale"], "input_resolution": torch.tensor(32),
           "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
           "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
           "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
           "visual.proj": sd["visual_projection.weight"].T.contiguous(),
           "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           "text_projection": sd["text_projection.weight"].T.contiguous()}
    for name, ours in (("pre_layrnorm", "visual.ln_pre"), ("post_layernorm", "visual.ln_post")):
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = sd[f"vision_model.{name}.{p}"]
    for p in ("weight", "bias"):
        out[f"ln_final.{p}"] = sd[f"text_model.final_layer_norm.{p}"]
    for hf_tower, ours in (("vision_model", "visual.transformer"), ("text_model", "transformer")):
        for i in range(2):
            src, dst = f"{hf_tower}.encoder.layers.{i}", f"{ours}.resblocks.{i}"
            for p in ("weight", "bias"):
                out[f"{dst}.attn.in_proj_{p}"] = torch.cat([sd[f"{src}.self_attn.{x}_proj.{p}"] for x in "qkv"])
                out[f"{dst}.attn.out_proj.{p}"] = sd[f"{src}.self_attn.out_proj.{p}"]
                out[f"{dst}.ln_1.{p}"] = sd[f"{src}.layer_norm1.{p}"]
                out[f"{dst}.ln_2.{p}"] = sd[f"{src}.layer_norm2.{p}"]
                out[f"{dst}.mlp.c_fc.{p}"] = sd[f"{src}.mlp.fc1.{p}"]
                out[f"{dst}.mlp.c_proj.{p}"] = sd[f"{src}.mlp.fc2.{p}"]
    return out


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchscript(state):
    """A TorchScript module whose state_dict is `state`, like OpenAI's ViT-B-16.pt archive."""
    root = _Holder()
    for key, value in state.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, _Holder())
            module = getattr(module, part)
        module.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))
    return torch.jit.script(root)


def _assert_parity(folder, reference):
    images, ids, image_ref, text_ref = reference
    clip, tokenizer = load_clip(str(folder))
    image = clip.encode_image(ms.Tensor(images)).asnumpy()
    text = clip.encode_text(ms.Tensor(ids)).asnumpy()
    assert np.abs(image - image_ref).max() < TOL
    assert np.abs(text - text_ref).max() < TOL
    assert tokenizer(["a man in a red shirt"]).shape == (1, 77)


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_hf_folder_matches_transformers(converted_hf, reference, mode, request):
    if mode == "graph":
        request.getfixturevalue("graph_mode")
    _assert_parity(converted_hf, reference)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize("layout", ["torchscript", "state_dict", "irra"])
def test_openai_and_irra_checkpoints_convert_to_the_same_weights(hf_folder, converted_hf, reference, layout,
                                                                 tmp_path):
    state = _openai_state(hf_folder[1])
    src = tmp_path / "ckpt.pt"
    if layout == "torchscript":
        _torchscript(state).save(str(src))
    elif layout == "state_dict":
        torch.save(state, src)
    else:   # IRRA's Checkpointer: {'model': ...}, CLIP under base_model., its own heads beside it, DataParallel prefix
        irra = {f"module.base_model.{k}": v for k, v in state.items() if k != "logit_scale"}
        irra["module.classifier.weight"] = torch.zeros(11, 32)
        torch.save({"model": irra, "epoch": 3}, src)
    out = _convert(src, tmp_path / "out", "--heads", "2", "2")   # OpenAI's width/64 rule does not fit a tiny model
    ours, expected = load_file(out / "model.safetensors"), load_file(converted_hf / "model.safetensors")
    assert sorted(ours) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(ours[key], expected[key], err_msg=key)
    _assert_parity(out, reference)
