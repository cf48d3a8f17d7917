"""Captions of synthetic pedestrians in the style of CUHK-PEDES: a grammar with synonyms, varied order and omissions.

Each caption plays one annotator: it picks which visible details to mention (the upper garment almost always,
the rest often, as people do), how to word them, and in which order, from the identity's attributes and the
image's view (glasses cannot be seen from behind).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from vpmnet.data.synth_attributes import Identity

COLOUR_WORDS: Dict[str, Tuple[str, ...]] = {"gray": ("gray", "grey"), "blonde": ("blonde", "blond")}
UPPER_NOUNS = {
    "t-shirt": ("t-shirt", "t shirt", "tee shirt", "short sleeved shirt", "short sleeve top"),
    "shirt": ("shirt", "long sleeved shirt", "button up shirt", "collared shirt"),
    "jacket": ("jacket", "zip up jacket", "light jacket"),
    "coat": ("coat", "long coat", "overcoat"),
    "sweater": ("sweater", "jumper", "pullover"),
    "hoodie": ("hoodie", "hooded sweatshirt"),
    "dress": ("dress", "sleeveless dress", "knee length dress"),
}
LOWER_NOUNS = {
    "pants": ("pants", "trousers", "slacks", "long pants"),
    "jeans": ("jeans", "denim jeans"),
    "shorts": ("shorts",),
    "skirt": ("skirt", "short skirt"),
}
SHOE_NOUNS = {
    "sneakers": ("sneakers", "tennis shoes", "running shoes", "trainers"),
    "shoes": ("shoes", "flat shoes", "leather shoes"),
    "boots": ("boots", "ankle boots"),
    "sandals": ("sandals",),
}
HEADWEAR_NOUNS = {"cap": ("cap", "baseball cap"), "hat": ("hat", "sun hat"), "beanie": ("beanie", "knit hat")}
BAG_NOUNS = {"backpack": ("backpack", "back pack", "rucksack"), "shoulder bag": ("shoulder bag", "bag", "purse"),
             "handbag": ("handbag", "hand bag", "small bag")}
PLURAL_NOUNS = {"pants", "jeans", "shorts", "sneakers", "shoes", "boots", "sandals", "trousers", "slacks",
                "trainers", "glasses"}
SUBJECTS = {
    "man": ("a man", "a young man", "the man", "this man", "a male", "a guy", "the male", "the person"),
    "woman": ("a woman", "a young woman", "the woman", "this woman", "a lady", "a female", "a girl", "the person"),
}
PRONOUNS = {"man": ("he", "his"), "woman": ("she", "her")}
WEAR_VERBS = ("is wearing", "wears", "is dressed in", "has on", "is wearing")
MORE_WEAR = ("{he} is also wearing {items}.", "{he} has on {items}.", "{he} also wears {items}.",
             "{he} is wearing {items}.")
FILLERS = ("{he} is walking down the street.", "{he} is walking forward.", "{he} is looking down.",
           "{he} appears to be in a hurry.", "{he} is standing on the sidewalk.")
# Share of captions that mention a detail the image shows (the upper garment is almost always named).
MENTION_PROB = {"upper": 0.97, "lower": 0.85, "bag": 0.85, "headwear": 0.85, "glasses": 0.7, "shoes": 0.65,
                "hair": 0.6}
WEAR_ORDER = ("headwear", "glasses", "upper", "lower", "shoes")
FILLER_PROB = 0.25
TOP_DOWN_PROB = 0.75
MIN_DETAILS = 3


def _choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def colour_word(rng: np.random.Generator, colour: str) -> str:
    return _choose(rng, COLOUR_WORDS.get(colour, (colour,)))


def _with_article(phrase: str, head: str) -> str:
    if head in PLURAL_NOUNS:
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _upper_phrase(rng, who: Identity) -> str:
    noun = _choose(rng, UPPER_NOUNS[who.upper])
    colour = colour_word(rng, who.upper_colour)
    if who.pattern == "plain":
        phrase = f"{colour} {noun}"
    else:
        second = colour_word(rng, who.pattern_colour)
        phrase = _choose(rng, {
            "striped": (f"{colour} and {second} striped {noun}", f"{colour} {noun} with {second} stripes"),
            "plaid": (f"{colour} and {second} plaid {noun}", f"{colour} {noun} with a {second} checked pattern"),
            "logo": (f"{colour} {noun} with a {second} logo", f"{colour} {noun} with a {second} print on it"),
        }[who.pattern])
    return _with_article(phrase, noun.split()[-1])


def _noun_phrase(rng, colour: str, nouns: Sequence[str]) -> str:
    noun = _choose(rng, nouns)
    return _with_article(f"{colour_word(rng, colour)} {noun}", noun.split()[-1])


def _wear_phrases(rng, who: Identity, mentions: Sequence[str]) -> Dict[str, str]:
    phrases = {}
    if "headwear" in mentions:
        phrases["headwear"] = _noun_phrase(rng, who.headwear_colour, HEADWEAR_NOUNS[who.headwear])
    if "glasses" in mentions:
        phrases["glasses"] = _choose(rng, ("glasses", "a pair of glasses", "eyeglasses"))
    if "upper" in mentions:
        phrases["upper"] = _upper_phrase(rng, who)
    if "lower" in mentions:
        phrases["lower"] = _noun_phrase(rng, who.lower_colour, LOWER_NOUNS[who.lower])
    if "shoes" in mentions:
        shoes = _noun_phrase(rng, who.shoe_colour, SHOE_NOUNS[who.shoes])
        phrases["shoes"] = shoes if rng.random() < 0.7 else "a pair of " + shoes
    return phrases


def _hair_words(rng, who: Identity) -> Tuple[str, str]:
    length = _choose(rng, {"short": ("short",), "long": ("long", "shoulder length")}[who.hair_length])
    return length, colour_word(rng, who.hair_colour)


def _bag_sentence(rng, who: Identity, he: str, his: str) -> str:
    bag = _noun_phrase(rng, who.bag_colour, BAG_NOUNS[who.bag])
    if who.bag == "backpack":
        return _choose(rng, (f"{he} is carrying {bag}.", f"{he} has {bag} on {his} back.",
                             f"{he} is wearing {bag}."))
    side = who.bag_side
    if who.bag == "shoulder bag":
        return _choose(rng, (f"{he} is carrying {bag} on {his} {side} shoulder.",
                             f"{he} has {bag} over {his} {side} shoulder.",
                             f"{he} carries {bag} on {his} {side} side."))
    return _choose(rng, (f"{he} is holding {bag} in {his} {side} hand.",
                         f"{he} carries {bag} in {his} {side} hand."))


def _join(items: List[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + (" and " if len(items) == 2 else ", and ") + items[-1]


def _sentence_case(text: str) -> str:
    return text[0].upper() + text[1:]


def visible_details(who: Identity, view: str) -> List[str]:
    details = ["upper", "shoes", "hair"]
    if who.lower is not None:
        details.append("lower")
    if who.headwear != "none":
        details.append("headwear")
    if who.glasses and view == "front":
        details.append("glasses")
    if who.bag != "none":
        details.append("bag")
    return details


def describe(who: Identity, view: str, rng: np.random.Generator) -> str:
    """One annotator's caption of `who` seen from `view`."""
    visible = visible_details(who, view)
    mentions = [d for d in visible if rng.random() < MENTION_PROB[d]]
    for detail in rng.permutation(visible):
        if len(mentions) >= min(MIN_DETAILS, len(visible)):
            break
        if detail not in mentions:
            mentions.append(str(detail))
    he, his = PRONOUNS[who.gender]
    wear = _wear_phrases(rng, who, mentions)
    order = [d for d in WEAR_ORDER if d in wear]
    if rng.random() > TOP_DOWN_PROB:
        order = [str(d) for d in rng.permutation(order)]
    first_count = min(len(order), int(rng.integers(2, 4)))
    hair = _hair_words(rng, who) if "hair" in mentions else None
    opening = _choose(rng, SUBJECTS[who.gender])
    if hair and rng.random() < 0.5:
        opening += f" with {hair[0]} {hair[1]} hair"
        hair = None
    sentences = []
    if order[:first_count]:
        sentences.append(f"{opening} {_choose(rng, WEAR_VERBS)} {_join([wear[d] for d in order[:first_count]])}.")
    else:
        sentences.append(f"{opening} {_choose(rng, ('is walking', 'is standing'))}.")
    if order[first_count:]:
        more = _choose(rng, MORE_WEAR)
        sentences.append(more.format(he=he, items=_join([wear[d] for d in order[first_count:]])))
    if hair:
        length, colour = hair
        sentences.append(_choose(rng, (f"{he} has {length} {colour} hair.", f"{his} hair is {length} and {colour}.")))
    if "bag" in mentions:
        sentences.append(_bag_sentence(rng, who, he, his))
    if rng.random() < FILLER_PROB:
        sentences.append(_choose(rng, FILLERS).format(he=he))
    return " ".join(_sentence_case(s) for s in sentences)
