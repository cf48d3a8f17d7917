"""CLIP in MindSpore: encoders, tokenizer, and loading of converted weights."""
from vpmnet.clip.config import CLIPConfig, TextConfig, VisionConfig


def load_clip(path, image_size=None):
    """(CLIP cell, tokenizer) from a folder written by `vpmnet convert-clip`."""
    from vpmnet.clip.weights import load_clip as _load

    return _load(path, image_size=image_size)


__all__ = ["CLIPConfig", "TextConfig", "VisionConfig", "load_clip"]
