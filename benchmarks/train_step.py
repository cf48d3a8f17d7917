"""One training step (forward + backward + update) of VPM-Net and IRRA at ViT-B/16 scale on the CPU.

    python benchmarks/train_step.py            # VPM-Net and IRRA, 384x128, batch 8 (~15 min on 2 loaded cores)
    python benchmarks/train_step.py --all      # also the other Table 4 ablation configs
    python benchmarks/train_step.py --quick    # 192x64 images, 4-layer towers (~4 min): a smoke run only

Checks the paper's Table 5 efficiency claim: VPT-Portion freezes the 8 prompted layers of each CLIP tower, so
a step should be cheaper than IRRA's full fine-tuning. MindSpore graph mode, fp32, random weights
(`model.pretrained=`), 11,003 ID classes (CUHK-PEDES's training identities), one fixed random batch
(captions of 10-60 tokens, IRRA's MLM masking). Per config, each part in its own fresh process:

  step        `vpmnet.train.make_train_step`: forward, backward, clipping if configured, guarded Adam(W) update
  fwd+bwd     the same `value_and_grad` without the update (skip with --no-breakdown); the table's
              `update` row is step - fwd+bwd
  s/call      median wall seconds of the calls after the first (each ends with the loss on the host)
  cpu s       median CPU seconds of the process over the same calls (all its threads): on a shared machine
              it moves less with other jobs' load than wall time does
  compile s   first call minus the steady call (graph compilation and first-call allocations)
  peak RSS    `ru_maxrss` of the process (imports, weights, Adam moments, activations, temporaries); one
              process per part and config, so none shares a peak; `built` is the mark before the first call
  trainable / frozen   parameter counts (`vpmnet.params.count_parameters`)

Peak RSS at 13d249f: IRRA's step 14.8 GB, VPM-Net's 13.0 GB, forward + backward 7.8 / 9.2 GB. The machine
may be shared: a process stops itself when the machine's available memory falls under
MIN_AVAILABLE_GB (rather than waking the OOM killer, which may pick another job), and its row reads "not
measured". `--rounds 2` measures every config twice in alternating order (A B, B A) and takes the median of
all calls, so that a load change during the run does not land on one config only. The load average is printed
with each measurement. With `--quick` the 4-layer towers are all prompted (portion = last 8 layers), so their
CLIP weights are all frozen, and 90 prompts outnumber the 49 patches: that run checks the script, not the claim.

`measure()` is shared with benchmarks/input_pipeline.py, which also feeds the step from the real pipeline.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 11003         # CUHK-PEDES training identities
BATCH = 8
MAIN = {"IRRA": "configs/irra_cuhk.yaml", "VPM-Net": "configs/vpmnet_cuhk.yaml"}
ABLATION = {  # Table 4 rows not already in MAIN (vpt_minp_kan is the full VPM-Net, vpt the VPT-P row)
    "Baseline": "configs/ablation/baseline.yaml",
    "+VPT-T": "configs/ablation/vpt_tail.yaml",
    "+VPT-P": "configs/ablation/vpt_portion.yaml",
    "+KAN": "configs/ablation/kan.yaml",
    "+MINP": "configs/ablation/minp.yaml",
    "+VPT+KAN": "configs/ablation/vpt_kan.yaml",
    "+VPT+MINP": "configs/ablation/vpt_minp.yaml",
}
MIN_AVAILABLE_GB = 1.5     # a measurement stops itself when the machine's available memory falls below this
FULL = ["model.pretrained=", "device=CPU", "mode=graph"]
QUICK = ["model.image_size=[192,64]", "model.clip.vision.layers=4", "model.clip.text.layers=4", "model.cmt_depth=1"]


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def source_state() -> str:
    """The commit and the files that differ from it: other work in the tree changes the figures."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "diff", "--name-only", "HEAD", "--", "src"], capture_output=True,
                               text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def random_batch(cfg, batch: int, seed: int = 0):
    """(images, caption_ids, mlm_ids, mlm_labels, pids) as numpy arrays shaped like the pipeline's."""
    import numpy as np

    from vpmnet.data.masking import mask_tokens

    rng = np.random.default_rng(seed)
    height, width = cfg.model.image_size
    text = cfg.model.clip.text
    sot, eot, mask_id = text.vocab_size - 2, text.vocab_size - 1, text.vocab_size - 3
    images = rng.standard_normal((batch, 3, height, width)).astype(np.float32)
    ids = np.zeros((batch, text.context_length), np.int32)
    for row in range(batch):   # caption lengths like CUHK-PEDES's (mean 29 tokens)
        length = int(rng.integers(10, 60))
        ids[row, 0], ids[row, 1:1 + length], ids[row, 1 + length] = sot, rng.integers(1, mask_id, length), eot
    masked = [mask_tokens(row, rng, mask_id, text.vocab_size, cfg.data.mlm_probability) for row in ids]
    mlm_ids = np.stack([m for m, _ in masked]).astype(np.int32)
    mlm_labels = np.stack([lab for _, lab in masked]).astype(np.int32)
    pids = rng.integers(0, NUM_CLASSES, batch).astype(np.int32)
    return images, ids, mlm_ids, mlm_labels, pids


