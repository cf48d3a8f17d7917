"""`vpmnet convert-clip`: Hugging Face, OpenAI and IRRA CLIP weights -> a MindSpore CLIP folder for `load_clip`."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
from typing import List, Optional, Tuple

import numpy as np

from vpmnet.cli import CommandError
from vpmnet.clip.config import CLIPConfig, TextConfig, VisionConfig
from vpmnet.clip.weights import (CONFIG_FILE, POSITION_KEY, TOKENIZER_FILES, WEIGHTS_FILE, State, check_state,
                                 read_safetensors)

# Keys of OpenAI checkpoints that are not CLIP encoder weights.
_OPENAI_EXTRAS = {"logit_scale", "input_resolution", "context_length", "vocab_size"}
# Hugging Face key -> OpenAI key, for everything but the q/k/v projections (packed separately).
_HF_RENAMES = [
    (r"^text_model\.embeddings\.token_embedding\.weight$", "token_embedding.weight"),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.encoder\.layers\.", "transformer.resblocks."),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.weight$", "visual.conv1.weight"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layrnorm\.", "visual.ln_pre."),   # sic: Hugging Face's spelling
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"^vision_model\.encoder\.layers\.", "visual.transformer.resblocks."),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
    (r"\.layer_norm1\.", ".ln_1."),
    (r"\.layer_norm2\.", ".ln_2."),
    (r"\.mlp\.fc1\.", ".mlp.c_fc."),
    (r"\.mlp\.fc2\.", ".mlp.c_proj."),
]
_HF_QKV = re.compile(r"^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$")
# Defaults of transformers' CLIPTextConfig / CLIPVisionConfig, for old config files that omit keys.
_HF_DEFAULTS = {"text_config": {"num_attention_heads": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
                "vision_config": {"num_attention_heads": 12, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
                                  "image_size": 224}}


def add_arguments(parser) -> None:
    parser.add_argument("src", help="a Hugging Face CLIP folder, an OpenAI CLIP .pt, or an IRRA checkpoint (best.pth)")
    parser.add_argument("out_dir", help="folder to write model.safetensors, config.json and the tokenizer to")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size the source was trained at; needed for non-square grids (IRRA: 384 128)")
    parser.add_argument("--stride-size", type=int, help="patch stride of the source (default: the patch size)")
    parser.add_argument("--heads", type=int, nargs=2, metavar=("VISION", "TEXT"),
                        help="attention heads of OpenAI/IRRA checkpoints (default: width / 64, as OpenAI infers)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load a PyTorch checkpoint with full pickle (only for files you trust)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing converted folder")


# ---------------------------------------------------------------------------------------------- reading
def _sniff(path: str) -> str:
    """'safetensors', 'torch' (zip or pickle) or 'unknown', from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(9)
    if path.endswith(".safetensors") or (len(head) == 9 and head[8:9] == b"{"):
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    return "unknown"


def _read_torch(path: str, allow_pickle: bool) -> dict:
    """A TorchScript archive's state dict, or whatever mapping `torch.load` finds in the file."""
    try:
        import torch
    except ImportError as exc:
        raise CommandError(f"{path} is a PyTorch checkpoint: reading it needs torch (`pip install torch`); "
                           "Hugging Face folders convert without it") from exc
    try:   # OpenAI's .pt files are TorchScript archives; IRRA does the same jit-then-pickle fallback
        return torch.jit.load(path, map_location="cpu").state_dict()
    except RuntimeError:
        pass
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise CommandError(f"{path}: holds objects other than tensors; if you trust the file, "
                           "pass --allow-pickle") from exc
    except Exception as exc:  # torch raises assorted errors for damaged archives
        raise CommandError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(obj, dict):
        raise CommandError(f"{path}: expected a state dict, found a {type(obj).__name__}")
    return obj


