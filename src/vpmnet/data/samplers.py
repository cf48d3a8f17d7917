"""Epoch orders of the `random` and `identity` samplers, cut into global batches that each rank slices itself.

MindSpore ignores `num_shards` when a dataset has a custom sampler, so sharding happens here: the epoch's
order is the same on every rank (it depends only on seed and epoch), it is chopped into global batches of
`batch_size` (remainder dropped), and rank r reads rows `[r*b, (r+1)*b)` of every global batch, b =
batch_size // world. A sample is addressed by its global position `step * batch_size + row`.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np

SAMPLER_KINDS = ("random", "identity")
_ORDER_STREAM = 0   # keeps the sampler's generator apart from the per-sample ones in the pipeline


class TrainSampler:
    """The global sample order of every epoch, deterministic for (seed, epoch)."""

    def __init__(self, pids: Sequence[int], kind: str, batch_size: int, num_instance: int, seed: int,
                 world: int = 1):
        if kind not in SAMPLER_KINDS:
            raise ValueError(f"sampler is {kind!r}; choose one of {', '.join(SAMPLER_KINDS)}")
        if batch_size % world:
            raise ValueError(f"the global batch size {batch_size} is not divisible by the {world} ranks")
        if kind == "identity" and batch_size % num_instance:
            raise ValueError(f"the identity sampler needs a batch size ({batch_size}) that is a multiple of "
                             f"num_instance ({num_instance})")
        self.pids = np.asarray(pids, dtype=np.int64)
        self.kind = kind
        self.batch_size = batch_size
        self.num_instance = num_instance
        self.seed = seed
        self.world = world
        self.local_batch_size = batch_size // world
        members: Dict[int, List[int]] = {}
        for index, pid in enumerate(self.pids.tolist()):
            members.setdefault(pid, []).append(index)
        self.members = {pid: np.asarray(idx) for pid, idx in sorted(members.items())}
        self.steps_per_epoch = (len(self.pids) // batch_size if kind == "random"
                                else self._identity_steps())

    def _identity_steps(self) -> int:
        """Batches that IRRA's identity sampler yields whatever its draws, so every epoch has the same length.

        Identity i contributes c_i = max(n_i, K) // K chunks of K samples; each batch takes one chunk from each
        of P = B/K distinct identities, and the epoch ends when fewer than P identities have chunks left. Then
        at most the P-1 largest c_i remain, so ceil((C - those) / P) batches are always reached.
        """
        per_batch = self.batch_size // self.num_instance
        chunks = sorted((max(len(m), self.num_instance) // self.num_instance for m in self.members.values()),
                        reverse=True)
        guaranteed = sum(chunks) - sum(chunks[:per_batch - 1])
        return max(0, math.ceil(guaranteed / per_batch))

    def _identity_order(self, rng: np.random.Generator) -> np.ndarray:
        """IRRA's RandomIdentitySampler: P random identities x K of their samples per batch.

        Identities with fewer than K samples are oversampled with replacement; leftovers short of K are
        dropped; an identity leaves the pool when its chunks run out.
        """
        k = self.num_instance
        chunks: Dict[int, List[np.ndarray]] = {}
        for pid, idx in self.members.items():
            if len(idx) < k:
                idx = rng.choice(idx, size=k, replace=True)
            idx = rng.permutation(idx)
            chunks[pid] = [idx[i * k:(i + 1) * k] for i in range(len(idx) // k)]
        available = list(chunks)
        batches = []
        while len(batches) < self.steps_per_epoch:
            chosen = [available[i] for i in rng.choice(len(available), size=self.batch_size // k, replace=False)]
            batches.append(np.concatenate([chunks[pid].pop(0) for pid in chosen]))
            for pid in chosen:
                if not chunks[pid]:
                    available.remove(pid)
        return np.concatenate(batches) if batches else np.zeros(0, np.int64)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Sample indices of the whole epoch, `steps_per_epoch * batch_size` long (global batches in a row)."""
        rng = np.random.default_rng([_ORDER_STREAM, self.seed, epoch])
        if self.kind == "random":
            return rng.permutation(len(self.pids))[:self.steps_per_epoch * self.batch_size]
        return self._identity_order(rng)

    def rank_positions(self, rank: int, start_step: int = 0) -> np.ndarray:
        """Global positions (into `epoch_order`) that `rank` reads, in order, from global step `start_step`."""
        if not 0 <= rank < self.world:
            raise ValueError(f"rank {rank} is outside 0..{self.world - 1}")
        if not 0 <= start_step < self.steps_per_epoch:
            # MindSpore cannot build an empty dataset: a run resumed at an epoch's end starts the next epoch.
            raise ValueError(f"start_step {start_step} is outside 0..{self.steps_per_epoch - 1}, the steps of an "
                             "epoch; resume at the end of an epoch with the next epoch and start_step 0")
        steps = np.arange(start_step, self.steps_per_epoch)[:, None]
        rows = rank * self.local_batch_size + np.arange(self.local_batch_size)[None, :]
        return (steps * self.batch_size + rows).reshape(-1)
