"""Does the input pipeline starve the model? Training samples/s of `build_train_loader` vs the train step's.

    python benchmarks/input_pipeline.py            # ViT-B/16-scale VPM-Net step (~5 min on 2 loaded cores)
    python benchmarks/input_pipeline.py --quick    # the same pipeline against a 4-layer VPM-Net (~2 min)
    python benchmarks/input_pipeline.py --model-part fb   # model side without the update (less memory)

A synthetic pedestrian set (100 identities x 4 images at 384x128: 640 training captions) is generated in a
temporary folder. The real training pipeline (`vpmnet.data.build_train_loader`: decode, IRRA's flip / pad-crop /
random erasing, optionally the paper's affine augmentation, tokenisation, MLM masking, batching) is read for one
epoch at batch 8 with 1 and 2 workers, each in a fresh process; the first batch (worker start-up) is not timed.
`cpu ms/sample` counts the CPU time of that process and its workers: on a shared machine it moves less with
other jobs' load than samples/s does, and it is what the pipeline takes away from the model when both share
the cores.

The model side is the VPM-Net training step of benchmarks/train_step.py (configs/vpmnet_cuhk.yaml, random
weights, batch 8, graph mode) on a fixed random batch, then the same compiled step fed by the pipeline
(2 workers), timed from asking for the batch to the loss on the host. The ratio pipeline samples/s / model
samples/s above 1 means the pipeline keeps up when it has cores of its own; the fed row shows what it costs
when it shares them with the step. The ViT-B step needs ~13 GB (peak RSS at 13d249f); on a shared machine
the measuring process stops itself when memory runs short (train_step.guard_memory), and with the default
`--model-part auto` the model side then falls back to forward + backward without the update (~9 GB), a lower
bound on the step's time and so an upper bound on the model's samples/s: the verdict only gets safer.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import ROOT, in_fresh_process, load_average, measure, source_state  # noqa: E402

IMAGE_SIZE = (384, 128)
BATCH = 8
AUGMENTATIONS = {  # name: (config, what it adds)
    "IRRA aug": "configs/irra_cuhk.yaml",
    "VPM-Net aug (+affine)": "configs/vpmnet_cuhk.yaml",
}
MODEL_CONFIG = "configs/vpmnet_cuhk.yaml"
PART_NAMES = {"step": "step", "fb": "fwd+bwd (no update)"}
QUICK_MODEL = ["model.clip.vision.layers=4", "model.clip.text.layers=4", "model.cmt_depth=1"]


def _tree_cpu_seconds(process) -> float:
    """CPU seconds of `process` and its live descendants (the loader's worker processes)."""
    import psutil

    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure_pipeline(config: str, root: str, workers: int, batch: int = BATCH, max_batches: int = 0) -> dict:
    """In this (fresh) process: one epoch of the training loader; (samples, wall s, cpu s) after the first batch."""
    import psutil

    from vpmnet.clip.tokenizer import load_tokenizer
    from vpmnet.config import load_config
    from vpmnet.data import build_train_loader, load_dataset

    cfg = load_config(os.path.join(ROOT, config),
                      ["model.pretrained=", "data.dataset=synthetic", f"data.root={root}",
                       f"data.num_workers={workers}", f"train.batch_size={batch}",
                       f"model.image_size=[{IMAGE_SIZE[0]},{IMAGE_SIZE[1]}]"])
    splits = load_dataset("synthetic", root)
    loader = build_train_loader(cfg, splits, load_tokenizer(), epoch=0)
    iterator = loader.create_tuple_iterator()
    process = psutil.Process()
    first = next(iterator)
    assert tuple(first[0].shape) == (batch, 3, *IMAGE_SIZE), first[0].shape
    # Workers are alive now: their CPU time from here on is the epoch's.
    cpu, wall, samples = _tree_cpu_seconds(process), time.perf_counter(), 0
    for count, row in enumerate(iterator, 1):
        samples += int(row[0].shape[0])
        if max_batches and count >= max_batches:
            break
    wall, cpu = time.perf_counter() - wall, _tree_cpu_seconds(process) - cpu
    return {"samples": samples, "wall": wall, "cpu": cpu, "load": load_average()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 4-layer VPM-Net (same 384x128 inputs)")
    parser.add_argument("--identities", type=int, default=100, help="synthetic identities (80%% train)")
    parser.add_argument("--steps", type=int, default=3, help="model steps on the random batch after the warm-up")
    parser.add_argument("--fed-steps", type=int, default=3, help="model steps fed by the pipeline (0: skip)")
    parser.add_argument("--model-part", choices=["auto", "step", "fb"], default="auto",
                        help="the model side: the training step, forward + backward only, or (auto) the step and, "
                             "if it does not fit in memory, forward + backward")
    args = parser.parse_args(argv)

    from vpmnet.data.synth import generate

    model_overrides = QUICK_MODEL if args.quick else []
    scale = "4-layer towers, IRR depth 1 (--quick)" if args.quick else "ViT-B/16 + 12-layer text"
    print(f"== input pipeline vs train step: {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, batch {BATCH}, {os.cpu_count()} CPUs; "
          f"source {source_state()}")
    print(f"load average at start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "synthetic")
        start = time.perf_counter()
        counts = generate(root, identities=args.identities, images_per_identity=4, seed=0, size=IMAGE_SIZE)
        print(f"synthetic set: {counts['train']['captions']} training captions, "
              f"{counts['train']['images']} images ({time.perf_counter() - start:.1f} s to generate)", flush=True)

        rows = []   # (source, workers, samples/s, cpu ms/sample, load)
        for name, config in AUGMENTATIONS.items():
            for workers in (1, 2):
                r = in_fresh_process(measure_pipeline, config, root, workers)
                rows.append((f"pipeline, {name}", str(workers), r["samples"] / r["wall"],
                             1000 * r["cpu"] / r["samples"], r["load"]))
                print(f"  {rows[-1][0]}, {workers} worker(s): {r['samples']} samples in {r['wall']:.2f} s; "
                      f"load {r['load']}", flush=True)

        parts = {"auto": ["step", "fb"], "step": ["step"], "fb": ["fb"]}[args.model_part]
        m = None
        for part in parts:
            try:
                m = in_fresh_process(measure, MODEL_CONFIG, model_overrides, BATCH, args.steps, part, fed_root=root,
                                     fed_steps=args.fed_steps, fed_workers=2)
                break
            except BrokenProcessPool:
                print(f"  model {PART_NAMES[part]}: the measuring process died (memory guard or OOM)", flush=True)
        if m is None:
            print("no model figure: nothing fitted in memory")
            return 1
    what = PART_NAMES[m["kind"]]
    step_wall, step_cpu = statistics.median(m["walls"]), statistics.median(m["cpus"])
    model_rate = BATCH / step_wall
    print(f"  model {what}: first {m['first']:.1f} s, then {' '.join(f'{w:.1f}' for w in m['walls'])} s, peak RSS "
          f"{m['peak_rss'] / 2**30:.1f} GB; load {m['load']}", flush=True)
    rows.append((f"model {what}, {scale}", "-", model_rate, 1000 * step_cpu / BATCH, m["load"]))
    if m.get("fed_walls"):
        fed_wall, fed_cpu = statistics.median(m["fed_walls"]), statistics.median(m["fed_cpus"])
        print(f"  fed by the pipeline: {' '.join(f'{w:.1f}' for w in m['fed_walls'])} s")
        rows.append((f"model {what} fed by the pipeline", "2", BATCH / fed_wall, 1000 * fed_cpu / BATCH,
                     load_average()))

    header = f"{'source':<44} {'workers':>7} {'samples/s':>10} {'cpu ms/sample':>13} {'/ model':>8}"
    print(header)
    print("-" * len(header))
    for source, workers, rate, cpu_ms, _ in rows:
        print(f"{source:<44} {workers:>7} {rate:>10.2f} {cpu_ms:>13.1f} {rate / model_rate:>7.2f}x")
    print("(/ model: samples/s over the model step's on the random batch; pipeline cpu ms/sample includes its "
          "workers,\n the model's is its own process only)")
    irra_aug_cost = rows[1][3] / 1000 * BATCH   # 2 workers, CPU seconds per batch
    vpm_aug_cost = rows[3][3] / 1000 * BATCH
    print(f"pipeline CPU per batch of {BATCH}: {irra_aug_cost:.3f} s (IRRA aug), {vpm_aug_cost:.3f} s (affine); "
          f"model {what}: {step_wall:.2f} s wall, {step_cpu:.2f} s CPU -> the pipeline needs "
          f"{100 * vpm_aug_cost / step_wall:.1f}% of one core to keep pace")
    if m["kind"] == "fb":
        print("(the model side is forward + backward without the update, a lower bound on the step's time: the "
              "pipeline's margin\n over the real step is larger still)")
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
