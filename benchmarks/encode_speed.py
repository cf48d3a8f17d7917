"""CLIP encoder speed, MindSpore graph mode vs transformers' CLIP in PyTorch, same weights, fp32 on the CPU.

ViT-B/16 at 384x128 and the text encoder at 77 tokens, batch 8 and 32; prints images/s and texts/s of
both frameworks, their MindSpore/PyTorch ratio, and the graph compile time. `--quick` runs 4-layer
towers at batch 8 only.

    python benchmarks/encode_speed.py [--quick] [--repeats N] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import mindspore as ms
import numpy as np
import torch
import transformers

from vpmnet.clip import load_clip
from vpmnet.clip.convert import convert

IMAGE_SIZE = (384, 128)
SOT, EOT = 49406, 49407
# Seconds of rest before each timed call, so that worker threads still spinning after one framework's call
# (OpenMP spins before it sleeps) do not overlap the other framework's timed call in this process.
SETTLE = 1.0


def hf_clip(layers: int) -> transformers.CLIPModel:
    """A random ViT-B/16 CLIP (OpenAI sizes, QuickGELU) in transformers."""
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=layers, num_attention_heads=8,
                         max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu",
                         bos_token_id=SOT, eos_token_id=EOT, pad_token_id=0),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=layers, num_attention_heads=12,
                           patch_size=16, image_size=224, hidden_act="quick_gelu"),
        projection_dim=512)
    return transformers.CLIPModel(cfg).eval()


def inputs(batch: int, rng):
    images = rng.standard_normal((batch, 3, *IMAGE_SIZE)).astype(np.float32)
    ids = np.zeros((batch, 77), np.int32)
    for row in range(batch):   # caption lengths like CUHK-PEDES's (DESIGN: mean 29 tokens)
        length = int(rng.integers(10, 60))
        ids[row, 0], ids[row, 1:1 + length], ids[row, 1 + length] = SOT, rng.integers(1, SOT - 1, length), EOT
    return images, ids


def race(torch_fn, ms_fn, repeats: int):
    """(MindSpore first call's seconds, best PyTorch seconds, best MindSpore seconds, outputs).

    Calls alternate between the frameworks and the best time counts, so that load from other processes
    on a shared machine hits both alike rather than skewing the ratio.
    """
    start = time.perf_counter()
    ms_fn()
    first = time.perf_counter() - start
    time.sleep(SETTLE)
    torch_fn()   # PyTorch's warm-up call
    times = {torch_fn: [], ms_fn: []}
    outs = {}
    for _ in range(repeats):
        for fn in (torch_fn, ms_fn):
            time.sleep(SETTLE)
            start = time.perf_counter()
            outs[fn] = fn()
            times[fn].append(time.perf_counter() - start)
    return first, min(times[torch_fn]), min(times[ms_fn]), outs[torch_fn], outs[ms_fn]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4-layer towers, batch 8 only")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per framework (the best counts)")
    parser.add_argument("--threads", type=int,
                        help="threads for both frameworks (default: each its own); 1 is the fairer comparison on a "
                             "loaded machine, where a 2-thread OpenMP matmul loses far more than MindSpore's pool")
    args = parser.parse_args(argv)
    layers, batches = (4, [8]) if args.quick else (12, [8, 32])

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    if args.threads:
        torch.set_num_threads(args.threads)
        ms.device_context.cpu.op_tuning.threads_num(args.threads)
    model = hf_clip(layers)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(os.path.join(tmp, "hf"), safe_serialization=True)
        convert(os.path.join(tmp, "hf"), os.path.join(tmp, "ms"))
        clip, _ = load_clip(os.path.join(tmp, "ms"), image_size=IMAGE_SIZE)
    # transformers resizes the 14x14 grid bicubically at every call; give MindSpore that same table, so
    # both frameworks compute the same function and the outputs can be compared.
    with torch.no_grad():
        grid = model.vision_model.embeddings.interpolate_pos_encoding(torch.zeros(1, 193, 768), *IMAGE_SIZE)
    clip.visual.positional_embedding.set_data(ms.Tensor(grid[0].numpy()))

    rng = np.random.default_rng(0)
    print(f"CLIP ViT-B/16 sizes, {layers} layers per tower, fp32, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), MindSpore {ms.__version__} graph mode "
          f"({args.threads or 'default'} threads); "
          f"load average {os.getloadavg()[0]:.1f} (other processes skew both frameworks' figures)")
    header = (f"{'encoder':<7} {'batch':>5} {'PyTorch/s':>10} {'MindSpore/s':>12} {'ratio':>6} {'compile s':>10} "
              f"{'max diff':>9}")
    print(header)
    print("-" * len(header))
    for batch in batches:
        images, ids = inputs(batch, rng)
        pairs = {
            "image": (lambda: model.get_image_features(pixel_values=torch.from_numpy(images),
                                                       interpolate_pos_encoding=True).pooler_output,
                      lambda: clip.encode_image(ms.Tensor(images)).asnumpy()),
            "text": (lambda: model.get_text_features(input_ids=torch.from_numpy(ids).long()).pooler_output,
                     lambda: clip.encode_text(ms.Tensor(ids)).asnumpy()),
        }
        for name, (torch_fn, ms_fn) in pairs.items():
            with torch.inference_mode():
                ms_first, torch_time, ms_time, torch_out, ms_out = race(torch_fn, ms_fn, args.repeats)
            diff = np.abs(ms_out - torch_out.numpy()).max()
            print(f"{name:<7} {batch:>5} {batch / torch_time:>10.1f} {batch / ms_time:>12.1f} "
                  f"{torch_time / ms_time:>6.2f} {ms_first - ms_time:>10.1f} {diff:>9.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