def _to_numpy(state: dict) -> State:
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):   # a torch tensor; bf16 has no NumPy type, so floats go through fp32
            value = value.detach().cpu()
            value = (value.float() if value.is_floating_point() else value).numpy()
        value = np.asarray(value)
        # OpenAI ships fp16 weights; the MindSpore cells hold fp32.
        out[key] = value.astype(np.float32) if value.dtype.kind == "f" else value
    return out


def _unwrap(state: dict) -> Tuple[State, str]:
    """(state dict with plain keys, 'irra' | 'plain') for IRRA's `{'model': ...}` and DataParallel prefixes."""
    kind = "plain"
    for wrapper in ("model", "state_dict"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("base_model.") for k in state):
        # IRRA's heads (classifier, cross-modal transformer, MLM head) are not CLIP: only base_model is kept.
        state = {k[len("base_model."):]: v for k, v in state.items() if k.startswith("base_model.")}
        kind = "irra"
    return _to_numpy(state), kind


# ------------------------------------------------------------------------------------ Hugging Face layout
def _hf_config(folder: str) -> dict:
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isfile(path):
        raise CommandError(f"{folder}: no {CONFIG_FILE}; a Hugging Face CLIP folder needs one")
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or "vision_config" not in raw and "text_config" not in raw:
        hint = " (it is already a converted vpmnet folder)" if isinstance(raw, dict) and "vision" in raw else ""
        raise CommandError(f"{path}: not a Hugging Face CLIP config{hint}")
    cfg = {}
    for part, defaults in _HF_DEFAULTS.items():
        # Configs written by old transformers keep the non-default values in `*_config_dict`.
        cfg[part] = {**defaults, **(raw.get(part) or {}), **(raw.get(part + "_dict") or {})}
        for key, want in (("hidden_act", "quick_gelu"), ("layer_norm_eps", 1e-5)):
            if cfg[part][key] != want:
                raise CommandError(f"{path}: {part}.{key} is {cfg[part][key]!r}; this CLIP port (OpenAI CLIP, "
                                   f"as VPM-Net and IRRA use) supports only {key} = {want!r}")
    return cfg


def _read_hf_folder(folder: str, allow_pickle: bool) -> State:
    single, index = os.path.join(folder, "model.safetensors"), os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(single):
        return read_safetensors(single)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return {k: v for shard in shards for k, v in read_safetensors(os.path.join(folder, shard)).items()}
    legacy = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(legacy):
        return _unwrap(_read_torch(legacy, allow_pickle))[0]
    raise CommandError(f"{folder}: no model.safetensors (or shards, or pytorch_model.bin) in this folder")


def _rename_hf(key: str) -> Optional[str]:
    new = key
    for pattern, repl in _HF_RENAMES:
        new = re.sub(pattern, repl, new)
    return new if new != key else None


def hf_to_openai(state: State, source: str) -> State:
    """Rename Hugging Face CLIP keys to OpenAI's, packing q/k/v into in_proj and transposing projections."""
    out, qkv, unknown = {}, {}, []
    for key, value in state.items():
        match = _HF_QKV.match(key)
        if key == "logit_scale" or key.endswith("position_ids"):
            continue
        if match:
            qkv.setdefault(_rename_hf(f"{match[1]}.attn.in_proj_{match[3]}"), {})[match[2]] = value
        elif key in ("visual_projection.weight", "text_projection.weight"):
            # nn.Linear stores [out, in]; OpenAI's projections are plain [in, out] matrices.
            out["visual.proj" if key.startswith("visual") else "text_projection"] = np.ascontiguousarray(value.T)
        elif _rename_hf(key):
            out[_rename_hf(key)] = value
        else:
            unknown.append(key)
    for key, parts in qkv.items():
        if key is None or set(parts) != {"q", "k", "v"}:
            unknown.append(f"{key}: q/k/v projections {sorted(parts)}")
        else:
            out[key] = np.concatenate([parts["q"], parts["k"], parts["v"]])
    if unknown:
        raise CommandError(f"{source}: keys that are not part of a Hugging Face CLIPModel: "
                           f"{', '.join(sorted(map(str, unknown)))}")
    return out


