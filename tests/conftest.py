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
