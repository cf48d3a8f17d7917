"""`vpmnet index`: embed every image under a folder (or matching a glob) into a gallery index file (see `store`)."""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Iterable, Iterator, List, Optional

import numpy as np

from vpmnet.cli import CommandError
from vpmnet.search import store

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Threads that read, hash, decode and resize images while MindSpore embeds the previous batch.
READERS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint file, run folder or `vpmnet export` folder")
    parser.add_argument("--images", required=True, metavar="DIR_OR_GLOB",
                        help="a folder (searched recursively) or a glob pattern (quote it; ** recurses)")
    parser.add_argument("--out", required=True, metavar="INDEX", help="index file to write, e.g. gallery.safetensors")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add the images whose content is not in INDEX yet")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing INDEX")
    parser.add_argument("--dtype", choices=store.DTYPES,
                        help="embedding storage (default float16, or the existing index's with --append)")
    parser.add_argument("--batch-size", type=int, help="images per encoder call (default 32)")


def find_images(spec: str) -> List[str]:
    """Sorted absolute paths of the image files (extensions in any letter case) under a folder, recursively, or
    matching a glob; a folder the glob matches is searched recursively too."""
    roots = [spec] if os.path.isdir(spec) else sorted(glob.glob(spec, recursive=True))
    found = set()
    for root in roots:
        if os.path.isdir(root):
            for folder, _, names in os.walk(root):
                found.update(os.path.join(folder, name) for name in names)
        else:
            found.add(root)
    return sorted(os.path.abspath(p) for p in found
                  if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))


@dataclass
class ImageFile:
    path: str
    sha256: bytes = b""
    pixels: Optional[np.ndarray] = None   # None when known (already indexed) or unreadable
    error: str = ""


def read_image(path: str, known: frozenset, preprocess) -> ImageFile:
    """Hash a file; decode and preprocess it only if its content is not in `known`."""
    from vpmnet.data.transforms import CorruptImageError

    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).digest()
    except OSError as exc:
        return ImageFile(path, error=f"cannot read image {path}: {exc.strerror or exc}")
    if digest in known:
        return ImageFile(path, digest)
    try:
        # Decoded from the path (a second read, from the page cache) so that errors name the file.
        return ImageFile(path, digest, preprocess(path))
    except CorruptImageError as exc:
        return ImageFile(path, digest, error=str(exc))


def read_images(paths: Iterable[str], known: frozenset, preprocess, lookahead: int) -> Iterator[ImageFile]:
    """`read_image` over `paths` on reader threads, in order, with at most `lookahead` files in flight."""
    paths = iter(paths)
    with ThreadPoolExecutor(READERS) as pool:
        pending = deque(pool.submit(read_image, p, known, preprocess) for p in islice(paths, lookahead))
        while pending:
            done = pending.popleft().result()
            following = next(paths, None)
            if following is not None:
                pending.append(pool.submit(read_image, following, known, preprocess))
            yield done


def build(model, paths: List[str], base: store.GalleryIndex, batch_size: int, progress: bool = True):
    """Embed the files of `paths` whose content `base` lacks; returns (index with them added, report dict).

    Ctrl-C stops early and returns what was embedded so far, with `report["interrupted"]` set.
    """
    from tqdm import tqdm

    known = frozenset(base.digests())
    seen = set(known)
    report = {"known": 0, "duplicates": 0, "skipped": [], "interrupted": False}
    embeddings, digests, kept, batch = [], [], [], []

    def flush():
        if batch:
            # Cast per batch: a million float32 rows would be 2 GB before a float16 index stores them.
            embeddings.append(model.encode_pixels(np.stack([item.pixels for item in batch]), batch_size)
                              .astype(base.embeddings.dtype))
            digests.extend(item.sha256 for item in batch)
            kept.extend(item.path for item in batch)
            batch.clear()

    bar = tqdm(total=len(paths), unit="img", dynamic_ncols=True, file=sys.stderr, disable=not progress,
               mininterval=1.0)
    try:
        for item in read_images(paths, known, model.preprocess, 2 * batch_size):
            bar.update(1)
            if item.error:
                report["skipped"].append((item.path, item.error))
            elif item.sha256 in known:
                report["known"] += 1
            elif item.sha256 in seen:   # same bytes as another file of this run
                report["duplicates"] += 1
            else:
                seen.add(item.sha256)
                batch.append(item)
                if len(batch) == batch_size:
                    flush()
        flush()
    except KeyboardInterrupt:
        report["interrupted"] = True
    finally:
        bar.close()
    report["added"] = len(kept)
    if not kept:
        return base, report
    return base.extended(np.concatenate(embeddings), np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 32), kept), report


def run(args) -> int:
    from vpmnet.inference import IMAGE_BATCH, load

    batch_size = IMAGE_BATCH if args.batch_size is None else args.batch_size
    if batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, got {batch_size}")
    existing = None
    if os.path.exists(args.out):
        if not (args.append or args.overwrite):
            raise CommandError(f"{args.out} exists; pass --append to add new images to it or --overwrite to replace it")
        if args.append:
            existing = store.read_header(args.out)
            if args.dtype and args.dtype != existing["dtype"]:
                raise CommandError(f"{args.out} stores {existing['dtype']} embeddings; --dtype {args.dtype} "
                                   "cannot be appended to it")
    paths = find_images(args.images)
    if not paths:
        where = f"in the folder {args.images}" if os.path.isdir(args.images) else f"matching {args.images}"
        raise CommandError(f"no images found {where} (looked for {', '.join(IMAGE_EXTENSIONS)} in any letter case, "
                           "in sub-folders too)")
    model = load(args.model)
    if existing:
        if existing["fingerprint"] != model.fingerprint:
            raise CommandError(f"{args.out} was built with model {existing['fingerprint']} ({existing['model']}), "
                               f"but {args.model} is model {model.fingerprint}: embeddings of different models are "
                               "not comparable; index into a new file or use the index's model")
        base = store.read(args.out)
    else:
        base = store.empty(model.embed_dim, args.dtype or "float16", model.fingerprint, model.source)
    print(f"{len(paths)} image files in {args.images}; model {model.fingerprint} ({model.source})", file=sys.stderr)

    start = time.perf_counter()
    index, report = build(model, paths, base, batch_size)
    seconds = time.perf_counter() - start
    if report["added"]:
        store.write(args.out, index)
    parts = [f"added {report['added']} images in {seconds:.1f} s"
             + (f" ({report['added'] / seconds:.1f} images/s)" if report["added"] else "")]
    if report["known"]:
        parts.append(f"{report['known']} already indexed")
    if report["duplicates"]:
        parts.append(f"{report['duplicates']} copies of other files left out")
    if len(index):
        parts.append(f"{args.out} holds {len(index)} images ({index.dtype})")
    print("; ".join(parts))
    if report["skipped"]:
        print(f"skipped {len(report['skipped'])} unreadable files:", file=sys.stderr)
        for _, reason in report["skipped"]:
            print(f"  {reason}", file=sys.stderr)
    if report["interrupted"]:
        print("interrupted: " + ("the images embedded so far are saved; " if report["added"] else "")
              + "run again with --append to continue", file=sys.stderr)
        return 130
    if not len(index):
        raise CommandError(f"none of the {len(paths)} image files could be read; no index written")
    return 0
