"""`vpmnet eval`: embed a split's gallery and queries, then text->image (and image->text) R1/R5/R10/mAP/mINP."""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict

import numpy as np
from mindspore import Tensor

from vpmnet.config import Config
from vpmnet.metrics import format_table, rank_metrics, similarity_chunks

# Query rows ranked at a time: bounds the similarity block to CHUNK x gallery floats (ICFG: 1024 x 19,848 = 81 MB).
CHUNK = 1024


def embed(encoder, loader, column: str, count: int) -> np.ndarray:
    """Run `encoder` over a padded evaluation loader and keep the first `count` rows."""
    from vpmnet.data import iterate_batches

    feats = [encoder(Tensor(batch[column])).asnumpy() for batch in iterate_batches(loader)]
    return np.concatenate(feats)[:count]


def embed_split(model, cfg: Config, split, tokenizer):
    """(query text features [Nq,D], gallery image features [Ng,D]), L2-normalised."""
    from vpmnet.data import build_gallery_loader, build_query_loader
    from vpmnet.model import ImageEncoder, TextEncoder

    model.set_train(False)
    size = cfg.eval.batch_size
    gallery = embed(ImageEncoder(model), build_gallery_loader(cfg, split, size), "images", len(split.image_paths))
    queries = embed(TextEncoder(model), build_query_loader(cfg, split, tokenizer, size), "caption_ids",
                    len(split.captions))
    return queries, gallery


def evaluate_model(model, cfg: Config, split, tokenizer, i2t: bool = False) -> Dict[str, Dict[str, float]]:
    """{"t2i": metrics} (and "i2t" on request) for one evaluation split."""
    queries, gallery = embed_split(model, cfg, split, tokenizer)
    results = {"t2i": rank_metrics(similarity_chunks(queries, gallery, CHUNK), split.caption_pids, split.image_pids)}
    if i2t:
        results["i2t"] = rank_metrics(similarity_chunks(gallery, queries, CHUNK), split.image_pids, split.caption_pids)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run folder (uses best, else last)")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--i2t", action="store_true", help="also rank captions for each image")
    parser.add_argument("--json", metavar="F", help="write the text->image metrics (percent) to this JSON file")
    parser.add_argument("--root", help="dataset root (default: the checkpoint's data.root)")


def run(args) -> int:
    import mindspore as ms

    from vpmnet.data import load_dataset
    from vpmnet.model import model_from_checkpoint
    from vpmnet.runtime import resolve_device

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device(resolve_device("auto"))
    model, cfg, record, tokenizer = model_from_checkpoint(args.ckpt)
    if args.root:
        cfg.data.root = args.root
    # Evaluation never drops data silently: a missing image is an error here whatever the training policy.
    splits = load_dataset(cfg.data.dataset, cfg.data.root, "error")
    split = getattr(splits, args.split)
    if split is None or not len(split.captions):
        raise ValueError(f"{cfg.data.dataset} at {cfg.data.root} has no '{args.split}' split")
    results = evaluate_model(model, cfg, split, tokenizer, i2t=args.i2t)
    print(f"{cfg.data.dataset} {args.split}: {len(split.captions)} queries, {len(split.image_paths)} images")
    print(format_table(results))
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results["t2i"] if not args.i2t else {**results["t2i"], "i2t": results["i2t"]}, f, indent=2)
    return 0