def guard_memory(what: str, min_available: float = MIN_AVAILABLE_GB) -> None:
    """Exit this process when the machine's available memory falls under `min_available` GB.

    The machine is shared: a config that does not fit must end itself, not wake the OOM killer, which may
    pick another job. The parent sees the worker die and reports the config as not measured.
    """
    import threading

    import psutil

    def watch():
        while True:
            available = psutil.virtual_memory().available / 2**30
            if available < min_available:
                print(f"\n  {what}: stopped, available memory fell to {available:.1f} GB "
                      f"(own RSS {psutil.Process().memory_info().rss / 2**30:.1f} GB)", flush=True)
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


def _max_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KiB on Linux


def measure(config: str, overrides, batch: int = BATCH, steps: int = 3, kind: str = "step", fed_root: str = "",
            fed_steps: int = 0, fed_workers: int = 2) -> dict:
    """In this (fresh) process: build `config`, time one warm-up and `steps` steady jit calls of `kind`.

    kind "step": the training step of `vpmnet.train.make_train_step` (forward, backward, update).
    kind "fb": forward + backward only (the same `value_and_grad`, no clipping, no update; the gradients are
    summed to one scalar so that nothing large is copied out): the step minus this is the update's share.

    With `fed_root`, then `fed_steps` more calls whose batches come from `build_train_loader`
    over the synthetic set at `fed_root` with `fed_workers` workers, timed from asking for the batch to the loss
    on the host.
    """
    import mindspore as ms
    from mindspore import Tensor, ops

    from vpmnet.config import load_config
    from vpmnet.model import build_model
    from vpmnet.optim import build_optimizer
    from vpmnet.params import count_parameters
    from vpmnet.runtime import Runtime
    from vpmnet.train import make_train_step

    guard_memory(f"{config} ({kind})")
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    cfg = load_config(os.path.join(ROOT, config), [*FULL, f"train.batch_size={batch}", *overrides])
    ms.set_seed(cfg.seed)
    model = build_model(cfg, NUM_CLASSES, load_pretrained=False)
    table = count_parameters(model)
    optimizer = build_optimizer(model, cfg.train)
    model.set_train(True)
    inputs = [Tensor(a) for a in random_batch(cfg, batch)]
    lr = Tensor(cfg.train.lr, ms.float32)
    if kind == "step":
        step = make_train_step(model, optimizer, Runtime("CPU"), cfg)

        def call(batch_):
            loss, _, ok = step(*batch_, lr)
            loss = float(loss.asnumpy())
            if not bool(ok.asnumpy()):
                raise RuntimeError(f"{config}: non-finite step (loss {loss})")
    elif kind == "fb":
        grad_fn = ms.value_and_grad(model, None, optimizer.parameters, has_aux=True)

        def forward_backward(*args):
            (loss, _), grads = grad_fn(*args)
            return loss, ops.addn([g.sum() for g in grads])

        fb = ms.jit(forward_backward)

        def call(batch_):
            fb(*batch_)[1].asnumpy()
    else:
        raise ValueError(f"unknown kind {kind!r}")
    built_rss = _max_rss()

    def timed(get_batch):
        wall, cpu = time.perf_counter(), time.process_time()
        call(get_batch())
        return time.perf_counter() - wall, time.process_time() - cpu

    load_before = load_average()
    first, _ = timed(lambda: inputs)
    walls, cpus = zip(*(timed(lambda: inputs) for _ in range(steps)))
    result = {
        "config": config, "kind": kind, "first": first, "walls": list(walls), "cpus": list(cpus),
        "peak_rss": _max_rss(), "built_rss": built_rss,
        "trainable": sum(v["trainable"] for v in table.values()),
        "frozen": sum(v["frozen"] for v in table.values()),
        "load": f"{load_before} -> {load_average()}",
    }
    if fed_root and fed_steps:
        from vpmnet.clip.tokenizer import load_tokenizer
        from vpmnet.data import build_train_loader, load_dataset

        cfg.data.dataset, cfg.data.root, cfg.data.num_workers = "synthetic", fed_root, fed_workers
        splits = load_dataset("synthetic", fed_root)
        loader = build_train_loader(cfg, splits, load_tokenizer(), epoch=0)
        iterator = loader.create_tuple_iterator()
        next(iterator)   # worker start-up is not a step's cost
        timed(lambda: next(iterator)[:5])   # nor the first overlap of the prefetching workers with a call
        fed = [timed(lambda: next(iterator)[:5]) for _ in range(fed_steps)]
        result["fed_walls"] = [w for w, _ in fed]
        result["fed_cpus"] = [c for _, c in fed]
    return result


