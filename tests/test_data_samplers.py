"""Samplers: per-rank shards of global batches, determinism for (seed, epoch), the identity sampler's P x K."""
from collections import Counter

import numpy as np
import pytest

from vpmnet.data.samplers import TrainSampler


def skewed_pids(rng, identities=40):
    """Identities with 1..9 samples and one with 40: oversampling and the end-of-epoch pool both matter."""
    counts = list(rng.integers(1, 10, identities - 1)) + [40]
    return rng.permutation(np.repeat(np.arange(identities), counts))


@pytest.mark.parametrize("kind", ["random", "identity"])
def test_rank_shards_are_disjoint_and_cover_the_epoch(kind):
    pids = skewed_pids(np.random.default_rng(0))
    world = 4
    sampler = TrainSampler(pids, kind, batch_size=16, num_instance=4, seed=3, world=world)
    steps = sampler.steps_per_epoch
    shards = [sampler.rank_positions(rank) for rank in range(world)]
    assert all(len(s) == steps * 4 for s in shards)
    assert np.array_equal(np.sort(np.concatenate(shards)), np.arange(steps * 16))
    # Each rank reads its contiguous quarter of every global batch.
    assert np.array_equal(shards[1][:4], [4, 5, 6, 7]) and np.array_equal(shards[1][4:8], [20, 21, 22, 23])
    # Resuming at step s reads the tail of the same shard.
    assert np.array_equal(sampler.rank_positions(2, start_step=3), shards[2][3 * 4:])
    assert len(sampler.epoch_order(0)) == steps * 16


@pytest.mark.parametrize("kind", ["random", "identity"])
def test_orders_depend_on_seed_and_epoch_only(kind):
    pids = skewed_pids(np.random.default_rng(1))
    make = lambda seed, world=1: TrainSampler(pids, kind, 16, 4, seed, world)   # noqa: E731
    order = make(5).epoch_order(2)
    assert np.array_equal(order, make(5).epoch_order(2))
    assert np.array_equal(order, make(5, world=2).epoch_order(2))      # every rank sees the same global order
    assert not np.array_equal(order, make(5).epoch_order(3))
    assert not np.array_equal(order, make(6).epoch_order(2))


def test_random_sampler_is_a_permutation_without_the_remainder():
    sampler = TrainSampler(np.zeros(100, int), "random", 16, 4, seed=0)
    order = sampler.epoch_order(0)
    assert sampler.steps_per_epoch == 6 and len(order) == 96 and len(set(order.tolist())) == 96


def test_identity_batches_hold_p_identities_times_k_samples():
    rng = np.random.default_rng(2)
    pids = skewed_pids(rng)
    sampler = TrainSampler(pids, "identity", batch_size=16, num_instance=4, seed=0)
    lengths = set()
    for epoch in range(30):
        order = sampler.epoch_order(epoch)
        lengths.add(len(order))
        for batch in order.reshape(-1, 16):
            assert sorted(Counter(pids[batch].tolist()).values()) == [4, 4, 4, 4]
            for chunk in batch.reshape(4, 4):   # K consecutive samples of one identity
                assert len(set(pids[chunk].tolist())) == 1
    # The epoch length is fixed in advance and reached whatever the draws.
    assert lengths == {sampler.steps_per_epoch * 16}
    # Identities with fewer than K samples are oversampled with replacement.
    small = [pid for pid, n in Counter(pids.tolist()).items() if n == 1]
    seen = Counter(pids[sampler.epoch_order(0)].tolist())
    assert small and all(seen[pid] in (0, 4) for pid in small)


def test_identity_steps_are_close_to_the_chunk_count():
    pids = np.repeat(np.arange(100), 8)                     # 2 chunks of K=4 per identity
    sampler = TrainSampler(pids, "identity", batch_size=32, num_instance=4, seed=0)
    # 200 chunks, 8 per batch: 25 batches at best; the guarantee gives up the 7 largest identities' chunks.
    assert sampler.steps_per_epoch == 24


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="not divisible by the 3 ranks"):
        TrainSampler(np.zeros(10, int), "random", 16, 4, 0, world=3)
    with pytest.raises(ValueError, match="multiple of num_instance"):
        TrainSampler(np.zeros(10, int), "identity", 18, 4, 0)
    with pytest.raises(ValueError, match="choose one of random, identity"):
        TrainSampler(np.zeros(10, int), "pk", 16, 4, 0)
    with pytest.raises(ValueError, match="start_step 4 is outside 0..3"):
        TrainSampler(np.zeros(64, int), "random", 16, 4, 0).rank_positions(0, start_step=4)
