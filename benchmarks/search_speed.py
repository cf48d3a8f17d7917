"""Gallery search: index build images/s, query latency against plain NumPy, memory per million images, FAISS recall.

- Index build: `vpmnet index`'s loop (read, hash, decode, preprocess, embed) over synthetic pedestrians with a
  model (`--model`, default a random one of configs/cpu_smoke.yaml's architecture), after graph compilation.
- Query latency for 10k, 100k and 1M random unit vectors of dim 512, one query and a batch of 64, top-10:
  the reference is plain NumPy on a float32 matrix (`q @ G.T`, `argpartition`, sort of the 10); against it the
  chunked exact search on float32 and float16 storage, and FAISS IVF (if faiss-cpu is installed) with its
  recall@10 against exact search, on random vectors (the worst case for IVF) and on clustered ones (like
  embeddings of many images of fewer people).
- Memory per million images: embeddings in each dtype plus the per-image hash and path (from a written index).
- With `--dataset ROOT` (a `vpmnet synth` folder) and a trained `--model`: the share of the test captions whose
  identity is among the top 5 of the test gallery, next to the share a random ranking gets.

    python benchmarks/search_speed.py [--quick] [--model PATH] [--dataset ROOT] [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from vpmnet.search import store
from vpmnet.search.topk import build_faiss, exact_topk, faiss_factory, faiss_topk

DIM = 512
TOPK = 10
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs", "cpu_smoke.yaml")


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unit_rows(rng, rows: int, clusters: int = 0) -> np.ndarray:
    """Random unit vectors; with `clusters`, scattered around that many random centres (cosine ~0.8 to the centre)."""
    if clusters:
        centres = rng.standard_normal((clusters, DIM), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x = centres[rng.integers(0, clusters, rows)]
        x += rng.standard_normal((rows, DIM), dtype=np.float32) * np.float32(0.75 / np.sqrt(DIM))
    else:
        x = rng.standard_normal((rows, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def numpy_reference(queries: np.ndarray, gallery: np.ndarray, k: int):
    """Plain NumPy: all scores, argpartition, then sort the k."""
    scores = queries @ gallery.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
    return np.take_along_axis(top, order, 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def latency(sizes, repeats: int, use_faiss: bool) -> None:
    rng = np.random.default_rng(0)
    print(f"\nquery latency, top-{TOPK}, dim {DIM}, median of {repeats} (ms; ratio to plain NumPy float32)")
    header = f"{'gallery':>9} {'batch':>5} {'NumPy f32':>10} {'exact f32':>15} {'exact f16':>15}"
    print(header + (f" {'FAISS IVF':>15} {'recall@10':>9}" if use_faiss else ""))
    for size in sizes:
        gallery = unit_rows(rng, size)
        half = gallery.astype(np.float16)
        index = None
        if use_faiss:
            start = time.perf_counter()
            factory = faiss_factory(size, "float16")
            index = build_faiss(half, factory)
            print(f"{'':>9} FAISS {factory}: built in {time.perf_counter() - start:.1f} s")
        for batch in (1, 64):
            queries = unit_rows(rng, batch)
            reference = timed(lambda: numpy_reference(queries, gallery, TOPK), repeats)
            row = f"{size:>9,} {batch:>5} {reference * 1e3:>10.1f}"
            for storage in (gallery, half):
                seconds = timed(lambda: exact_topk(queries, storage, TOPK), repeats)
                row += f" {seconds * 1e3:>8.1f} ({seconds / reference:.2f})"
            if index is not None:
                seconds = timed(lambda: faiss_topk(index, queries, TOPK), repeats)
                truth = exact_topk(queries, half, TOPK)[1]
                row += f" {seconds * 1e3:>8.1f} ({seconds / reference:.2f}) {recall(faiss_topk(index, queries, TOPK)[1], truth):>9.3f}"
            print(row)
        del gallery, half, index


def faiss_recall(size: int, queries: int) -> None:
    """Recall@10 of FAISS IVF (default nprobe, and a sweep) on random and on clustered unit vectors."""
    rng = np.random.default_rng(1)
    factory = faiss_factory(size, "float16")
    print(f"\nFAISS {factory} recall@10 against exact search, {size:,} vectors, {queries} queries")
    for name, clusters in (("random", 0), (f"clustered ({size // 20:,} centres)", size // 20)):
        gallery = unit_rows(rng, size, clusters).astype(np.float16)
        # Queries near gallery items, as a description is near the images of its person.
        probe = gallery[rng.integers(0, size, queries)].astype(np.float32) + unit_rows(rng, queries) * np.float32(0.5)
        probe /= np.linalg.norm(probe, axis=1, keepdims=True)
        truth = exact_topk(probe, gallery, TOPK)[1]
        index = build_faiss(gallery, factory)
        lists = int(factory[3:].split(",")[0])
        cells = []
        for nprobe in sorted({1, max(1, lists // 32), max(1, lists // 8), max(1, lists // 2)}):
            cells.append(f"nprobe {nprobe}: {recall(faiss_topk(index, probe, TOPK, nprobe)[1], truth):.3f}")
        print(f"  {name:<28} " + ", ".join(cells) + f"  (default nprobe {max(1, -(-lists // 8))})")


def memory(count: int = 10000) -> None:
    """Bytes per image of an index file, scaled to a million images."""
    rng = np.random.default_rng(2)
    paths = [f"/data/footage/camera_{i % 16:02d}/2024-05-{1 + i % 28:02d}/person_{i:07d}.jpg" for i in range(count)]
    print(f"\nmemory per million images (dim {DIM}; paths of ~{int(np.mean([len(p) for p in paths]))} bytes)")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in store.DTYPES:
            index = store.GalleryIndex(unit_rows(rng, count).astype(dtype), rng.integers(0, 256, (count, 32), np.uint8),
                                       paths, "0" * 16, "/model")
            path = os.path.join(folder, f"{dtype}.safetensors")
            store.write(path, index)
            per_image = os.path.getsize(path) / count
            embedding = np.dtype(dtype).itemsize * DIM
            print(f"  {dtype}: index file {per_image * 1e6 / 2**30:.2f} GiB per million ({per_image:.0f} B/image: "
                  f"{embedding} embedding + {per_image - embedding:.0f} hash, offset, path); exact search holds the "
                  f"embeddings ({embedding * 1e6 / 2**30:.2f} GiB) and paths in memory")


def random_model(folder: str) -> str:
    """A run folder holding a random model of configs/cpu_smoke.yaml's architecture."""
    from vpmnet import checkpoint
    from vpmnet.clip.tokenizer import load_tokenizer
    from vpmnet.config import load_config
    from vpmnet.model import build_model

    cfg = load_config(CONFIG)
    model = build_model(cfg, 1, load_pretrained=False)
    load_tokenizer().save(os.path.join(folder, "tokenizer"))
    checkpoint.save(os.path.join(folder, "best.safetensors"), checkpoint.weights_of(model),
                    {"kind": "best", "config": cfg.to_dict(), "num_classes": 1, "tokenizer": "tokenizer", "state": {}})
    return folder


