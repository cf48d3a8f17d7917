"""Pillow drawing of one synthetic pedestrian from its attributes, seen through a random per-image camera."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from vpmnet.data.synth_attributes import GARMENT_COLOURS, HAIR_COLOURS, SKIN_TONES, Identity

Box = Tuple[float, float, float, float]          # x0, y0, x1, y1 as fractions of the image
RGB = Tuple[int, int, int]

LONG_SLEEVES = {"shirt", "jacket", "coat", "sweater", "hoodie"}
EYE = (30, 24, 22)
# Body landmarks in units of the person's height, y = 0 at the top of the head.
SHOULDER_Y, WAIST_Y, ANKLE_Y = 0.15, 0.47, 0.935


@dataclass(frozen=True)
class Camera:
    view: str                 # front | back: which way the person faces, so which image side is their left
    stride: float             # leg spread, 0..1
    scale: float              # person height / image height
    shift: float              # horizontal offset of the person, fraction of the image width
    margin: float             # gap under the feet, fraction of the image height
    wall: RGB
    ground: RGB
    horizon: float            # fraction of the image height
    blocks: Tuple[Tuple[Box, RGB], ...]   # background objects
    brightness: float
    tint: Tuple[float, float, float]
    light_slope: float        # left-to-right brightness change
    occluder: Optional[Tuple[Box, RGB]]
    blur: float               # Gaussian radius in pixels; 0 = sharp
    noise: float              # sensor noise standard deviation, 0..255 scale

    def summary(self) -> dict:
        """The camera facts a caption or a test may care about."""
        return {"view": self.view, "occluded": self.occluder is not None, "blur": round(self.blur, 2),
                "brightness": round(self.brightness, 2)}


def _muted(rng: np.random.Generator) -> RGB:
    level = rng.uniform(60, 200)
    return tuple(int(np.clip(level + rng.uniform(-28, 28), 0, 255)) for _ in range(3))


def sample_camera(rng: np.random.Generator) -> Camera:
    blocks = []
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = rng.uniform(-0.2, 0.9), rng.uniform(0.0, 0.7)
        blocks.append(((x0, y0, x0 + rng.uniform(0.15, 0.6), y0 + rng.uniform(0.05, 0.35)), _muted(rng)))
    occluder = None
    if rng.random() < 0.15:
        if rng.random() < 0.5:   # something low in front: a car bonnet, a bench, a railing
            top = rng.uniform(0.72, 0.86)
            box = (rng.uniform(-0.3, 0.2), top, rng.uniform(0.7, 1.3), 1.0)
        else:                    # a pole or a passer-by's edge
            x0 = rng.uniform(-0.1, 0.9)
            box = (x0, 0.0, x0 + rng.uniform(0.1, 0.25), 1.0)
        occluder = (box, _muted(rng))
    return Camera(
        view="front" if rng.random() < 0.5 else "back", stride=float(rng.uniform(0, 1)),
        scale=float(rng.uniform(0.8, 0.95)), shift=float(rng.uniform(-0.08, 0.08)),
        margin=float(rng.uniform(0.01, 0.04)), wall=_muted(rng), ground=_muted(rng),
        horizon=float(rng.uniform(0.5, 0.85)), blocks=tuple(blocks),
        brightness=float(rng.uniform(0.72, 1.22)), tint=tuple(float(t) for t in rng.uniform(0.93, 1.07, 3)),
        light_slope=float(rng.uniform(-0.25, 0.25)), occluder=occluder,
        blur=float(rng.uniform(0.4, 1.3)) if rng.random() < 0.3 else 0.0,
        noise=float(rng.uniform(0, 7)))


def _shade(rgb: Sequence[int], factor: float) -> RGB:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)


class _Figure:
    """Draws in body units: x = 0 on the body's axis, y = 0 at the top of the head, 1 under the feet."""

    def __init__(self, image: Image.Image, cx: float, top: float, unit: float):
        self.image, self.draw = image, ImageDraw.Draw(image)
        self.cx, self.top, self.unit = cx, top, unit

    def pt(self, x: float, y: float) -> Tuple[float, float]:
        return self.cx + x * self.unit, self.top + y * self.unit

    def poly(self, points, fill, draw=None) -> None:
        (draw or self.draw).polygon([self.pt(x, y) for x, y in points], fill=fill)

    def ellipse(self, x0, y0, x1, y1, fill) -> None:
        (a, b), (c, d) = self.pt(x0, y0), self.pt(x1, y1)
        self.draw.ellipse((min(a, c), b, max(a, c), d), fill=fill)

    def rect(self, x0, y0, x1, y1, fill=None, outline=None, width: float = 0.0) -> None:
        (a, b), (c, d) = self.pt(x0, y0), self.pt(x1, y1)
        self.draw.rectangle((min(a, c), b, max(a, c), d), fill=fill, outline=outline,
                            width=max(1, int(round(width * self.unit))))

    def line(self, points, fill, width: float) -> None:
        self.draw.line([self.pt(x, y) for x, y in points], fill=fill, width=max(1, int(round(width * self.unit))))

    def patterned(self, shapes, pattern: str, colour: RGB) -> None:
        """Stripes, a plaid grid or a chest logo in `colour`, clipped to the garment's polygons."""
        garment = Image.new("L", self.image.size, 0)
        for shape in shapes:
            self.poly(shape, 255, ImageDraw.Draw(garment))
        marks = Image.new("L", self.image.size, 0)
        draw = ImageDraw.Draw(marks)
        if pattern == "logo":
            self.poly([(-0.035, 0.21), (0.035, 0.21), (0.035, 0.28), (-0.035, 0.28)], 255, draw)
        else:
            step, width = (0.036, 0.013) if pattern == "striped" else (0.05, 0.008)
            for y in np.arange(SHOULDER_Y + step / 2, 0.8, step):
                self.poly([(-0.3, y), (0.3, y), (0.3, y + width), (-0.3, y + width)], 255, draw)
            if pattern == "plaid":
                for x in np.arange(-0.3, 0.3, step):
                    self.poly([(x, 0.0), (x + width, 0.0), (x + width, 1.0), (x, 1.0)], 255, draw)
        self.image.paste(colour, mask=ImageChops.multiply(garment, marks))


