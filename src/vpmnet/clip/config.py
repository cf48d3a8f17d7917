"""Architecture of a CLIP model: every size is a value, so tests can build tiny models."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple


@dataclass
class VisionConfig:
    width: int = 768
    layers: int = 12
    heads: int = 12
    patch_size: int = 16
    stride_size: int = 16
    image_size: Tuple[int, int] = (224, 224)   # H, W of the position grid the weights carry

    def grid(self, image_size=None) -> Tuple[int, int]:
        h, w = image_size or self.image_size
        return (h - self.patch_size) // self.stride_size + 1, (w - self.patch_size) // self.stride_size + 1


@dataclass
class TextConfig:
    width: int = 512
    layers: int = 12
    heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408


@dataclass
class CLIPConfig:
    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