def in_fresh_process(fn, *args, **kwargs):
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _median(results, key):
    values = [v for r in results for v in r.get(key, [])]
    return statistics.median(values) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="192x64 images, 4-layer towers, 1-layer IRR")
    parser.add_argument("--all", action="store_true", help="also the other Table 4 ablation configs")
    parser.add_argument("--steps", type=int, default=3, help="steady steps after the warm-up step (median counts)")
    parser.add_argument("--rounds", type=int, default=1, help="measure every config this many times, alternating")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip forward + backward without the update (its own process and compile per config)")
    parser.add_argument("--only", action="append", help="just these configs (names as printed)")
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args(argv)

    configs = dict(MAIN, **(ABLATION if args.all else {}))
    if args.only:
        configs = {name: configs[name] for name in args.only}
    overrides = QUICK if args.quick else []
    scale = "quick: 192x64, 4+4 layers, IRR depth 1" if args.quick else "ViT-B/16 + 12-layer text, 384x128"
    print(f"== train step: {scale}, batch {args.batch}, fp32, MindSpore graph mode, {os.cpu_count()} CPUs; "
          f"source {source_state()}")
    print(f"load average at start: {load_average()}", flush=True)
    kinds = ["fb", "step"] if args.breakdown else ["step"]
    runs = {(name, kind): [] for name in configs for kind in kinds}
    for round_ in range(args.rounds):
        order = list(configs) if round_ % 2 == 0 else list(reversed(configs))
        for name in order:
            for kind in kinds:
                what = "fwd+bwd" if kind == "fb" else "step"
                try:
                    r = in_fresh_process(measure, configs[name], overrides, args.batch, args.steps, kind)
                except BrokenProcessPool:
                    print(f"  {name:<10} {what:<7} round {round_ + 1}: the measuring process died (memory guard or "
                          "OOM): not measured", flush=True)
                    continue
                runs[name, kind].append(r)
                walls, cpus = (" ".join(f"{v:.1f}" for v in r[key]) for key in ("walls", "cpus"))
                print(f"  {name:<10} {what:<7} round {round_ + 1}: first {r['first']:.1f} s, then {walls} s "
                      f"(cpu {cpus} s), "
                      f"peak RSS {r['peak_rss'] / 2**30:.2f} GB; load {r['load']}", flush=True)

    def summary(results):
        if not results:
            return None
        wall = _median(results, "walls")
        return dict(wall=wall, cpu=_median(results, "cpus"),
                    compile=statistics.median(r["first"] for r in results) - wall,
                    peak=max(r["peak_rss"] for r in results), built=max(r["built_rss"] for r in results),
                    trainable=results[0]["trainable"], frozen=results[0]["frozen"])

    rows = {(name, kind): summary(runs[name, kind]) for name, kind in runs}
    header = (f"{'config':<10} {'part':<8} {'s/call':>7} {'cpu s':>7} {'samples/s':>9} {'compile s':>9} "
              f"{'peak RSS GB':>11} {'built GB':>8} {'trainable':>12} {'frozen':>12}")
    print(header)
    print("-" * len(header))
    for (name, kind), r in rows.items():
        part = "fwd+bwd" if kind == "fb" else "step"
        if r is None:
            print(f"{name:<10} {part:<8} {'not measured (its process died, see above)':>44}")
            continue
        print(f"{name:<10} {part:<8} {r['wall']:>7.2f} {r['cpu']:>7.2f} {args.batch / r['wall']:>9.2f} "
              f"{r['compile']:>9.1f} {r['peak'] / 2**30:>11.2f} {r['built'] / 2**30:>8.2f} {r['trainable']:>12,} "
              f"{r['frozen']:>12,}")
        if kind == "step" and rows.get((name, "fb")):
            fb = rows[name, "fb"]
            print(f"{'':<10} {'update':<8} {r['wall'] - fb['wall']:>7.2f} {r['cpu'] - fb['cpu']:>7.2f}   "
                  f"(step - fwd+bwd; peak RSS +{(r['peak'] - fb['peak']) / 2**30:.2f} GB)")
    print("(s/call, cpu s: medians of the steady calls, wall and this process's CPU seconds; compile: first call - "
          "s/call;\n peak RSS: ru_maxrss of that call's own process; built: before the first call)")
    print("ratios to IRRA (same run):")
    for kind in kinds:
        base = rows.get(("IRRA", kind))
        for name in configs:
            r = rows.get((name, kind))
            if name == "IRRA" or not r or not base:
                continue
            part = "fwd+bwd" if kind == "fb" else "step"
            print(f"  {name:<10} {part:<8} time {r['wall'] / base['wall']:.2f}x, cpu {r['cpu'] / base['cpu']:.2f}x, "
                  f"peak RSS {r['peak'] / base['peak']:.2f}x, "
                  f"trainable params {r['trainable'] / base['trainable']:.3f}x")
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
