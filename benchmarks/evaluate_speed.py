"""Benchmarks: speed and peak memory of the evaluator's ranking (`rank_metrics` vs a full stable argsort).

    python benchmarks/evaluate_speed.py            # CUHK-PEDES and ICFG-PEDES test shapes (5-15 min on 2 cores)
    python benchmarks/evaluate_speed.py --quick    # CUHK-PEDES shape only (~30 s)

Section "metrics": random [captions × images] cosine-like scores with the identity layout of each test split
(CUHK-PEDES: 1,000 identities, 3,074 images, 6,156 captions; ICFG-PEDES: 1,000 identities, 19,848 images, one
caption each). Two score models: "random" (pure noise: the hardest positives sit deep in every row, the
worst case for `rank_metrics`) and "trained" (same-identity pairs get a margin: mAP 60-65, like a trained
model; the ICFG layout's 20 images per identity make its R1 higher than a real model's). Each method runs
in fresh processes, timed (best of --repeats) and, separately, under tracemalloc (peak bytes allocated after
the similarity matrix exists); the script asserts that both methods give the same figures to 1e-6. The reference is IRRA's
`rank()` (`vpmnet.metrics.rank_metrics_argsort`), fed `--ref-rows` rows at a time because all 19,848 rows at
once would need ~16 GB.

More sections (e.g. training throughput) go in SECTIONS.
"""
import argparse
import concurrent.futures
import multiprocessing
import time
import tracemalloc

import numpy as np

SPLITS = {  # name: (identities, images, captions)
    "CUHK-PEDES": (1000, 3074, 6156),
    "ICFG-PEDES": (1000, 19848, 19848),
}
SCORE_MODELS = {"random": 0.0, "trained": 0.35}    # margin added to the scores of same-identity pairs
NOISE = 0.1                                         # std of the scores, about that of CLIP cosines


def make_case(split, score_model, seed=0):
    """(similarity [captions, images] float32, caption pids, image pids) with the split's identity layout."""
    n_ids, n_images, n_captions = SPLITS[split]
    rng = np.random.default_rng(seed)
    image_pids = np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, n_images - n_ids)])
    rng.shuffle(image_pids)
    per_image = n_captions // n_images                  # captions follow their image; the remainder at random
    caption_pids = np.concatenate([np.repeat(image_pids, per_image),
                                   rng.choice(image_pids, n_captions - per_image * n_images)])
    similarity = rng.standard_normal((n_captions, n_images), dtype=np.float32) * NOISE
    similarity += SCORE_MODELS[score_model] * (caption_pids[:, None] == image_pids[None, :])
    return similarity, caption_pids, image_pids


def _run_metric(method, split, score_model, ref_rows, repeats):
    """In a fresh process: build the case, run one method.

    repeats > 0: the best of that many timed calls in seconds; repeats = 0: peak bytes under tracemalloc.
    Returns (cost, figures).
    """
    from vpmnet.metrics import rank_metrics, rank_metrics_argsort

    similarity, queries, gallery = make_case(split, score_model)
    if method == "rank_metrics":
        call = lambda: rank_metrics(similarity, queries, gallery)  # noqa: E731
    else:
        call = lambda: rank_metrics_argsort(similarity, queries, gallery, chunk_size=ref_rows)  # noqa: E731
    if repeats == 0:
        tracemalloc.start()
        figures = call()
        cost = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return cost, figures
    costs = []
    for _ in range(repeats):        # the best of a few: the machine may be shared
        start = time.perf_counter()
        figures = call()
        costs.append(time.perf_counter() - start)
    return min(costs), figures


def _in_fresh_process(fn, *args):
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench_metrics(args):
    from vpmnet.metrics import format_table

    splits = ["CUHK-PEDES"] if args.quick else list(SPLITS)
    header = (f"{'split':<11} {'scores':<8} {'method':<13} {'time s':>8} {'peak MB':>9} "
              f"{'time ratio':>10} {'mem ratio':>9}")
    print(f"== metrics: rank_metrics vs IRRA rank() with a stable full argsort ({args.ref_rows} rows per block)")
    print(header)
    figures_by_case = {}
    for split in splits:
        for score_model in SCORE_MODELS:
            results = {}
            for method in ("argsort", "rank_metrics"):
                seconds, figures = _in_fresh_process(_run_metric, method, split, score_model, args.ref_rows,
                                                     args.repeats)
                peak, traced_figures = _in_fresh_process(_run_metric, method, split, score_model, args.ref_rows, 0)
                assert traced_figures == figures
                results[method] = (seconds, peak, figures)
            ref, ours = results["argsort"], results["rank_metrics"]
            for key in ref[2]:
                assert abs(ref[2][key] - ours[2][key]) <= 1e-6, (split, score_model, key, ref[2][key], ours[2][key])
            for method, (seconds, peak, _) in results.items():
                ratios = (f"{ref[0] / seconds:>9.1f}x {ref[1] / peak:>8.1f}x" if method == "rank_metrics"
                          else f"{'1.0x':>10} {'1.0x':>9}")
                print(f"{split:<11} {score_model:<8} {method:<13} {seconds:>8.2f} {peak / 2**20:>9.1f} {ratios}")
            figures_by_case[f"{split} {score_model}"] = ours[2]
    print("(ratios: reference / rank_metrics; figures identical to 1e-6, asserted)")
    print(format_table(figures_by_case))


SECTIONS = {"metrics": bench_metrics}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only, a few seconds per section")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run just these sections")
    parser.add_argument("--ref-rows", type=int, default=2048, help="rows per block of the argsort reference")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (the best counts)")
    args = parser.parse_args(argv)
    for name, section in SECTIONS.items():
        if not args.only or name in args.only:
            section(args)


if __name__ == "__main__":
    main()
