"""The synthetic dataset: determinism, splits, captions that agree with the drawn attributes, a fine-grained task."""
import dataclasses
import json
import os
import re
from collections import defaultdict

import numpy as np
import pytest

from conftest import cli
from vpmnet.clip.tokenizer import load_tokenizer
from vpmnet.data.datasets import load_dataset
from vpmnet.data.synth import generate
from vpmnet.data.synth_attributes import GARMENT_COLOURS, HAIR_COLOURS, Identity
from vpmnet.data.synth_captions import (BAG_NOUNS, COLOUR_WORDS, HEADWEAR_NOUNS, LOWER_NOUNS, SHOE_NOUNS,
                                        UPPER_NOUNS)

GARMENT_TABLES = {"upper": UPPER_NOUNS, "lower": LOWER_NOUNS, "shoes": SHOE_NOUNS, "headwear": HEADWEAR_NOUNS,
                  "bag": BAG_NOUNS}
MEN_WORDS, WOMEN_WORDS = {"he", "his", "man", "male", "guy"}, {"she", "her", "woman", "lady", "girl", "female"}
DESCRIBED = [f.name for f in dataclasses.fields(Identity) if f.name not in ("skin", "height", "girth")]


def words_of(colour):
    return COLOUR_WORDS.get(colour, (colour,))


WORD_TO_COLOUR = {w: c for c in list(GARMENT_COLOURS) + list(HAIR_COLOURS) for w in words_of(c)}


def garments_named(caption):
    """(slot, type) of every garment phrase in the caption, longest phrases first so "t shirt" is not "shirt"."""
    text = f" {caption.lower()} "
    table = sorted(((phrase, slot, kind) for slot, nouns in GARMENT_TABLES.items()
                    for kind, phrases in nouns.items() for phrase in phrases), key=lambda t: -len(t[0]))
    found = []
    for phrase, slot, kind in table:
        pattern = re.compile(rf"\b{re.escape(phrase)}\b")
        if pattern.search(text):
            found.append((slot, kind))
            text = pattern.sub(" # ", text)
    return found


def upper_colour_of(caption):
    """The colour word before the first upper-garment noun (past "and" and pattern words), or None."""
    nouns = sorted({n for phrases in UPPER_NOUNS.values() for n in phrases}, key=len, reverse=True)
    match = re.search(r"\b(" + "|".join(map(re.escape, nouns)) + r")\b", caption.lower())
    if match is None:
        return None
    run = []
    for word in reversed(re.findall(r"[a-z]+", caption.lower()[:match.start()])):
        if word not in WORD_TO_COLOUR and word not in ("and", "striped", "plaid"):
            break
        run.append(word)
    colours = [WORD_TO_COLOUR[w] for w in reversed(run) if w in WORD_TO_COLOUR]
    return colours[0] if colours else None


@pytest.fixture(scope="module")
def moderate(tmp_path_factory):
    """300 identities x 2 images, 100 of them in the test split; small images, the captions are what count."""
    root = str(tmp_path_factory.mktemp("moderate"))
    generate(root, identities=300, images_per_identity=2, seed=11, size=(64, 32), val_identities=20,
             test_identities=100, workers=2)
    with open(os.path.join(root, "reid_raw.json")) as f:
        records = json.load(f)
    with open(os.path.join(root, "attributes.json")) as f:
        attributes = {a["file_path"]: a for a in json.load(f)["images"]}
    return root, records, attributes


def test_same_seed_gives_byte_identical_files_whatever_the_workers(tmp_path):
    settings = dict(identities=8, images_per_identity=2, seed=4, size=(96, 48), val_identities=2, test_identities=2)
    generate(str(tmp_path / "a"), workers=1, **settings)
    generate(str(tmp_path / "b"), workers=2, **settings)
    generate(str(tmp_path / "c"), workers=1, **{**settings, "seed": 5})
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "a")
                   for d, _, names in os.walk(tmp_path / "a") for f in names)
    assert len(files) == 2 + 16
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "reid_raw.json").read_bytes() != (tmp_path / "c" / "reid_raw.json").read_bytes()


def test_splits_are_identity_disjoint_and_read_as_cuhk(moderate):
    root, records, _ = moderate
    splits = load_dataset("synthetic", root)
    assert splits.problems == []
    assert splits.num_classes == 180 and len(splits.train) == 180 * 2 * 2
    assert len(set(splits.val.image_pids)) == 20 and len(set(splits.test.image_pids)) == 100
    ids = defaultdict(set)
    for r in records:
        ids[r["split"]].add(r["id"])
    assert ids["train"] == set(range(1, 181)) and ids["test"] == set(range(201, 301))
    assert load_dataset("CUHK-PEDES", root).train == splits.train


