"""`vpmnet export`: the image and text encoders (prompts and KAN adapters inside) as two MindIR graphs."""
from __future__ import annotations

import argparse
import json
import os
import shutil

import mindspore as ms
import numpy as np

from vpmnet.data.transforms import CLIP_MEAN, CLIP_STD

MANIFEST = "manifest.json"
IMAGE_GRAPH = "image_encoder.mindir"
TEXT_GRAPH = "text_encoder.mindir"


def export_encoders(ckpt: str, out: str) -> dict:
    """Write `image_encoder.mindir`, `text_encoder.mindir`, `tokenizer/` and `manifest.json` into `out`."""
    from vpmnet.model import ImageEncoder, TextEncoder, model_from_checkpoint

    model, cfg, record, tokenizer = model_from_checkpoint(ckpt)
    height, width = cfg.model.image_size
    length = cfg.data.text_length
    os.makedirs(out, exist_ok=True)
    # A dynamic batch axis: one graph serves any batch size (DESIGN §13).
    images = ms.Tensor(shape=[None, 3, height, width], dtype=ms.float32)
    ids = ms.Tensor(shape=[None, length], dtype=ms.int32)
    ms.export(ImageEncoder(model), images, file_name=os.path.join(out, IMAGE_GRAPH), file_format="MINDIR")
    ms.export(TextEncoder(model), ids, file_name=os.path.join(out, TEXT_GRAPH), file_format="MINDIR")
    tokenizer_dir = os.path.join(out, "tokenizer")
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    tokenizer.save(tokenizer_dir)
    manifest = {
        "format": "vpmnet-export/1",
        "image_encoder": {"file": IMAGE_GRAPH, "input": "images", "shape": [-1, 3, height, width], "dtype": "float32",
                          "layout": "NCHW, RGB, resized to H x W (bilinear), scaled to [0, 1], then normalised",
                          "mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
        "text_encoder": {"file": TEXT_GRAPH, "input": "caption_ids", "shape": [-1, length], "dtype": "int32",
                         "tokenizer": "tokenizer", "sot_id": tokenizer.sot_id, "eot_id": tokenizer.eot_id,
                         "pad_id": tokenizer.pad_id},
        "image_size": [height, width],
        "context_length": length,
        "embed_dim": cfg.model.clip.embed_dim,
        "normalized": True,
        "fingerprint": record["fingerprint"],
        "source_checkpoint": os.path.abspath(ckpt),
        "config": cfg.to_dict(),
    }
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def load_encoders(folder: str):
    """(image GraphCell, text GraphCell, manifest) from an export folder."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; is this a `vpmnet export` folder?")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    image = ms.nn.GraphCell(ms.load(os.path.join(folder, manifest["image_encoder"]["file"])))
    text = ms.nn.GraphCell(ms.load(os.path.join(folder, manifest["text_encoder"]["file"])))
    return image, text, manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run folder (uses best, else last)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--check", action="store_true", help="reload the graphs and compare them with the cells")


def run(args) -> int:
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    manifest = export_encoders(args.ckpt, args.out)
    print(f"exported {IMAGE_GRAPH} {manifest['image_encoder']['shape']} and {TEXT_GRAPH} "
          f"{manifest['text_encoder']['shape']} -> {os.path.abspath(args.out)} (embedding dim {manifest['embed_dim']})")
    if args.check:
        diff = check_export(args.ckpt, args.out)
        print(f"reloaded with nn.GraphCell: max |difference| image {diff['image']:.2e}, text {diff['text']:.2e}")
    return 0


def check_export(ckpt: str, folder: str, batch: int = 3) -> dict:
    """Max absolute difference between the reloaded graphs and the cells on random inputs."""
    from vpmnet.model import ImageEncoder, TextEncoder, model_from_checkpoint

    model, cfg, _, tokenizer = model_from_checkpoint(ckpt)
    image_graph, text_graph, manifest = load_encoders(folder)
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch, 3, *manifest["image_size"])).astype(np.float32))
    ids = ms.Tensor(tokenizer(["a man in a red jacket", "a woman with a black backpack and blue jeans",
                               "a person"][:batch]))
    return {
        "image": float(np.abs(image_graph(images).asnumpy() - ImageEncoder(model)(images).asnumpy()).max()),
        "text": float(np.abs(text_graph(ids).asnumpy() - TextEncoder(model)(ids).asnumpy()).max()),
    }
