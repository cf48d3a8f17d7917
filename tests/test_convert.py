"""Position-embedding resize against an independent bilinear oracle; errors of CLIP weight import and loading."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from vpmnet.cli import main
from vpmnet.clip import CLIPConfig, TextConfig, VisionConfig, load_clip
from vpmnet.clip.model import CLIP
from vpmnet.clip.weights import CheckpointError, load_clip_weights, resize_position_embedding
from vpmnet.config import PromptConfig

CFG = CLIPConfig(embed_dim=16, vision=VisionConfig(width=32, layers=1, heads=2, patch_size=8, stride_size=8,
                                                   image_size=(32, 32)),
                 text=TextConfig(width=32, layers=1, heads=2, context_length=77, vocab_size=500))


def bilinear_oracle(grid, new_h, new_w):
    """Bilinear resize of an [h, w, c] grid, align_corners=False, one output pixel at a time.

    Output pixel i samples input coordinate (i + 0.5) * in / out - 0.5, clamped below at 0; its two
    neighbours are floor() and floor() + 1 (clamped to the last row), weighted by distance.
    """
    h, w, _ = grid.shape
    out = np.zeros((new_h, new_w, grid.shape[2]))
    for i in range(new_h):
        y = max((i + 0.5) * h / new_h - 0.5, 0.0)
        y0, dy = int(y), y - int(y)
        y1 = min(y0 + 1, h - 1)
        for j in range(new_w):
            x = max((j + 0.5) * w / new_w - 0.5, 0.0)
            x0, dx = int(x), x - int(x)
            x1 = min(x0 + 1, w - 1)
            out[i, j] = ((1 - dy) * ((1 - dx) * grid[y0, x0] + dx * grid[y0, x1])
                         + dy * ((1 - dx) * grid[y1, x0] + dx * grid[y1, x1]))
    return out


GRIDS = [((14, 14), (24, 8)), ((4, 4), (6, 4)), ((3, 5), (7, 2)), ((5, 5), (5, 5)), ((2, 3), (1, 1))]


@pytest.mark.parametrize("old,new", GRIDS)
def test_resize_matches_bilinear_oracle(old, new, rng):
    posemb = rng.standard_normal((1 + old[0] * old[1], 6)).astype(np.float32)
    got = resize_position_embedding(posemb, old, new)
    assert got.shape == (1 + new[0] * new[1], 6) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], posemb[0])
    expected = bilinear_oracle(posemb[1:].reshape(*old, 6).astype(np.float64), *new)
    np.testing.assert_allclose(got[1:], expected.reshape(-1, 6), atol=1e-6)


@pytest.mark.parametrize("old,new", GRIDS)
def test_resize_matches_torch_interpolate(old, new, rng):
    torch = pytest.importorskip("torch")
    posemb = rng.standard_normal((1 + old[0] * old[1], 6)).astype(np.float32)
    grid = torch.from_numpy(posemb[1:]).reshape(1, *old, 6).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=new, mode="bilinear", align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(-1, 6).numpy()
    # torch interpolates in fp32, the resize in fp64: both round to fp32 differently in the last bits
    np.testing.assert_allclose(resize_position_embedding(posemb, old, new)[1:], expected, atol=1e-5)


def _state(cfg=CFG):
    return {name: p.asnumpy() for name, p in CLIP(cfg).parameters_and_names()}


def _folder(path, state, cfg=CFG):
    """A folder as `convert-clip` writes it (weights and config; the tokenizer is the default one)."""
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"embed_dim": cfg.embed_dim, "vision": vars(cfg.vision),
                                                  "text": vars(cfg.text)}))
    return path


def _to_openai(state):
    """MindSpore names -> OpenAI CLIP names (the inverse of the converter's renaming, written out here)."""
    out = {}
    for key, value in state.items():
        new = key.replace(".gamma", ".weight").replace(".beta", ".bias").replace(".mlp.0.", ".mlp.c_fc.")
        new = new.replace(".mlp.2.", ".mlp.c_proj.").replace("embedding_table", "weight")
        out[new[len("text."):] if new.startswith("text.") else new] = value
    return out


def test_load_clip_resizes_the_position_grid(tmp_path):
    state = _state()
    clip, tokenizer = load_clip(str(_folder(tmp_path / "ms", state)), image_size=(48, 32))
    assert clip.visual.positional_embedding.shape == (1 + 6 * 4, 32)
    np.testing.assert_allclose(clip.visual.positional_embedding.asnumpy(),
                               resize_position_embedding(state["visual.positional_embedding"], (4, 4), (6, 4)))
    np.testing.assert_array_equal(clip.text.text_projection.asnumpy(), state["text.text_projection"])
    assert tokenizer(["a woman with a black backpack"]).shape == (1, 77)


def test_prompt_parameters_are_not_expected_in_the_file(tmp_path):
    state = _state()
    clip = CLIP(CFG, prompts=PromptConfig(mode="deep", vision_length=2, text_length=2))
    prompts = {n: p.asnumpy() for n, p in clip.parameters_and_names() if ".prompt." in n}
    assert prompts
    load_clip_weights(clip, str(_folder(tmp_path / "ms", state)))
    params = dict(clip.parameters_and_names())
    np.testing.assert_array_equal(params["visual.proj"].asnumpy(), state["visual.proj"])
    for name, value in prompts.items():
        np.testing.assert_array_equal(params[name].asnumpy(), value)


def test_shape_mismatch_names_the_file_and_the_key(tmp_path):
    state = _state()
    state["text.positional_embedding"] = np.zeros((70, 32), np.float32)
    folder = _folder(tmp_path / "ms", state)
    with pytest.raises(CheckpointError) as err:
        load_clip_weights(CLIP(CFG), str(folder))
    assert str(folder / "model.safetensors") in str(err.value)
    assert "text.positional_embedding: file (70, 32) vs model (77, 32)" in str(err.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = _state()
    del state["visual.proj"], state["text.ln_final.beta"]
    state["visual.extra"] = np.zeros(3, np.float32)
    with pytest.raises(CheckpointError) as err:
        load_clip_weights(CLIP(CFG), str(_folder(tmp_path / "ms", state)))
    message = str(err.value)
    assert "missing (2): text.ln_final.beta, visual.proj" in message
    assert "unexpected (1): visual.extra" in message


def test_corrupt_safetensors_names_the_file(tmp_path, capsys):
    folder = _folder(tmp_path / "ms", _state())
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=str(weights)):
        load_clip_weights(CLIP(CFG), str(folder))
    assert main(["convert-clip", str(weights), str(tmp_path / "out")]) == 2
    assert str(weights) in capsys.readouterr().err


def test_missing_source_and_unknown_format(tmp_path, capsys):
    missing = tmp_path / "ViT-B-16.pt"
    assert main(["convert-clip", str(missing), str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_clip(str(tmp_path / "nowhere"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint\n")
    assert main(["convert-clip", str(notes), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(notes) in err and "unknown format" in err


def test_non_quick_gelu_hugging_face_config_is_rejected(tmp_path, capsys):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"text_config": {"hidden_act": "gelu"}, "vision_config": {}}))
    assert main(["convert-clip", str(folder), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "hidden_act" in err and "quick_gelu" in err and str(folder) in err


def test_openai_layout_round_trip_and_grid_handling(tmp_path, capsys):
    """OpenAI names (a safetensors file needs no torch) convert back to the same tensors; widths under 64
    need --heads; a non-square grid (IRRA's 24x8) needs --image-size; a square grid under another
    --image-size is kept, with a note."""
    state = _state()
    src = tmp_path / "openai.safetensors"
    save_file(_to_openai(state), str(src))
    assert main(["convert-clip", str(src), str(tmp_path / "square")]) == 2
    assert "0 heads do not divide the vision width 32; pass --heads" in capsys.readouterr().err
    heads = ["--heads", "2", "2"]
    assert main(["convert-clip", str(src), str(tmp_path / "square"), "--image-size", "48", "32", *heads]) == 0
    assert "load_clip(image_size=...) resizes" in capsys.readouterr().out
    assert json.loads((tmp_path / "square" / "config.json").read_text())["vision"]["image_size"] == [32, 32]
    converted = load_file(str(tmp_path / "square" / "model.safetensors"))
    assert sorted(converted) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(converted[key], value, err_msg=key)

    irra = _to_openai(state)
    irra["visual.positional_embedding"] = resize_position_embedding(state["visual.positional_embedding"],
                                                                    (4, 4), (6, 4))
    src = tmp_path / "irra.safetensors"
    save_file({"base_model." + k: v for k, v in irra.items()}, str(src))
    assert main(["convert-clip", str(src), str(tmp_path / "grid"), *heads]) == 2
    assert "--image-size" in capsys.readouterr().err
    assert main(["convert-clip", str(src), str(tmp_path / "grid"), "--image-size", "48", "32", *heads]) == 0
    assert json.loads((tmp_path / "grid" / "config.json").read_text())["vision"]["image_size"] == [48, 32]
    assert main(["convert-clip", str(src), str(tmp_path / "grid"), "--image-size", "48", "32", *heads]) == 2
    assert "--overwrite" in capsys.readouterr().err