def _side_sign(side: str, view: str) -> int:
    """+1 if the person's `side` is on the image's right: facing the camera, their left is our right."""
    return (1 if side == "left" else -1) * (1 if view == "front" else -1)


def _leg(sign: int, stride: float, girth: float, y0: float, y1: float):
    """The polygon of one leg (sign -1 image-left, +1 image-right) between heights y0 and y1."""
    foot_x = sign * (0.04 + 0.06 * stride)
    inner_hip, outer_hip = sign * 0.005, sign * 0.095 * girth
    inner_ankle, outer_ankle = foot_x - sign * 0.022, foot_x + sign * 0.028

    def at(y, hip, ankle):
        t = (y - WAIST_Y) / (ANKLE_Y - WAIST_Y)
        return hip + t * (ankle - hip)

    return [(at(y0, inner_hip, inner_ankle), y0), (at(y0, outer_hip, outer_ankle), y0),
            (at(y1, outer_hip, outer_ankle), y1), (at(y1, inner_hip, inner_ankle), y1)]


def _draw_legs(fig: _Figure, who: Identity, cam: Camera, skin: RGB) -> None:
    g = who.girth
    garment_end = {"pants": ANKLE_Y, "jeans": ANKLE_Y, "shorts": 0.63}.get(who.lower, WAIST_Y)
    for sign in (-1, 1):
        fig.poly(_leg(sign, cam.stride, g, WAIST_Y, ANKLE_Y), skin)
        if garment_end > WAIST_Y:
            fig.poly(_leg(sign, cam.stride, g, WAIST_Y - 0.01, garment_end), GARMENT_COLOURS[who.lower_colour])
            if who.lower == "jeans":   # a darker seam down the middle of each leg
                inner_top, outer_top, outer_bottom, inner_bottom = _leg(sign, cam.stride, g, WAIST_Y, ANKLE_Y)
                seam = [((inner_top[0] + outer_top[0]) / 2, WAIST_Y),
                        ((inner_bottom[0] + outer_bottom[0]) / 2, ANKLE_Y)]
                fig.line(seam, _shade(GARMENT_COLOURS[who.lower_colour], 0.75), 0.006)
        foot_x = sign * (0.04 + 0.06 * cam.stride) + sign * 0.003
        shoe = GARMENT_COLOURS[who.shoe_colour]
        if who.shoes == "boots":
            fig.poly(_leg(sign, cam.stride, g, 0.84, ANKLE_Y), shoe)
        if who.shoes == "sandals":
            fig.ellipse(foot_x - 0.036, 0.93, foot_x + 0.036, 0.978, skin)
            for y in (0.94, 0.96):
                fig.line([(foot_x - 0.036, y), (foot_x + 0.036, y)], shoe, 0.008)
            fig.rect(foot_x - 0.036, 0.972, foot_x + 0.036, 0.985, shoe)
        else:
            fig.ellipse(foot_x - 0.04, 0.925, foot_x + 0.04, 0.985, shoe)
            if who.shoes == "sneakers":   # a white sole line
                fig.rect(foot_x - 0.04, 0.972, foot_x + 0.04, 0.982, (228, 228, 224) if who.shoe_colour != "white"
                         else (150, 150, 150))
    if who.lower == "skirt":
        fig.poly([(-0.1 * g, 0.45), (0.1 * g, 0.45), (0.15 * g, 0.66), (-0.15 * g, 0.66)],
                 GARMENT_COLOURS[who.lower_colour])


