"""Search results for people to look at: a contact-sheet PNG and a self-contained HTML page (inlined thumbnails).

Both take `results`: a list of (query text, [(rank, path, score), ...]), one entry per query.
"""
from __future__ import annotations

import base64
import functools
import html
import io
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont, ImageOps

Results = Sequence[Tuple[str, Sequence[Tuple[int, str, float]]]]

THUMB = (96, 192)            # width, height: person crops are about twice as tall as wide
TEXT_WIDTH = 220             # query column of the sheet
PAD = 8
BACKGROUND = (255, 255, 255)
TILE = (236, 236, 236)
INK = (20, 20, 20)
MUTED = (110, 110, 110)


@functools.lru_cache(maxsize=1024)
def thumbnail(path: str, size: Tuple[int, int] = THUMB) -> Optional[Image.Image]:
    """The image scaled to fit `size` (up or down, aspect kept, EXIF orientation applied), or None if unreadable."""
    from vpmnet.data.transforms import CorruptImageError, load_image

    try:
        image = load_image(path)
    except CorruptImageError:
        return None
    return ImageOps.contain(image, size, Image.Resampling.BICUBIC)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> List[str]:
    """Greedy word wrap to `width` pixels (a word longer than a line gets its own line)."""
    lines: List[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]


def contact_sheet(results: Results, out: str) -> None:
    """One row per query: the query text, then each result's thumbnail with its rank and score under it."""
    font, small = _font(14), _font(12)
    label_height = 18
    columns = max((len(hits) for _, hits in results), default=0)
    cell_w, cell_h = THUMB[0] + PAD, THUMB[1] + label_height + PAD
    sheet = Image.new("RGB", (PAD + TEXT_WIDTH + columns * cell_w + PAD, PAD + len(results) * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for row, (query, hits) in enumerate(results):
        top = PAD + row * cell_h
        lines = _wrap(draw, query, font, TEXT_WIDTH - PAD)
        max_lines = THUMB[1] // 18
        if len(lines) > max_lines:
            lines = lines[:max_lines - 1] + [lines[max_lines - 1] + " ..."]
        draw.multiline_text((PAD, top), "\n".join(lines), font=font, fill=INK, spacing=4)
        for column, (rank, path, score) in enumerate(hits):
            left = PAD + TEXT_WIDTH + column * cell_w
            draw.rectangle((left, top, left + THUMB[0] - 1, top + THUMB[1] - 1), fill=TILE)
            image = thumbnail(path)
            if image is None:
                draw.text((left + 6, top + THUMB[1] // 2 - 8), "unreadable", font=small, fill=MUTED)
            else:
                sheet.paste(image, (left + (THUMB[0] - image.width) // 2, top + (THUMB[1] - image.height) // 2))
            draw.text((left, top + THUMB[1] + 2), f"#{rank}  {score:.3f}", font=small, fill=INK)
    sheet.save(out, format="PNG")


@functools.lru_cache(maxsize=1024)
def _data_uri(path: str) -> Optional[str]:
    image = thumbnail(path)
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vpmnet search</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #141414; }}
section {{ margin-bottom: 2em; }}
h2 {{ font-size: 1.05em; font-weight: 600; }}
.hits {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; width: {width}px; font-size: 12px; }}
figure img, figure .missing {{ width: {width}px; height: {height}px; object-fit: contain; background: #ececec;
  display: flex; align-items: center; justify-content: center; color: #6e6e6e; }}
figcaption {{ overflow-wrap: anywhere; }}
</style></head><body>
<h1>vpmnet search</h1>
{sections}
</body></html>
"""


def html_page(results: Results, out: str) -> None:
    """A page with one section per query; every thumbnail is an inlined base64 JPEG, so the file stands alone."""
    sections = []
    for query, hits in results:
        figures = []
        for rank, path, score in hits:
            uri = _data_uri(path)
            picture = f'<img src="{uri}" alt="rank {rank}">' if uri else '<div class="missing">unreadable</div>'
            figures.append(f'<figure title="{html.escape(path)}">{picture}<figcaption><b>#{rank}</b> {score:.3f}<br>'
                           f'{html.escape(path)}</figcaption></figure>')
        sections.append(f'<section><h2>{html.escape(query)}</h2><div class="hits">{"".join(figures)}</div></section>')
    with open(out, "w", encoding="utf-8") as f:
        f.write(PAGE.format(width=THUMB[0], height=THUMB[1], sections="\n".join(sections)))
