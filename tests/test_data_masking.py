"""IRRA's MLM masking: what may change, the 15% / 80-10-10 rates, labels, the forced first word."""
import numpy as np
import pytest

from vpmnet.data.masking import mask_tokens

SOT, EOT, MASK, VOCAB = 49406, 49407, 49405, 49408


def caption(rng, words, length=77):
    ids = np.zeros(length, np.int32)
    ids[0], ids[1:words + 1], ids[words + 1] = SOT, rng.integers(1, MASK, words), EOT
    return ids


def test_rates_and_invariants_over_many_draws():
    rng = np.random.default_rng(0)
    selected = eligible = masked_n = random_n = kept_n = 0
    for _ in range(4000):
        ids = caption(rng, words=40)
        masked, labels = mask_tokens(ids, rng, MASK, VOCAB)
        assert masked.dtype == np.int32 and labels.dtype == np.int32
        chosen = labels != 0
        # Only word tokens are ever chosen; SOT, EOT and padding never change; labels carry the original ids.
        assert not chosen[0] and not chosen[41:].any()
        assert np.array_equal(masked[~chosen], ids[~chosen])
        assert np.array_equal(labels[chosen], ids[chosen])
        became = masked[chosen]
        assert ((became >= 1) & (became <= MASK)).all()
        selected += chosen.sum()
        eligible += 40
        masked_n += (became == MASK).sum()
        kept_n += (became == ids[chosen]).sum()
        random_n += ((became != MASK) & (became != ids[chosen])).sum()
    # 0.85^40 < 0.2%: the forced first word barely moves the rate.
    assert abs(selected / eligible - 0.15) < 0.005
    assert abs(masked_n / selected - 0.8) < 0.01
    assert abs(random_n / selected - 0.1) < 0.01
    assert abs(kept_n / selected - 0.1) < 0.01


def test_the_first_word_is_masked_when_nothing_was_chosen():
    ids = caption(np.random.default_rng(1), words=5)
    masked, labels = mask_tokens(ids, np.random.default_rng(2), MASK, VOCAB, probability=1e-12)
    assert masked[1] == MASK and labels[1] == ids[1]
    assert np.count_nonzero(labels) == 1 and np.array_equal(masked[2:], ids[2:])


def test_special_tokens_already_in_the_input_are_left_alone():
    ids = np.array([SOT, 17, MASK, 0, 18, EOT, 0, 0], np.int32)   # id 0 ("!") inside a caption is not eligible
    for seed in range(200):
        masked, labels = mask_tokens(ids, np.random.default_rng(seed), MASK, VOCAB, probability=0.5)
        assert set(np.flatnonzero(labels)) <= {1, 4}
        assert masked[2] == MASK and masked[3] == 0 and masked[0] == SOT and masked[5] == EOT


def test_no_word_means_no_target_and_bad_ids_are_refused():
    masked, labels = mask_tokens(np.array([SOT, EOT, 0], np.int32), np.random.default_rng(0), MASK, VOCAB)
    assert not labels.any() and np.array_equal(masked, [SOT, EOT, 0])
    with pytest.raises(ValueError, match=r"\[0, 49408\)"):
        mask_tokens(np.array([SOT, VOCAB, EOT]), np.random.default_rng(0), MASK, VOCAB)
    with pytest.raises(ValueError, match="probability"):
        mask_tokens(np.array([SOT, 5, EOT]), np.random.default_rng(0), MASK, VOCAB, probability=0.0)


def test_the_same_generator_state_gives_the_same_masking():
    ids = caption(np.random.default_rng(3), words=30)
    first = mask_tokens(ids, np.random.default_rng([7, 1, 2]), MASK, VOCAB)
    again = mask_tokens(ids, np.random.default_rng([7, 1, 2]), MASK, VOCAB)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