def build_speed(model, images: int, batch_size: int) -> None:
    from vpmnet.data.synth import generate
    from vpmnet.search.index import build, find_images

    with tempfile.TemporaryDirectory() as folder:
        generate(folder, identities=max(1, images // 4), images_per_identity=4, size=model.image_size,
                 test_identities=0, val_identities=0)
        paths = find_images(os.path.join(folder, "imgs"))
        pixels = np.stack([model.preprocess(p) for p in paths[:batch_size]])
        start = time.perf_counter()
        model.encode_pixels(pixels, batch_size)
        compile_seconds = time.perf_counter() - start
        embed = timed(lambda: model.encode_pixels(pixels, batch_size), 2)
        empty = store.empty(model.embed_dim, "float16", model.fingerprint, model.source)
        start = time.perf_counter()
        index, _ = build(model, paths, empty, batch_size, progress=False)
        seconds = time.perf_counter() - start
    print(f"\nindex build, {len(index)} synthetic images {model.image_size[0]}x{model.image_size[1]}, batch {batch_size}, "
          f"model {model.source}")
    print(f"  first batch (graph compilation): {compile_seconds:.1f} s")
    print(f"  embedding alone: {batch_size / embed:.1f} images/s; whole build (read, hash, decode, resize, embed): "
          f"{len(index) / seconds:.1f} images/s")


def top5_share(model, root: str) -> None:
    """Share of the test captions whose identity is among the top 5 of the test gallery (index + search path)."""
    from vpmnet.data import load_dataset
    from vpmnet.search.index import build

    test = load_dataset("synthetic", root).test
    empty = store.empty(model.embed_dim, "float16", model.fingerprint, model.source)
    index, report = build(model, list(test.image_paths), empty, 32, progress=False)
    pid_of = dict(zip(map(os.path.abspath, test.image_paths), test.image_pids))
    gallery_pids = np.array([pid_of[p] for p in index.paths])
    _, rows = exact_topk(model.encode_texts(test.captions), index.embeddings, 5)
    hits = (gallery_pids[rows] == np.array(test.caption_pids)[:, None])
    # A random ranking: the chance that 5 draws without replacement miss all n images of the identity.
    n, size = np.bincount(gallery_pids)[test.caption_pids], len(gallery_pids)
    chance = 1 - np.prod([(size - n - i) / (size - i) for i in range(5)], axis=0)
    print(f"\ntop-5 share on {root} test split ({len(test.captions)} captions, {size} images, "
          f"{len(set(test.image_pids))} identities, {report['duplicates']} duplicate images):")
    print(f"  identity in the top 5: {hits.any(1).mean():.1%} (top 1: {hits[:, 0].mean():.1%}); "
          f"a random ranking: {chance.mean():.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="galleries of 10k and 100k only, fewer repeats")
    parser.add_argument("--model", help="checkpoint, run folder or export (default: random cpu_smoke architecture)")
    parser.add_argument("--dataset", help="a `vpmnet synth` folder: also measure the top-5 share on its test split")
    parser.add_argument("--repeats", type=int, help="timed repeats per figure (default 5, --quick 3)")
    parser.add_argument("--build-images", type=int, help="images for the build speed (default 512, --quick 128)")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    sizes = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    try:
        import faiss  # noqa: F401
        use_faiss = True
    except ImportError:
        use_faiss = False
        print("faiss-cpu not installed: FAISS figures skipped (pip install 'vpmnet[faiss]')")
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    import vpmnet

    with tempfile.TemporaryDirectory() as folder:
        model = vpmnet.load(args.model or random_model(folder))
        build_speed(model, args.build_images or (128 if args.quick else 512), 32)
        if args.dataset:
            top5_share(model, args.dataset)
    latency(sizes, repeats, use_faiss)
    if use_faiss:
        faiss_recall(sizes[-1], 200)
    memory()
    return 0


if __name__ == "__main__":
    sys.exit(main())
