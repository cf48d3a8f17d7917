"""`vpmnet data-info`: validate a dataset and print, per split, identities, images, captions and caption lengths."""
from __future__ import annotations

import argparse
import json
from typing import List, Sequence

import numpy as np

from vpmnet.data.datasets import MISSING_IMAGE_POLICIES, DatasetSplits, dataset_names, load_dataset

CONTEXT_LENGTH = 77


def token_stats(lengths: Sequence[int], context_length: int = CONTEXT_LENGTH) -> dict:
    """Caption lengths in BPE tokens (SOT and EOT not counted); a caption is cut when it needs more than
    context_length - 2 of them."""
    if not len(lengths):
        return {"mean": 0.0, "p95": 0.0, "max": 0, f"share_over_{context_length}": 0.0}
    lengths = np.asarray(lengths)
    return {"mean": round(float(lengths.mean()), 2), "p95": round(float(np.percentile(lengths, 95)), 2),
            "max": int(lengths.max()),
            f"share_over_{context_length}": round(float(np.mean(lengths + 2 > context_length)), 6)}


def dataset_report(splits: DatasetSplits, tokenizer) -> dict:
    """Counts and caption-length statistics per split, plus the problems the reader found."""
    def summary(ids: int, images: int, captions: List[str]) -> dict:
        lengths = [len(ids_) for ids_ in tokenizer.encode_batch(captions)] if captions else []
        return {"ids": ids, "images": images, "captions": len(captions), "tokens": token_stats(lengths)}

    report = {"dataset": splits.name, "annotation": splits.annotation_path,
              "train": summary(splits.num_classes, len({s.image_id for s in splits.train}),
                               [s.caption for s in splits.train])}
    for name in ("val", "test"):
        split = getattr(splits, name)
        report[name] = summary(len(set(split.image_pids)), len(split.image_paths), split.captions)
    report["problems"] = list(splits.problems)
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['annotation']}"]
    for name in ("train", "val", "test"):
        s, t = report[name], report[name]["tokens"]
        over = t[f"share_over_{CONTEXT_LENGTH}"]
        lines.append(f"  {name:5s} {s['ids']:7d} ids {s['images']:8d} images {s['captions']:8d} captions   "
                     f"tokens mean {t['mean']:.1f} p95 {t['p95']:.0f} max {t['max']} over {CONTEXT_LENGTH}: {over:.2%}")
    lines.append("  problems: " + ("none" if not report["problems"] else ""))
    lines.extend(f"    - {p}" for p in report["problems"])
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Exit status: 0 if the dataset is clean, 1 if problems were found, 2 if it cannot be read."
    parser.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(dataset_names())}")
    parser.add_argument("--root", required=True, help="the dataset folder or its parent")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--missing-images", choices=MISSING_IMAGE_POLICIES, default="skip",
                        help="skip (default): report missing images as a problem; error: stop on them")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer file or folder (default: the CLIP BPE vocabulary)")


def run(args: argparse.Namespace) -> int:
    from vpmnet.clip.tokenizer import load_tokenizer

    splits = load_dataset(args.dataset, args.root, args.missing_images)
    report = dataset_report(splits, load_tokenizer(args.tokenizer, context_length=CONTEXT_LENGTH))
    print(json.dumps(report) if args.json else format_report(report))
    return 1 if report["problems"] else 0
