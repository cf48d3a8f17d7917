"""Shared test set-up: MindSpore on the CPU in PyNative mode unless a test asks for graph mode."""
import os
import sys

import mindspore as ms
import numpy as np
import pytest

ms.set_device("CPU")
ms.set_context(mode=ms.PYNATIVE_MODE)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def graph_mode():
    """Run the test body in graph mode, then restore PyNative."""
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def cli(*args):
    """Run `vpmnet ARGS` in a fresh interpreter (graph code must come from files); returns CompletedProcess."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "vpmnet.cli", *map(str, args)], capture_output=True, text=True)


TINY = [
    "model.pretrained=", "model.image_size=[32,16]", "model.cmt_depth=1", "model.clip.embed_dim=24",
    "model.clip.vision={width: 32, layers: 4, heads: 2, patch_size: 8, stride_size: 8, image_size: [32, 16]}",
    "model.clip.text={width: 32, layers: 4, heads: 2, context_length: 77, vocab_size: 49408}",
    "prompts.vision_length=3", "prompts.text_length=2", "kan.hidden=8",
]


def tiny_config(path=None, *overrides):
    """A config (default: configs/cpu_smoke.yaml) shrunk to a model that builds and steps in a second."""
    from vpmnet.config import load_config

    path = path or os.path.join(os.path.dirname(TESTS_DIR), "configs", "cpu_smoke.yaml")
    return load_config(path, TINY + list(overrides))


def caption_ids(rng, batch, length=77, vocab=49408, words=(3, 12)):
    """Random CLIP-style ids: SOT, words, EOT (the largest id), zero padding."""
    ids = np.zeros((batch, length), np.int32)
    for row in ids:
        n = rng.integers(*words)
        row[0], row[1:n + 1], row[n + 1] = vocab - 2, rng.integers(1, vocab - 3, n), vocab - 1
    return ids
