"""A clean, generated badge image (SVG) for a policy that names none. Pure: text in, bytes out.

`generated_badge_svg(name, competencies)` draws a round medal: a ring in a colour derived from
the achievement's name, the name itself (wrapped on up to three lines) and the competency codes
along the bottom. The same inputs always give the same bytes (no clock, no randomness, no
fonts to fetch: the text uses the generic ``sans-serif`` family), so a badge re-downloaded
later is identical and the image can be cached by its content.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape

SVG_NS: Final = "http://www.w3.org/2000/svg"
SIZE: Final = 400
MAX_NAME_LINES: Final = 3
NAME_LINE_CHARS: Final = 20
MAX_CODES: Final = 3


def badge_colour(name: str) -> str:
    """A dark, saturated ``#rrggbb`` chosen by the name's sha256 (white text stays legible)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    hue = digest[0] * 360 // 256
    return _hsl_hex(hue, 0.55, 0.32)


def generated_badge_svg(name: str, competencies: Sequence[str] = ()) -> bytes:
    """The badge of an achievement named `name` whose competencies have these codes (the first
    `MAX_CODES` are shown, "+N" for the rest): a UTF-8 SVG document, `SIZE` px square."""
    colour = badge_colour(name)
    lines = name_lines(name)
    mid = SIZE // 2
    first = mid - 14 * (len(lines) - 1) - 6
    text = "\n".join(
        f'  <text x="{mid}" y="{first + 28 * i}" class="name">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    codes = codes_line(competencies)
    code_text = (
        f'  <text x="{mid}" y="{SIZE - 92}" class="codes">{escape(codes)}</text>\n'
        if codes
        else ""
    )
    svg = (
        f'<svg xmlns="{SVG_NS}" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}"'
        f' role="img" aria-label="{escape(name, {chr(34): "&quot;"})}">\n'
        f"  <title>{escape(name)}</title>\n"
        "  <style>text{font-family:sans-serif;text-anchor:middle;fill:#ffffff}"
        ".name{font-size:24px;font-weight:bold}.codes{font-size:16px;letter-spacing:1px}"
        "</style>\n"
        f'  <circle cx="{mid}" cy="{mid}" r="{mid - 8}" fill="{colour}"/>\n'
        f'  <circle cx="{mid}" cy="{mid}" r="{mid - 26}" fill="none" stroke="#ffffff"'
        ' stroke-width="4" stroke-opacity="0.85"/>\n'
        f'  <path d="M{mid - 40} {SIZE - 140} h80" stroke="#ffffff" stroke-width="2"'
        ' stroke-opacity="0.6"/>\n'
        f"{text}\n{code_text}</svg>\n"
    )
    return svg.encode("utf-8")


def name_lines(name: str) -> list[str]:
    """The name wrapped to at most `MAX_NAME_LINES` of `NAME_LINE_CHARS` (an ellipsis ends a
    longer one)."""
    lines = textwrap.wrap(" ".join(name.split()), NAME_LINE_CHARS, break_long_words=True)
    if len(lines) > MAX_NAME_LINES:
        lines = lines[:MAX_NAME_LINES]
        lines[-1] = lines[-1][: NAME_LINE_CHARS - 1].rstrip() + "\u2026"
    return lines or ["Badge"]


def codes_line(codes: Sequence[str]) -> str:
    """The first `MAX_CODES` codes, and "+N" for the others."""
    shown = " \u00b7 ".join(codes[:MAX_CODES])
    more = len(codes) - MAX_CODES
    return f"{shown} +{more}" if more > 0 else shown


def _hsl_hex(hue: int, saturation: float, lightness: float) -> str:
    chroma = (1 - abs(2 * lightness - 1)) * saturation
    x = chroma * (1 - abs((hue / 60) % 2 - 1))
    m = lightness - chroma / 2
    sector = hue // 60
    r, g, b = [
        (chroma, x, 0.0), (x, chroma, 0.0), (0.0, chroma, x),
        (0.0, x, chroma), (x, 0.0, chroma), (chroma, 0.0, x),
    ][sector % 6]  # fmt: skip
    return "#" + "".join(f"{round((v + m) * 255):02x}" for v in (r, g, b))
