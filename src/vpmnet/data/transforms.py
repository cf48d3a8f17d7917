"""Image loading and the train/eval image transforms: random choices from NumPy, applied by mindspore.dataset.vision.

Training augmentation is split in two so that it is exactly reproducible: `draw_augmentation` decides every
random parameter from a NumPy generator the caller seeds (the pipeline seeds it from seed, epoch and sample
position), and `augment_image` applies those parameters with deterministic `mindspore.dataset.vision` ops.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mindspore.dataset import vision
from PIL import Image, ImageOps

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# IRRA's recipe (torchvision defaults where IRRA keeps them).
FLIP_PROB = 0.5
PAD = 10
ERASE_PROB = 0.5
ERASE_SCALE = (0.02, 0.4)
ERASE_RATIO = (0.3, 3.3)
ERASE_ATTEMPTS = 10
# The paper names a random affine augmentation without parameters; these keep the person in the frame.
AFFINE_DEGREES = 10.0
AFFINE_TRANSLATE = 0.05   # fraction of the image size, each axis
AFFINE_SCALE = (0.9, 1.1)

ImageLike = Union[str, os.PathLike, Image.Image]


class CorruptImageError(ValueError):
    """An image file that cannot be opened or decoded."""


@dataclass(frozen=True)
class Augmentation:
    flip: bool = False
    affine: Optional[Tuple[float, float, float, float]] = None   # degrees, translate x, translate y, scale
    crop: Optional[Tuple[int, int]] = None                       # top, left in the padded image
    erase: Optional[Tuple[int, int, int, int]] = None            # top, left, height, width


NO_AUGMENTATION = Augmentation()

# ToTensor + Normalize in one op: uint8 HWC in, float32 HWC out.
_NORMALIZE = vision.Normalize([255.0 * m for m in CLIP_MEAN], [255.0 * s for s in CLIP_STD])
_HWC2CHW = vision.HWC2CHW()


def load_image(path: Union[str, os.PathLike]) -> Image.Image:
    """An RGB image with its EXIF orientation applied; any read or decode failure is a CorruptImageError."""
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot read image {path}: {exc}") from exc


def _as_rgb(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image).convert("RGB")
    return load_image(image)


def _erase_box(rng: np.random.Generator, height: int, width: int) -> Optional[Tuple[int, int, int, int]]:
    """torchvision RandomErasing.get_params: up to 10 tries for a box of the drawn area and aspect ratio."""
    log_ratio = (math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]))
    for _ in range(ERASE_ATTEMPTS):
        area = height * width * rng.uniform(*ERASE_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        h = int(round(math.sqrt(area * aspect)))
        w = int(round(math.sqrt(area / aspect)))
        if 0 < h < height and 0 < w < width:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return None


def draw_augmentation(rng: np.random.Generator, image_size: Sequence[int], img_aug: bool,
                      affine_aug: bool) -> Augmentation:
    """Every random choice of one training image. As in IRRA, the flip applies even without `img_aug`."""
    height, width = image_size
    flip = bool(rng.random() < FLIP_PROB)
    affine = None
    if affine_aug:
        affine = (float(rng.uniform(-AFFINE_DEGREES, AFFINE_DEGREES)),
                  float(rng.uniform(-AFFINE_TRANSLATE, AFFINE_TRANSLATE)),
                  float(rng.uniform(-AFFINE_TRANSLATE, AFFINE_TRANSLATE)),
                  float(rng.uniform(*AFFINE_SCALE)))
    crop = erase = None
    if img_aug:
        crop = (int(rng.integers(0, 2 * PAD + 1)), int(rng.integers(0, 2 * PAD + 1)))
        if rng.random() < ERASE_PROB:
            erase = _erase_box(rng, height, width)
    return Augmentation(flip, affine, crop, erase)


def augment_image(image: ImageLike, image_size: Sequence[int], augmentation: Augmentation) -> np.ndarray:
    """Resize, then the given flip / affine / pad-crop / normalise / erase: float32 [3, H, W]."""
    size = (int(image_size[0]), int(image_size[1]))
    # On a PIL image vision.Resize is PIL's bilinear resize, as in torchvision.
    pixels = np.asarray(vision.Resize(size)(_as_rgb(image)))
    if augmentation.flip:
        pixels = vision.HorizontalFlip()(pixels)
    if augmentation.affine is not None:
        degrees, shift_x, shift_y, scale = augmentation.affine
        pixels = vision.Affine(degrees=degrees, translate=[shift_x, shift_y], scale=scale, shear=[0.0, 0.0],
                               resample=vision.Inter.BILINEAR)(pixels)
    if augmentation.crop is not None:
        pixels = vision.Crop(augmentation.crop, size)(vision.Pad(PAD)(pixels))
    pixels = _NORMALIZE(pixels)
    if augmentation.erase is not None:
        # Erasing comes after Normalize in IRRA, so the fill is the raw mean triple in normalised space.
        pixels = vision.Erase(*augmentation.erase, value=CLIP_MEAN)(pixels)
    return _HWC2CHW(pixels)


def preprocess_image(image: ImageLike, image_size: Sequence[int]) -> np.ndarray:
    """The evaluation / inference transform: EXIF orientation, RGB, resize to (H, W), CLIP normalisation."""
    return augment_image(image, image_size, NO_AUGMENTATION)