def _torso_shapes(who: Identity):
    g = who.girth
    hem = {"coat": 0.62}.get(who.upper, WAIST_Y)
    shapes = [[(-0.12 * g, SHOULDER_Y), (0.12 * g, SHOULDER_Y), (0.1 * g, hem), (-0.1 * g, hem)]]
    if who.upper == "dress":
        shapes.append([(-0.1 * g, WAIST_Y - 0.01), (0.1 * g, WAIST_Y - 0.01), (0.16 * g, 0.72), (-0.16 * g, 0.72)])
    return shapes


def _draw_upper(fig: _Figure, who: Identity, cam: Camera, skin: RGB) -> None:
    g = who.girth
    colour = GARMENT_COLOURS[who.upper_colour]
    sleeve_end = 0.46 if who.upper in LONG_SLEEVES else (0.25 if who.upper == "t-shirt" else SHOULDER_Y + 0.02)
    for sign in (-1, 1):
        shoulder, hand = sign * 0.118 * g, sign * (0.14 * g + 0.01 * cam.stride)
        arm = [(shoulder, SHOULDER_Y + 0.005), (shoulder + sign * 0.045, SHOULDER_Y + 0.02),
               (hand + sign * 0.035, 0.46), (hand - sign * 0.008, 0.46)]
        fig.poly(arm, skin)
        t = (sleeve_end - SHOULDER_Y) / (0.46 - SHOULDER_Y)
        sleeve = [arm[0], arm[1], (arm[1][0] + t * (arm[2][0] - arm[1][0]), sleeve_end),
                  (arm[0][0] + t * (arm[3][0] - arm[0][0]), sleeve_end)]
        fig.poly(sleeve, colour)
        fig.ellipse(hand - 0.018, 0.455, hand + 0.03 * sign + 0.004, 0.5, skin)
    shapes = _torso_shapes(who)
    for shape in shapes:
        fig.poly(shape, colour)
    if who.pattern != "plain":
        fig.patterned(shapes, who.pattern, GARMENT_COLOURS[who.pattern_colour])
    trim = _shade(colour, 0.7) if who.upper_colour != "black" else (90, 90, 96)
    hem = shapes[0][2][1]
    if who.upper == "jacket" and cam.view == "front":
        fig.line([(0, SHOULDER_Y + 0.01), (0, hem)], trim, 0.008)
    if who.upper == "coat" and cam.view == "front":
        for y in (0.22, 0.3, 0.38, 0.46, 0.54):
            fig.ellipse(-0.008, y, 0.008, y + 0.014, trim)
    if who.upper == "sweater":
        fig.rect(-0.1 * g, hem - 0.02, 0.1 * g, hem, trim)
    if who.upper == "hoodie":
        if cam.view == "back":
            fig.poly([(-0.07, SHOULDER_Y - 0.005), (0.07, SHOULDER_Y - 0.005), (0.05, 0.25), (-0.05, 0.25)], trim)
        else:
            fig.rect(-0.06 * g, 0.36, 0.06 * g, 0.43, trim)
    if who.upper == "shirt" and cam.view == "front":
        fig.poly([(-0.035, SHOULDER_Y - 0.01), (0, SHOULDER_Y + 0.02), (-0.01, SHOULDER_Y + 0.035)], trim)
        fig.poly([(0.035, SHOULDER_Y - 0.01), (0, SHOULDER_Y + 0.02), (0.01, SHOULDER_Y + 0.035)], trim)


def _draw_head(fig: _Figure, who: Identity, cam: Camera, skin: RGB) -> None:
    hair = HAIR_COLOURS[who.hair_colour]
    fig.rect(-0.02, 0.115, 0.02, SHOULDER_Y + 0.01, skin)
    fig.ellipse(-0.047, 0.015, 0.047, 0.135, skin)
    if cam.view == "front":
        for sign in (-1, 1):
            fig.ellipse(sign * 0.017 - 0.005, 0.068, sign * 0.017 + 0.005, 0.078, EYE)
        fig.line([(-0.012, 0.106), (0.012, 0.106)], _shade(skin, 0.7), 0.004)
        fig.ellipse(-0.05, 0.008, 0.05, 0.058, hair)
        if who.glasses:
            for sign in (-1, 1):
                fig.rect(sign * 0.017 - 0.014, 0.064, sign * 0.017 + 0.014, 0.082, outline=EYE, width=0.005)
    else:
        fig.ellipse(-0.05, 0.008, 0.05, 0.13, hair)
    if who.hair_length == "long":
        # Hair over the shoulders: framing the face from the front, over the upper back from behind.
        if cam.view == "front":
            for sign in (-1, 1):
                fig.rect(sign * 0.047, 0.03, sign * 0.066, 0.24, hair)
        else:
            fig.poly([(-0.052, 0.06), (0.052, 0.06), (0.066, 0.26), (-0.066, 0.26)], hair)