# -------------------------------------------------------------------------------------------- OpenAI layout
def _layers(state: State, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    found = {int(m[1]) for m in map(pattern.match, state) if m}
    return max(found) + 1 if found else 0


def _grid(num_patches: int, patch: int, stride: int, image_size, stated, source: str):
    """(checkpoint's image size, note) for a position embedding holding `num_patches` grid entries."""
    if image_size:
        cfg = VisionConfig(patch_size=patch, stride_size=stride, image_size=tuple(image_size))
        gh, gw = cfg.grid()
        if gh * gw == num_patches:
            return tuple(image_size), ""
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise CommandError(f"{source}: {POSITION_KEY} holds {num_patches} grid entries, not a square grid; "
                           "pass --image-size H W, the size the checkpoint was trained at (IRRA: 384 128)")
    size = ((side - 1) * stride + patch,) * 2
    asked = image_size or stated
    note = (f"the checkpoint's position grid is {side}x{side} ({size[0]}x{size[1]}), not that of "
            f"{asked[0]}x{asked[1]}: config.json keeps the checkpoint's; load_clip(image_size=...) resizes it"
            if asked and tuple(asked) != size else "")
    return size, note


def openai_config(state: State, source: str, image_size=None, stride=None, heads=None,
                  hf: Optional[dict] = None):
    """(CLIPConfig, note) inferred from an OpenAI-layout state dict as OpenAI's `build_model` does.

    Weights do not show head counts: they come from a Hugging Face config, `heads` (vision, text), or
    OpenAI's rule width / 64.
    """
    for key in ("visual.conv1.weight", POSITION_KEY, "visual.proj", "token_embedding.weight",
                "positional_embedding", "text_projection"):
        if key not in state:
            raise CommandError(f"{source}: no '{key}': not a CLIP ViT checkpoint")
    width, _, patch, _ = state["visual.conv1.weight"].shape
    text_width = state["token_embedding.weight"].shape[1]
    stride = stride or patch
    stated = hf["vision_config"]["image_size"] if hf else None
    image, note = _grid(state[POSITION_KEY].shape[0] - 1, patch, stride, image_size,
                        (stated, stated) if stated else None, source)
    if not heads:
        heads = ((hf["vision_config"]["num_attention_heads"], hf["text_config"]["num_attention_heads"]) if hf
                 else (width // 64, text_width // 64))
    vision_heads, text_heads = heads
    for tower, w, h in (("vision", width, vision_heads), ("text", text_width, text_heads)):
        if h < 1 or w % h:
            raise CommandError(f"{source}: {h} heads do not divide the {tower} width {w}; pass --heads VISION TEXT")
    vision = VisionConfig(width=width, layers=_layers(state, "visual."), heads=vision_heads,
                          patch_size=patch, stride_size=stride, image_size=image)
    text = TextConfig(width=text_width, layers=_layers(state, ""), heads=text_heads,
                      context_length=state["positional_embedding"].shape[0],
                      vocab_size=state["token_embedding.weight"].shape[0])
    return CLIPConfig(embed_dim=state["text_projection"].shape[1], vision=vision, text=text), note


def openai_to_mindspore(state: State) -> State:
    """OpenAI CLIP key names -> the MindSpore names of `vpmnet.clip.model.CLIP`."""
    out = {}
    for key, value in state.items():
        if key in _OPENAI_EXTRAS:
            continue
        new = re.sub(r"(^|\.)(ln_\w+)\.weight$", r"\1\2.gamma", key)
        new = re.sub(r"(^|\.)(ln_\w+)\.bias$", r"\1\2.beta", new)
        new = new.replace(".mlp.c_fc.", ".mlp.0.").replace(".mlp.c_proj.", ".mlp.2.")
        new = new.replace("token_embedding.weight", "token_embedding.embedding_table")
        out[new if new.startswith("visual.") else "text." + new] = value
    return out


# --------------------------------------------------------------------------------------------------- run
def _read_source(src: str, allow_pickle: bool) -> Tuple[State, str, Optional[dict]]:
    """(OpenAI-layout state, format name, Hugging Face config or None)."""
    if os.path.isdir(src):
        hf = _hf_config(src)
        return hf_to_openai(_read_hf_folder(src, allow_pickle), src), "Hugging Face", hf
    if not os.path.isfile(src):
        raise FileNotFoundError(f"no such file or folder: {src}")
    kind = _sniff(src)
    if kind == "unknown":
        raise CommandError(f"{src}: unknown format: not a Hugging Face folder, a safetensors file or a PyTorch "
                           "checkpoint (OpenAI .pt, IRRA best.pth)")
    state, wrapper = _unwrap(read_safetensors(src) if kind == "safetensors" else _read_torch(src, allow_pickle))
    if "vision_model.embeddings.patch_embedding.weight" in state:
        folder = os.path.dirname(os.path.abspath(src))
        return hf_to_openai(state, src), "Hugging Face", _hf_config(folder)
    if "visual.conv1.weight" not in state:
        raise CommandError(f"{src}: unknown format: no CLIP vision weights (keys start with "
                           f"{', '.join(sorted(state)[:5]) or 'nothing'})")
    return state, "IRRA" if wrapper == "irra" else "OpenAI", None


def _write_tokenizer(src: str, out_dir: str) -> str:
    """Write tokenizer.json from the source's vocabulary, or the default OpenAI one; returns what was done."""
    from vpmnet.clip.tokenizer import load_tokenizer

    folder = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    if any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        load_tokenizer(folder).save(out_dir)
        return f"tokenizer from {folder}"
    try:
        load_tokenizer(None).save(out_dir)
    except (OSError, ValueError) as exc:
        return f"no tokenizer written ({exc}); load_clip will need the default OpenAI vocabulary"
    return "default OpenAI tokenizer (the source has none)"


def convert(src: str, out_dir: str, image_size=None, stride_size=None, heads=None, allow_pickle=False,
            overwrite=False) -> List[str]:
    """Convert `src` into `out_dir`; returns lines describing what was done."""
    from safetensors.numpy import save_file

    from vpmnet.clip.model import CLIP

    target = os.path.join(out_dir, WEIGHTS_FILE)
    if os.path.exists(target) and not overwrite:
        raise CommandError(f"{target} exists; pass --overwrite to replace it")
    state, fmt, hf = _read_source(src, allow_pickle)
    cfg, note = openai_config(state, src, image_size, stride_size, heads, hf)
    ms_state = openai_to_mindspore(state)
    # Check against the real cell now, so a bad source fails here rather than at load time.
    check_state({n: tuple(p.shape) for n, p in CLIP(cfg).parameters_and_names()}, ms_state, src)
    os.makedirs(out_dir, exist_ok=True)
    tmp = target + ".tmp"
    save_file({k: np.ascontiguousarray(v) for k, v in ms_state.items()}, tmp, metadata={"format": "np"})
    os.replace(tmp, target)
    with open(os.path.join(out_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)
    v, t = cfg.vision, cfg.text
    lines = [f"converted {fmt} CLIP {src} -> {out_dir}",
             f"  vision: width {v.width}, {v.layers} layers, {v.heads} heads, patch {v.patch_size}, "
             f"stride {v.stride_size}, grid {'x'.join(map(str, v.grid()))} ({v.image_size[0]}x{v.image_size[1]})",
             f"  text: width {t.width}, {t.layers} layers, {t.heads} heads, context {t.context_length}, "
             f"vocab {t.vocab_size}; embed dim {cfg.embed_dim}; {len(ms_state)} tensors",
             "  " + _write_tokenizer(src, out_dir)]
    return lines + (["  note: " + note] if note else [])


def run(args) -> int:
    for line in convert(args.src, args.out_dir, args.image_size, args.stride_size, args.heads,
                        args.allow_pickle, args.overwrite):
        print(line)
    return 0
