"""`vpmnet synth`: write the synthetic pedestrian dataset in the CUHK-PEDES format, with identity-disjoint splits.

OUT/reid_raw.json holds one record per image (split, id, file_path, two captions), the images are
OUT/imgs/<split>/<id>_<k>.jpg, and OUT/attributes.json holds every image's identity attributes, near-duplicate
family and camera. Ids are 1-based as in CUHK-PEDES: train first, then val, then test; families stay
together except where a split boundary cuts one. Every image and caption is drawn from a generator seeded
with (seed, identity index), so the output is byte-identical for a seed whatever the number of workers.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from vpmnet.cli import CommandError
from vpmnet.data.synth_attributes import Identity, sample_families
from vpmnet.data.synth_captions import describe
from vpmnet.data.synth_render import render, sample_camera

ANNOTATION_FILE = "reid_raw.json"
ATTRIBUTES_FILE = "attributes.json"
IMAGE_DIR = "imgs"
CAPTIONS_PER_IMAGE = 2
HELD_OUT_SHARE = 0.1     # default share of identities for val and for test
MIN_HELD_OUT = 2         # ... but at least this many each
JPEG_QUALITY = 92


@dataclass(frozen=True)
class IdentityJob:
    index: int               # position in the generated order: seeds this identity's images and captions
    raw_id: int
    split: str
    family: int
    identity: Identity


def parse_size(text: str) -> Tuple[int, int]:
    """`384x128` -> (384, 128), height first."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 384x128), got {text!r}") from None
    if height < 32 or width < 16:
        raise argparse.ArgumentTypeError(f"size {text} is too small to draw a person; use at least 32x16")
    return height, width


def split_sizes(identities: int, val: Optional[int], test: Optional[int]) -> Tuple[int, int, int]:
    """(train, val, test) identity counts; val and test default to 10% each, at least 2."""
    held_out = max(MIN_HELD_OUT, round(HELD_OUT_SHARE * identities))
    val = held_out if val is None else val
    test = held_out if test is None else test
    if val < 0 or test < 0 or identities - val - test < 2:
        raise CommandError(f"{identities} identities cannot hold {val} val and {test} test identities and still "
                           "leave 2 for training")
    return identities - val - test, val, test


def _render_identity(job_and_settings) -> Tuple[List[dict], List[dict]]:
    """Draw, save and caption one identity's images: (reid_raw records, attribute entries)."""
    job, images_per_identity, seed, size, out = job_and_settings
    rng = np.random.default_rng([seed, job.index])
    records, attributes = [], []
    for k in range(images_per_identity):
        camera = sample_camera(rng)
        file_path = f"{job.split}/{job.raw_id:05d}_{k}.jpg"
        render(job.identity, camera, size, rng).save(os.path.join(out, IMAGE_DIR, file_path), quality=JPEG_QUALITY)
        captions = [describe(job.identity, camera.view, rng) for _ in range(CAPTIONS_PER_IMAGE)]
        records.append({"split": job.split, "id": job.raw_id, "file_path": file_path, "captions": captions})
        attributes.append({"file_path": file_path, "id": job.raw_id, "split": job.split, "family": job.family,
                           "identity": job.identity.to_dict(), "camera": camera.summary()})
    return records, attributes


def _write_json(path: str, data) -> None:
    """Write through a temporary file so that a half-written file never carries the real name."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _prepare_output(out: str, overwrite: bool) -> None:
    annotation = os.path.join(out, ANNOTATION_FILE)
    if os.path.exists(annotation):
        if not overwrite:
            raise CommandError(f"{annotation} exists; pass --overwrite to replace the dataset in {out}")
        for name in (ANNOTATION_FILE, ATTRIBUTES_FILE):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        shutil.rmtree(os.path.join(out, IMAGE_DIR), ignore_errors=True)
    for split in ("train", "val", "test"):
        os.makedirs(os.path.join(out, IMAGE_DIR, split), exist_ok=True)


def generate(out: str, identities: int = 1000, images_per_identity: int = 4, seed: int = 0,
             size: Tuple[int, int] = (384, 128), val_identities: Optional[int] = None,
             test_identities: Optional[int] = None, workers: Optional[int] = None,
             overwrite: bool = False) -> dict:
    """Write the dataset to `out`; returns counts per split."""
    if images_per_identity < 1:
        raise CommandError("--images-per-identity must be at least 1")
    counts = split_sizes(identities, val_identities, test_identities)
    _prepare_output(out, overwrite)
    families = sample_families(np.random.default_rng(seed), identities)
    split_of = ["train"] * counts[0] + ["val"] * counts[1] + ["test"] * counts[2]
    jobs = [(family_index, identity) for family_index, family in enumerate(families) for identity in family]
    tasks = [(IdentityJob(i, i + 1, split_of[i], family, identity), images_per_identity, seed, tuple(size), out)
             for i, (family, identity) in enumerate(jobs)]
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_render_identity, tasks, chunksize=max(1, len(tasks) // (8 * workers)))
    else:
        results = [_render_identity(task) for task in tasks]
    records = [r for identity_records, _ in results for r in identity_records]
    attributes = [a for _, identity_attributes in results for a in identity_attributes]
    _write_json(os.path.join(out, ATTRIBUTES_FILE),
                {"seed": seed, "size": list(size), "images": attributes})
    _write_json(os.path.join(out, ANNOTATION_FILE), records)   # last: its presence marks a complete dataset
    return {split: {"ids": n, "images": n * images_per_identity,
                    "captions": n * images_per_identity * CAPTIONS_PER_IMAGE}
            for split, n in zip(("train", "val", "test"), counts)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder; reid_raw.json and imgs/ are written there")
    parser.add_argument("--identities", type=int, default=1000, help="number of people (default 1000)")
    parser.add_argument("--images-per-identity", type=int, default=4, help="images per person (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes byte-identical files")
    parser.add_argument("--size", type=parse_size, default=(384, 128), metavar="HxW",
                        help="image size, height x width (default 384x128)")
    parser.add_argument("--val-identities", type=int, default=None,
                        help=f"identities in the val split (default {HELD_OUT_SHARE:.0%}, at least {MIN_HELD_OUT})")
    parser.add_argument("--test-identities", type=int, default=None,
                        help=f"identities in the test split (default {HELD_OUT_SHARE:.0%}, at least {MIN_HELD_OUT})")
    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    counts = generate(args.out, args.identities, args.images_per_identity, args.seed, args.size,
                      args.val_identities, args.test_identities, args.workers, args.overwrite)
    for split, c in counts.items():
        print(f"{split:5s}: {c['ids']} identities, {c['images']} images, {c['captions']} captions")
    print(f"wrote {os.path.join(args.out, ANNOTATION_FILE)} in {time.perf_counter() - start:.1f} s; "
          f"read it with --dataset synthetic --root {args.out}")
    return 0
