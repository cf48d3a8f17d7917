"""IRRA's masked-language-model corruption of one tokenised caption (15% of word tokens, 80/10/10)."""
from __future__ import annotations

import numpy as np

MASK_SHARE = 0.8     # of the selected tokens: replaced by the mask token
RANDOM_SHARE = 0.1   # replaced by a random word id; the remaining 10% stay unchanged


def mask_tokens(ids, rng: np.random.Generator, mask_id: int, vocab_size: int,
                probability: float = 0.15):
    """`(masked_ids, labels)`, both int32 like `ids`.

    Eligible tokens are `0 < id < mask_id`: padding (0), the mask, SOT and EOT are never touched. Each is
    selected with `probability`; a selected token becomes `mask_id` (80%), a random id in [1, mask_id) (10%)
    or stays (10%), and its label is the original id; labels are 0 elsewhere. If nothing was selected the
    first eligible token (the first word) is masked, so every caption has an MLM target unless it has no word.
    """
    if not 0 < probability <= 1:
        raise ValueError(f"the MLM probability must lie in (0, 1], got {probability}")
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    # One uniform per token both selects it and, rescaled, picks its fate, as IRRA's loop does.
    draws = rng.random(ids.shape)
    random_ids = rng.integers(1, mask_id, ids.shape)
    eligible = (ids > 0) & (ids < mask_id)
    selected = eligible & (draws < probability)
    fate = draws / probability
    if not selected.any() and eligible.any():
        first_word = np.flatnonzero(eligible)[0]
        selected[first_word] = True
        fate[first_word] = 0.0   # IRRA forces the mask token itself here
    masked = ids.copy()
    masked[selected & (fate < MASK_SHARE)] = mask_id
    replaced = selected & (fate >= MASK_SHARE) & (fate < MASK_SHARE + RANDOM_SHARE)
    masked[replaced] = random_ids[replaced]
    labels = np.where(selected, ids, 0)
    return masked.astype(np.int32), labels.astype(np.int32)