def test_every_caption_agrees_with_its_image(moderate):
    _, records, attributes = moderate
    mentions = defaultdict(int)
    captions = [(c, attributes[r["file_path"]]) for r in records for c in r["captions"]]
    for caption, image in captions:
        who, view = image["identity"], image["camera"]["view"]
        words = set(re.findall(r"[a-z]+", caption.lower()))
        own_colours = {who[k] for k in ("upper_colour", "pattern_colour", "lower_colour", "shoe_colour",
                                        "bag_colour", "headwear_colour", "hair_colour") if who[k]}
        assert {WORD_TO_COLOUR[w] for w in words & set(WORD_TO_COLOUR)} <= own_colours, caption
        assert not words & (WOMEN_WORDS if who["gender"] == "man" else MEN_WORDS), caption
        for side in words & {"left", "right"}:
            assert side == who["bag_side"], caption
        if "glasses" in words or "eyeglasses" in words:
            assert who["glasses"] and view == "front", caption
        for slot, kind in garments_named(caption):
            assert kind == who[slot], (caption, slot)
            mentions[slot] += 1
        if upper_colour_of(caption) is not None:
            assert upper_colour_of(caption) == who["upper_colour"], caption
    # Annotators almost always name the upper garment and often leave other details out.
    assert mentions["upper"] > 0.95 * len(captions)
    assert 0.5 * len(captions) < mentions["shoes"] < 0.8 * len(captions)


def test_near_duplicate_identities_differ_in_one_attribute(moderate):
    _, _, attributes = moderate
    people = {a["id"]: (a["family"], a["identity"]) for a in attributes.values()}
    families = defaultdict(list)
    for family, who in sorted(people.values(), key=lambda p: p[0]):
        families[family].append(who)
    # A changed bag brings its colour and side, a changed headwear or pattern its colour, and so on.
    owner = {"bag_colour": "bag", "bag_side": "bag", "headwear_colour": "headwear", "pattern_colour": "pattern",
             "lower_colour": "lower"}
    variants = 0
    for base, *others in families.values():
        for other in others:
            assert len({owner.get(k, k) for k in DESCRIBED if base[k] != other[k]}) == 1
            variants += 1
    assert variants > 0.3 * len(people)


def test_matching_the_upper_garment_colour_alone_does_not_solve_the_task(moderate):
    """The README's baseline: rank the test gallery by "same upper colour as the caption says", ties by
    gallery order, and count the queries whose first image is of the right person."""
    _, records, attributes = moderate
    test = [r for r in records if r["split"] == "test"]
    gallery_colour = np.array([attributes[r["file_path"]]["identity"]["upper_colour"] for r in test])
    gallery_pid = np.array([r["id"] for r in test])
    hits = []
    for r in test:
        for caption in r["captions"]:
            first = np.argmax(gallery_colour == upper_colour_of(caption))   # 0 when nothing matches
            hits.append(gallery_pid[first] == r["id"])
    r1 = 100 * np.mean(hits)
    print(f"upper-colour baseline: R1 {r1:.1f}% over {len(hits)} queries and {len(test)} images")
    assert r1 < 30


def test_caption_lengths_look_like_cuhk_pedes(moderate):
    _, records, _ = moderate
    tokenizer = load_tokenizer()
    lengths = np.array([len(ids) for ids in tokenizer.encode_batch([c for r in records for c in r["captions"]])])
    # CUHK-PEDES: mean 29, p95 47 CLIP tokens.
    assert 24 < lengths.mean() < 36 and 36 < np.percentile(lengths, 95) < 55 and lengths.max() < 75


def test_synth_then_data_info_from_the_command_line(tmp_path):
    out = tmp_path / "synthetic"
    args = ["synth", out, "--identities", 20, "--images-per-identity", 3, "--seed", 2, "--size", "64x32",
            "--workers", 2]
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert "train: 16 identities, 48 images, 96 captions" in result.stdout
    info = cli("data-info", "--dataset", "synthetic", "--root", out, "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert [report[s]["ids"] for s in ("train", "val", "test")] == [16, 2, 2]
    assert [report[s]["images"] for s in ("train", "val", "test")] == [48, 6, 6]
    assert [report[s]["captions"] for s in ("train", "val", "test")] == [96, 12, 12]
    again = cli(*args)
    assert again.returncode != 0 and "pass --overwrite to replace" in again.stderr
    assert cli(*args, "--overwrite").returncode == 0
    bad = cli("synth", tmp_path / "x", "--identities", 3)
    assert bad.returncode != 0 and "leave 2 for training" in bad.stderr
