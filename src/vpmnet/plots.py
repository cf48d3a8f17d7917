"""Training curves as a PNG (loss terms per step, evaluation R1 per epoch), drawn with Pillow."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence, Tuple

from PIL import Image, ImageDraw

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _panel(draw: ImageDraw.ImageDraw, box: Tuple[int, int, int, int], title: str,
           series: Dict[str, List[Tuple[float, float]]], xlabel: str) -> None:
    left, top, right, bottom = box
    draw.text((left, top - 18), title, fill="black")
    draw.rectangle(box, outline="black")
    points = [p for s in series.values() for p in s]
    if not points:
        draw.text((left + 10, top + 10), "no data", fill="gray")
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x, y):
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        py = to_px(x0, y)[1]
        draw.line([(left - 4, py), (left, py)], fill="black")
        draw.text((left - 52, py - 6), f"{y:.3g}", fill="black")
    draw.text((left, bottom + 4), f"{x0:g}", fill="black")
    draw.text((right - 40, bottom + 4), f"{x1:g} {xlabel}", fill="black")
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(pts)
        if len(pts) == 1:
            x, y = to_px(*pts[0])
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        else:
            draw.line([to_px(x, y) for x, y in pts], fill=colour, width=2)
        draw.text((right - 110, top + 6 + 14 * i), name, fill=colour)


def plot_training(log_path: str, out_path: str, terms: Sequence[str] = ()) -> str:
    """Draw the loss terms and evaluation metrics found in a JSONL training log into `out_path`."""
    losses: Dict[str, List[Tuple[float, float]]] = {}
    evals: Dict[str, List[Tuple[float, float]]] = {}
    if os.path.exists(log_path):
        with open(log_path, encoding="utf-8") as f:
            for line in f:
                entry = json.loads(line)
                if "eval" in entry:
                    for key in ("R1", "mAP"):
                        evals.setdefault(f"{entry['eval']} {key}", []).append((entry["epoch"], entry[key]))
                elif "loss" in entry:
                    for key, value in entry.items():
                        if key not in ("step", "epoch", "lr", "samples_per_s") and (not terms or key in terms):
                            losses.setdefault(key, []).append((entry["step"], value))
    image = Image.new("RGB", (1000, 420), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, (70, 40, 480, 380), "training loss", losses, "step")
    _panel(draw, (580, 40, 980, 380), "evaluation (%)", evals, "epoch")
    image.save(out_path)
    return out_path
