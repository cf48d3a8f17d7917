"""Image transforms: the eval transform against a hand computation, EXIF, augmentation parameters and their effect."""
import numpy as np
import pytest
from PIL import Image

from fixtures_data import write_corrupt_image, write_image
from vpmnet.data.transforms import (CLIP_MEAN, CLIP_STD, PAD, Augmentation, CorruptImageError, augment_image,
                                    draw_augmentation, load_image, preprocess_image)

SIZE = (48, 24)


def by_hand(image, size=SIZE):
    """torchvision's Resize (PIL bilinear) -> ToTensor -> Normalize, in NumPy, HWC."""
    pixels = np.asarray(image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR), np.float32) / 255
    return (pixels - np.float32(CLIP_MEAN)) / np.float32(CLIP_STD)


def test_eval_transform_matches_resize_and_clip_normalisation(tmp_path):
    write_image(str(tmp_path / "a.png"), seed=1, size=(70, 30))
    expected = by_hand(Image.open(tmp_path / "a.png")).transpose(2, 0, 1)
    from_path = preprocess_image(str(tmp_path / "a.png"), SIZE)
    from_pil = preprocess_image(Image.open(tmp_path / "a.png"), SIZE)
    assert from_path.shape == (3, *SIZE) and from_path.dtype == np.float32
    np.testing.assert_allclose(from_path, expected, atol=1e-5)
    np.testing.assert_array_equal(from_path, from_pil)
    grey = preprocess_image(Image.open(tmp_path / "a.png").convert("L"), SIZE)
    assert grey.shape == (3, *SIZE)


def test_exif_orientation_is_honoured(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6        # "rotate 90 CW to view"
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    upright = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_270)
    assert load_image(tmp_path / "rotated.png").size == (30, 60)
    np.testing.assert_allclose(preprocess_image(str(tmp_path / "rotated.png"), SIZE),
                               by_hand(upright).transpose(2, 0, 1), atol=1e-5)


def test_unreadable_images_raise_corrupt_image_error_naming_the_file(tmp_path):
    write_corrupt_image(str(tmp_path / "bad.jpg"))
    with pytest.raises(CorruptImageError, match="bad.jpg"):
        preprocess_image(str(tmp_path / "bad.jpg"), SIZE)
    with pytest.raises(CorruptImageError, match="gone.jpg"):
        load_image(tmp_path / "gone.jpg")


def test_augmentation_applies_flip_pad_crop_normalise_and_mean_erasing(tmp_path):
    write_image(str(tmp_path / "a.png"), seed=2, size=SIZE)
    image = Image.open(tmp_path / "a.png")
    out = augment_image(image, SIZE, Augmentation(flip=True, crop=(3, 15), erase=(5, 2, 10, 6)))
    flipped = np.asarray(image)[:, ::-1]
    padded = np.pad(flipped, ((PAD, PAD), (PAD, PAD), (0, 0)))
    expected = by_hand(Image.fromarray(padded[3:3 + SIZE[0], 15:15 + SIZE[1]]))
    # IRRA erases after Normalize with value=mean: the box holds the raw mean triple.
    expected[5:15, 2:8] = CLIP_MEAN
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), atol=1e-5)


def test_affine_augmentation_moves_pixels_deterministically(tmp_path):
    write_image(str(tmp_path / "a.png"), seed=3, size=SIZE)
    augmentation = Augmentation(affine=(8.0, 0.05, -0.03, 1.08))
    first = augment_image(str(tmp_path / "a.png"), SIZE, augmentation)
    assert first.shape == (3, *SIZE)
    np.testing.assert_array_equal(first, augment_image(str(tmp_path / "a.png"), SIZE, augmentation))
    assert np.abs(first - preprocess_image(str(tmp_path / "a.png"), SIZE)).mean() > 0.1


def test_drawn_parameters_follow_irra_and_the_flags():
    size = (384, 128)
    draws = [draw_augmentation(np.random.default_rng([0, i]), size, True, True) for i in range(4000)]
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.03
    assert all(0 <= d.crop[0] <= 2 * PAD and 0 <= d.crop[1] <= 2 * PAD for d in draws)
    erased = [d.erase for d in draws if d.erase is not None]
    assert 0.4 < len(erased) / len(draws) < 0.5       # p = 0.5, minus the boxes that never fit in 10 tries
    for top, left, h, w in erased:
        assert top + h <= size[0] and left + w <= size[1]
        assert 0.02 * 0.9 <= h * w / (size[0] * size[1]) <= 0.4 * 1.1
    degrees, shift_x, shift_y, scale = np.array([d.affine for d in draws]).T
    assert np.abs(degrees).max() <= 10 and np.abs([shift_x, shift_y]).max() <= 0.05
    assert 0.9 <= scale.min() and scale.max() <= 1.1
    plain = draw_augmentation(np.random.default_rng(1), size, img_aug=False, affine_aug=False)
    assert plain.crop is None and plain.erase is None and plain.affine is None
    assert draw_augmentation(np.random.default_rng([4, 2]), size, True, False) == \
        draw_augmentation(np.random.default_rng([4, 2]), size, True, False)
