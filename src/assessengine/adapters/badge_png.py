"""The generated badge drawn as a PNG (Pillow), for hosts and wallets that take PNG badges only.

Same design as `core.badge_image.generated_badge_svg` (ring in the name's colour, the name,
the competency codes), drawn with Pillow's built-in scalable font, so nothing is fetched and
the same inputs give the same pixels on the same Pillow version.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..core.badge_image import SIZE, badge_colour, codes_line, name_lines


def generated_badge_png(name: str, competencies: Sequence[str] = ()) -> bytes:
    """The generated badge of `name` (competency codes `competencies`) as PNG bytes."""
    picture = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((8, 8, SIZE - 8, SIZE - 8), fill=badge_colour(name))
    draw.ellipse((26, 26, SIZE - 26, SIZE - 26), outline=(255, 255, 255, 220), width=4)
    mid = SIZE // 2
    lines = name_lines(name)
    title = ImageFont.load_default(size=24)
    first = mid - 14 * (len(lines) - 1) - 6
    for i, line in enumerate(lines):
        draw.text((mid, first + 28 * i), line, font=title, fill="white", anchor="ms")
    codes = codes_line(competencies)
    if codes:
        draw.line((mid - 40, SIZE - 140, mid + 40, SIZE - 140), fill=(255, 255, 255, 160), width=2)
        small = ImageFont.load_default(size=16)
        draw.text((mid, SIZE - 92), codes, font=small, fill="white", anchor="ms")
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()
