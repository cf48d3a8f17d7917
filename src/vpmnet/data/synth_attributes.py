"""Identity attributes of the synthetic pedestrians, in families of near-duplicates that differ in one attribute."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

# Garment colours as drawn before per-image lighting; weights follow CUHK-PEDES, where dark and neutral clothes
# dominate the captions.
GARMENT_COLOURS: Dict[str, tuple] = {
    "black": (28, 28, 32), "white": (236, 236, 230), "gray": (128, 128, 132), "blue": (36, 76, 196),
    "red": (198, 30, 36), "green": (40, 138, 62), "yellow": (234, 202, 42), "pink": (240, 140, 184),
    "purple": (116, 50, 150), "brown": (116, 72, 38), "orange": (240, 128, 32),
}
GARMENT_COLOUR_WEIGHTS = {"black": 22, "white": 14, "gray": 10, "blue": 12, "red": 8, "green": 6, "yellow": 5,
                          "pink": 6, "purple": 4, "brown": 7, "orange": 6}
JEANS_COLOUR_WEIGHTS = {"blue": 60, "black": 25, "gray": 10, "white": 5}
SHOE_COLOUR_WEIGHTS = {"black": 35, "white": 30, "gray": 10, "brown": 12, "red": 5, "blue": 4, "pink": 4}
HAIR_COLOURS = {"black": (24, 20, 20), "brown": (94, 58, 30), "blonde": (214, 178, 98), "gray": (164, 164, 164)}
HAIR_COLOUR_WEIGHTS = {"black": 55, "brown": 25, "blonde": 12, "gray": 8}
SKIN_TONES = ((242, 202, 172), (226, 174, 132), (192, 142, 102), (142, 96, 66), (96, 62, 42))

GENDERS = ("man", "woman")
HAIR_LENGTHS = ("short", "long")
HEADWEAR_WEIGHTS = {"none": 70, "cap": 15, "hat": 8, "beanie": 7}
UPPER_WEIGHTS = {"t-shirt": 30, "shirt": 18, "jacket": 18, "coat": 10, "sweater": 12, "hoodie": 8, "dress": 4}
PATTERN_WEIGHTS = {"plain": 64, "striped": 14, "plaid": 10, "logo": 12}
LOWER_WEIGHTS = {"pants": 40, "jeans": 32, "shorts": 14, "skirt": 14}
SHOE_WEIGHTS = {"sneakers": 45, "shoes": 30, "boots": 13, "sandals": 12}
BAG_WEIGHTS = {"none": 35, "backpack": 25, "shoulder bag": 25, "handbag": 15}
SIDES = ("left", "right")
WOMEN_ONLY = {"dress", "skirt"}
GLASSES_PROB = 0.2
# Family sizes: a base identity plus 0, 1 or 2 near-duplicates.
VARIANT_COUNT_WEIGHTS = {0: 40, 1: 35, 2: 25}


@dataclass(frozen=True)
class Identity:
    gender: str
    skin: int                       # index into SKIN_TONES; never described, as in real captions
    height: float                   # body proportions, never described
    girth: float
    hair_length: str
    hair_colour: str
    headwear: str                   # none | cap | hat | beanie
    headwear_colour: Optional[str]
    glasses: bool
    upper: str
    upper_colour: str
    pattern: str                    # plain | striped | plaid | logo
    pattern_colour: Optional[str]
    lower: Optional[str]            # None under a dress
    lower_colour: Optional[str]
    shoes: str
    shoe_colour: str
    bag: str                        # none | backpack | shoulder bag | handbag
    bag_colour: Optional[str]
    bag_side: Optional[str]         # the person's own side; None without a bag or with a backpack

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _pick(rng: np.random.Generator, weights: Dict, exclude: Sequence = ()):
    names = [n for n in weights if n not in exclude]
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _garment_colour(rng, exclude: Sequence = ()) -> str:
    return _pick(rng, GARMENT_COLOUR_WEIGHTS, exclude)


def _lower(rng, gender: str, upper: str, exclude: Sequence = ()):
    if upper == "dress":
        return None, None
    barred = set(exclude) | (WOMEN_ONLY if gender == "man" else set())
    lower = _pick(rng, LOWER_WEIGHTS, barred)
    colour = _pick(rng, JEANS_COLOUR_WEIGHTS) if lower == "jeans" else _garment_colour(rng)
    return lower, colour


def _pattern(rng, upper_colour: str, exclude: Sequence = ()):
    pattern = _pick(rng, PATTERN_WEIGHTS, exclude)
    return pattern, None if pattern == "plain" else _garment_colour(rng, exclude=[upper_colour])


def _bag(rng, exclude: Sequence = ()):
    bag = _pick(rng, BAG_WEIGHTS, exclude)
    if bag == "none":
        return bag, None, None
    side = None if bag == "backpack" else SIDES[int(rng.integers(2))]
    return bag, _garment_colour(rng), side


def sample_identity(rng: np.random.Generator) -> Identity:
    gender = GENDERS[int(rng.integers(2))]
    long_hair_prob = 0.75 if gender == "woman" else 0.12
    headwear = _pick(rng, HEADWEAR_WEIGHTS)
    upper = _pick(rng, UPPER_WEIGHTS, exclude=WOMEN_ONLY if gender == "man" else ())
    upper_colour = _garment_colour(rng)
    pattern, pattern_colour = _pattern(rng, upper_colour)
    lower, lower_colour = _lower(rng, gender, upper)
    bag, bag_colour, bag_side = _bag(rng)
    return Identity(
        gender=gender, skin=int(rng.integers(len(SKIN_TONES))),
        height=float(rng.uniform(0.92, 1.0)), girth=float(rng.uniform(0.88, 1.12)),
        hair_length="long" if rng.random() < long_hair_prob else "short",
        hair_colour=_pick(rng, HAIR_COLOUR_WEIGHTS),
        headwear=headwear, headwear_colour=None if headwear == "none" else _garment_colour(rng),
        glasses=bool(rng.random() < GLASSES_PROB),
        upper=upper, upper_colour=upper_colour, pattern=pattern, pattern_colour=pattern_colour,
        lower=lower, lower_colour=lower_colour,
        shoes=_pick(rng, SHOE_WEIGHTS), shoe_colour=_pick(rng, SHOE_COLOUR_WEIGHTS),
        bag=bag, bag_colour=bag_colour, bag_side=bag_side)


def _changes(identity: Identity) -> List[str]:
    """The described attributes a near-duplicate may change, given what this identity wears."""
    names = ["upper_colour", "pattern", "shoe_colour", "hair_colour", "bag", "headwear", "glasses"]
    if identity.lower is not None:   # a dress has no lower garment to change, and stays a dress
        names += ["upper", "lower_colour", "lower"]
    if identity.bag != "none":
        names.append("bag_colour")
    if identity.bag_side is not None:
        names.append("bag_side")
    return names


def vary_one(identity: Identity, rng: np.random.Generator) -> Identity:
    """A near-duplicate: the same person in every respect but one described attribute."""
    names = _changes(identity)
    change = names[int(rng.integers(len(names)))]
    i = identity
    if change == "upper_colour":
        colour = _garment_colour(rng, exclude=[i.upper_colour, i.pattern_colour])
        return dataclasses.replace(i, upper_colour=colour)
    if change == "pattern":
        pattern, pattern_colour = _pattern(rng, i.upper_colour, exclude=[i.pattern])
        return dataclasses.replace(i, pattern=pattern, pattern_colour=pattern_colour)
    if change == "upper":
        barred = {i.upper, "dress"} | (WOMEN_ONLY if i.gender == "man" else set())
        return dataclasses.replace(i, upper=_pick(rng, UPPER_WEIGHTS, barred))
    if change == "lower":
        lower, colour = _lower(rng, i.gender, i.upper, exclude=[i.lower])
        return dataclasses.replace(i, lower=lower, lower_colour=colour if lower == "jeans" else i.lower_colour)
    if change == "lower_colour":
        return dataclasses.replace(i, lower_colour=_garment_colour(rng, exclude=[i.lower_colour]))
    if change == "shoe_colour":
        return dataclasses.replace(i, shoe_colour=_pick(rng, SHOE_COLOUR_WEIGHTS, exclude=[i.shoe_colour]))
    if change == "hair_colour":
        return dataclasses.replace(i, hair_colour=_pick(rng, HAIR_COLOUR_WEIGHTS, exclude=[i.hair_colour]))
    if change == "bag":
        bag, colour, side = _bag(rng, exclude=[i.bag])
        return dataclasses.replace(i, bag=bag, bag_colour=colour, bag_side=side)
    if change == "bag_colour":
        return dataclasses.replace(i, bag_colour=_garment_colour(rng, exclude=[i.bag_colour]))
    if change == "bag_side":
        return dataclasses.replace(i, bag_side="left" if i.bag_side == "right" else "right")
    if change == "headwear":
        headwear = _pick(rng, HEADWEAR_WEIGHTS, exclude=[i.headwear])
        colour = None if headwear == "none" else (i.headwear_colour or _garment_colour(rng))
        return dataclasses.replace(i, headwear=headwear, headwear_colour=colour)
    return dataclasses.replace(i, glasses=not i.glasses)


def sample_families(rng: np.random.Generator, count: int) -> List[List[Identity]]:
    """`count` identities in families: a base identity and up to two near-duplicates of it."""
    families: List[List[Identity]] = []
    remaining = count
    while remaining > 0:
        family = [sample_identity(rng)]
        for _ in range(int(_pick(rng, VARIANT_COUNT_WEIGHTS))):
            variant = vary_one(family[0], rng)
            if variant not in family:
                family.append(variant)
        families.append(family[:remaining])
        remaining -= len(families[-1])
    return families
