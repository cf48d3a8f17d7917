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

Section "train": CPU training throughput of configs/cpu_smoke.yaml (the `bash run_cpu.sh` model) in samples/s,
in a fresh process: a synthetic set (120 identities x 4 images at the config's 192x64) in a temporary folder,
the real input pipeline (`build_train_loader`, the config's 2 workers) feeding the jit train step as `vpmnet
train` does; the first step (compilation) is timed apart, then 10 steps (4 with --quick) from asking for the
batch to the loss on the host, each followed by the step alone on the first batch, already in memory (the two
interleaved, so that both see the same load): the ratio fed / alone is what the pipeline costs when it
shares the cores with the model. The load average is printed with the figures: the machine may be shared.

More sections go in SECTIONS.
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


TRAIN_CONFIG = "configs/cpu_smoke.yaml"


def _load_average():
    import os

    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _run_training(root, steps):
    """In a fresh process: cpu_smoke's loop on the synthetic set at `root`; timings in seconds."""
    import os

    import mindspore as ms

    from vpmnet.clip.tokenizer import load_tokenizer
    from vpmnet.config import load_config
    from vpmnet.data import build_train_loader, load_dataset, steps_per_epoch
    from vpmnet.model import build_model
    from vpmnet.optim import build_optimizer, lr_at
    from vpmnet.runtime import setup
    from vpmnet.train import make_train_step

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(os.path.join(repo, TRAIN_CONFIG), ["device=CPU", f"data.root={root}"])
    runtime = setup(cfg)
    splits = load_dataset(cfg.data.dataset, cfg.data.root)
    model = build_model(cfg, splits.num_classes, load_pretrained=False)
    step = make_train_step(model, build_optimizer(model, cfg.train), runtime, cfg)
    spe = steps_per_epoch(cfg, splits)
    model.set_train(True)
    tokenizer = load_tokenizer()

    def batches():
        for epoch in range(steps // spe + 2):
            yield from build_train_loader(cfg, splits, tokenizer, epoch).create_tuple_iterator()

    def run_step(batch, global_step):
        loss, terms, ok = step(*batch[:5], ms.Tensor(lr_at(global_step, spe, cfg.train), ms.float32))
        assert bool(ok.asnumpy()), "non-finite step"
        return float(loss.asnumpy()), [float(t.asnumpy()) for t in terms]

    feed = batches()
    start = time.perf_counter()
    held = next(feed)
    first_loss, _ = run_step(held, 0)
    first = time.perf_counter() - start
    fed, alone = [], []
    for i in range(steps):   # interleaved, so that both see the same load from other jobs
        start = time.perf_counter()
        loss, _ = run_step(next(feed), 2 * i + 1)
        fed.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_step(held, 2 * i + 2)
        alone.append(time.perf_counter() - start)
    return {"batch": cfg.train.batch_size, "first": first, "fed": fed, "alone": alone, "spe": spe,
            "losses": (first_loss, loss), "load": _load_average()}


def bench_train(args):
    import os
    import statistics
    import tempfile

    from vpmnet.config import load_config
    from vpmnet.data.synth import generate

    steps = 4 if args.quick else 10
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    size = tuple(load_config(os.path.join(repo, TRAIN_CONFIG)).model.image_size)
    print(f"== train: {TRAIN_CONFIG} training throughput on the CPU ({os.cpu_count()} CPUs), "
          f"load average {_load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "synthetic")
        counts = generate(root, identities=120, images_per_identity=4, seed=0, size=size)
        r = _in_fresh_process(_run_training, root, steps)
    batch = r["batch"]
    fed, alone = statistics.median(r["fed"]), statistics.median(r["alone"])
    print(f"synthetic set {size[0]}x{size[1]}: {counts['train']['captions']} training captions, batch {batch}, "
          f"{r['spe']} steps per epoch; loss {r['losses'][0]:.3f} -> {r['losses'][1]:.3f}")
    print(f"{'what':<36} {'s/step':>7} {'samples/s':>9}")
    print(f"{'first step (workers start, compile)':<36} {r['first']:>7.2f} {'':>9}")
    print(f"{f'training, pipeline-fed ({steps} steps)':<36} {fed:>7.2f} {batch / fed:>9.1f}")
    print(f"{f'step alone, same batch ({steps} steps)':<36} {alone:>7.2f} {batch / alone:>9.1f}")
    print(f"(medians; mean of the pipeline-fed steps {batch * steps / sum(r['fed']):.1f} samples/s; "
          f"fed / alone time ratio {fed / alone:.2f}; compile ~{r['first'] - alone:.0f} s; "
          f"load average at end {r['load']})")


SECTIONS = {"metrics": bench_metrics, "train": bench_train}


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