def _draw_headwear(fig: _Figure, who: Identity, cam: Camera) -> None:
    if who.headwear == "none":
        return
    colour = GARMENT_COLOURS[who.headwear_colour]
    if who.headwear == "cap":
        fig.ellipse(-0.051, 0.0, 0.051, 0.06, colour)
        fig.rect(-0.051, 0.03, 0.051, 0.045, colour)
        if cam.view == "front":
            fig.ellipse(-0.055, 0.038, 0.055, 0.062, _shade(colour, 0.8))
    elif who.headwear == "hat":
        fig.rect(-0.046, -0.012, 0.046, 0.04, colour)
        fig.ellipse(-0.088, 0.028, 0.088, 0.052, _shade(colour, 0.85))
    else:   # beanie
        fig.ellipse(-0.052, -0.01, 0.052, 0.08, colour)
        fig.rect(-0.052, 0.035, 0.052, 0.058, _shade(colour, 0.8))


def _draw_bag(fig: _Figure, who: Identity, cam: Camera, behind: bool) -> None:
    """Side bags hang in front of everything; a backpack covers the back, or shows its straps from the front."""
    if who.bag == "none" or (who.bag == "backpack") != behind:
        return
    g = who.girth
    colour = GARMENT_COLOURS[who.bag_colour]
    if who.bag == "backpack":
        if cam.view == "back":
            fig.poly([(-0.095 * g, 0.17), (0.095 * g, 0.17), (0.1 * g, 0.42), (-0.1 * g, 0.42)], colour)
            fig.rect(-0.06 * g, 0.31, 0.06 * g, 0.4, _shade(colour, 0.8))
            fig.line([(-0.095 * g, 0.24), (0.095 * g, 0.24)], _shade(colour, 0.7), 0.006)
        else:
            for sign in (-1, 1):
                fig.poly([(sign * 0.06, SHOULDER_Y), (sign * 0.085, SHOULDER_Y), (sign * 0.092, 0.36),
                          (sign * 0.072, 0.36)], colour)
        return
    sign = _side_sign(who.bag_side, cam.view)
    if who.bag == "shoulder bag":
        x = sign * 0.14 * g
        fig.line([(-sign * 0.085 * g, SHOULDER_Y + 0.005), (x, 0.4)], _shade(colour, 0.8), 0.012)
        fig.rect(x - 0.048, 0.395, x + 0.048, 0.5, colour)
    else:   # handbag, held low in the hand
        x = sign * 0.165 * g
        fig.line([(x - 0.02, 0.5), (x, 0.465), (x + 0.02, 0.5)], _shade(colour, 0.7), 0.007)
        fig.rect(x - 0.035, 0.5, x + 0.035, 0.57, colour)


def render(who: Identity, cam: Camera, size: Tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The RGB image (size = (H, W)) of `who` under `cam`; `rng` only draws the sensor noise."""
    height, width = size
    image = Image.new("RGB", (width, height), cam.wall)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, int(cam.horizon * height), width, height), fill=cam.ground)
    for (x0, y0, x1, y1), colour in cam.blocks:
        draw.rectangle((x0 * width, y0 * height * cam.horizon, x1 * width, y1 * height * cam.horizon), fill=colour)
    unit = cam.scale * who.height * height
    fig = _Figure(image, width / 2 + cam.shift * width, height * (1 - cam.margin) - unit, unit)
    skin = SKIN_TONES[who.skin]
    _draw_legs(fig, who, cam, skin)
    _draw_upper(fig, who, cam, skin)
    _draw_bag(fig, who, cam, behind=True)   # before the head: long hair falls over a backpack
    _draw_head(fig, who, cam, skin)
    _draw_headwear(fig, who, cam)
    _draw_bag(fig, who, cam, behind=False)
    if cam.occluder is not None:
        (x0, y0, x1, y1), colour = cam.occluder
        draw.rectangle((x0 * width, y0 * height, x1 * width, y1 * height), fill=colour)
    if cam.blur:
        image = image.filter(ImageFilter.GaussianBlur(cam.blur))
    light = cam.brightness * (1 + cam.light_slope * (np.arange(width, dtype=np.float32) / width - 0.5))
    pixels = np.asarray(image, dtype=np.float32) * light[None, :, None] * np.asarray(cam.tint, np.float32)
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * cam.noise
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
