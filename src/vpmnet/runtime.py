"""Process set-up: execution mode, device, seed, and msrun data parallelism (rank and world size)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import mindspore as ms

from vpmnet.config import Config


@dataclass
class Runtime:
    device: str
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> str:
    """`auto` picks Ascend when its runtime is present, else the CPU; an unusable choice is an error."""
    if name == "CPU":
        return name
    ascend = ms.device_context.ascend.is_available()
    if name == "auto":
        return "Ascend" if ascend else "CPU"
    if name == "Ascend" and not ascend:
        raise RuntimeError("device 'Ascend' was requested but MindSpore finds no Ascend runtime (is CANN installed "
                           "and its set_env.sh sourced?); use device=CPU or device=auto")
    if name not in ("CPU", "Ascend"):
        raise ValueError(f"unknown device {name!r}; choose auto, CPU or Ascend")
    return name


def launched_by_msrun() -> bool:
    return int(os.environ.get("MS_WORKER_NUM", "1")) > 1


def setup(cfg: Config) -> Runtime:
    """Configure MindSpore for `cfg` and, under msrun, join the data-parallel group."""
    device = resolve_device(cfg.device)
    ms.set_context(mode=ms.GRAPH_MODE if cfg.mode == "graph" else ms.PYNATIVE_MODE)
    ms.set_device(device)
    runtime = Runtime(device)
    if launched_by_msrun():
        from mindspore.communication import get_group_size, get_rank, init

        init()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
        runtime = Runtime(device, get_rank(), get_group_size())
    # The same seed on every rank: identical initial weights are what data parallelism assumes.
    ms.set_seed(cfg.seed)
    return runtime
