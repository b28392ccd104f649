"""Baked badges (Open Badges 3.0 baking) and badge images, without a server: bake -> extract
round trips for PNG and SVG, refusals of corrupt files and of files carrying two credentials,
the generated badge, and a policy's own image checked as `credential check` checks a policy."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree
from PIL import Image, PngImagePlugin

from assessengine.adapters.baking import (
    MAX_IMAGE_BYTES,
    OB_NS,
    PNG_KEYWORD,
    BadgeImage,
    BakingError,
    bake,
    check_badge_image,
    extract,
)
from assessengine.adapters.policies import (
    badge_image,
    check_policy_file,
    find_policy,
    load_policy,
)
from assessengine.cli import main
from assessengine.core.badge_image import generated_badge_svg

CREDENTIAL: dict[str, Any] = {"id": "urn:uuid:1", "name": "Forklift <operator> & co",
                              "narrative": "a ]]> inside a string"}  # fmt: skip


def png(size: tuple[int, int] = (40, 30), info: PngImagePlugin.PngInfo | None = None) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><!-- kept -->' \
      b'<circle cx="5" cy="5" r="4"/></svg>'  # fmt: skip


@pytest.mark.parametrize("image", [BadgeImage("png", png()), BadgeImage("svg", SVG),
                                   BadgeImage("svg", generated_badge_svg("A", ["X-1"]))])
def test_a_baked_badge_gives_its_credential_back(image: BadgeImage) -> None:
    baked = bake(image, CREDENTIAL)
    assert extract(baked) == (image.kind, CREDENTIAL)
    assert check_badge_image(baked).kind == image.kind  # still an image of the same kind


def test_a_baked_png_has_one_itxt_chunk_with_the_openbadgecredential_keyword() -> None:
    baked = Image.open(io.BytesIO(bake(BadgeImage("png", png()), CREDENTIAL)))
    baked.load()
    assert set(baked.text) == {PNG_KEYWORD}  # type: ignore[attr-defined]
    assert baked.size == (40, 30)


def test_a_baked_svg_has_the_credential_element_first_in_cdata() -> None:
    baked = bake(BadgeImage("svg", SVG), CREDENTIAL)
    assert b'xmlns:openbadges="https://purl.imsglobal.org/ob/v3p0"' in baked
    assert b"<openbadges:credential><![CDATA[{" in baked
    root = etree.fromstring(baked)
    assert root[0].tag == f"{{{OB_NS}}}credential"
    assert root.xpath("//comment()")  # the image itself is kept


def test_baking_again_replaces_the_credential() -> None:
    for kind, data in (("png", png()), ("svg", SVG)):
        once = bake(BadgeImage(kind, data), {"id": "first"})  # type: ignore[arg-type]
        twice = bake(BadgeImage(kind, once), {"id": "second"})  # type: ignore[arg-type]
        assert extract(twice)[1] == {"id": "second"}


def test_a_png_with_two_credentials_is_refused() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEYWORD, '{"id": "a"}')
    info.add_itxt(PNG_KEYWORD, '{"id": "b"}')
    with pytest.raises(BakingError, match="2 openbadgecredential iTXt chunks"):
        extract(png(info=info))


def test_an_svg_with_two_credentials_is_refused() -> None:
    twice = SVG.replace(b"<circle", f'<c:credential xmlns:c="{OB_NS}">{{}}</c:credential>'
                        f'<c:credential xmlns:c="{OB_NS}">{{}}</c:credential><circle'.encode())
    with pytest.raises(BakingError, match="2 openbadges:credential elements"):
        extract(twice)


def _corrupt_idat(data: bytes) -> bytes:
    at = data.index(b"IDAT") + 6
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(("data", "message"), [
    (_corrupt_idat(bake(BadgeImage("png", png()), CREDENTIAL)), "corrupt PNG: chunk 'IDAT' .*CRC"),
    (bake(BadgeImage("png", png()), CREDENTIAL)[:-30], "corrupt PNG: truncated"),
    (png(), "carries no credential"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><openbadges:credential>", "corrupt SVG"),
    (b"<html><body/></html>", "not an SVG"),
    (SVG, "carries no credential"),
    (b"GIF89a....", "not a PNG or SVG"),
    (bake(BadgeImage("svg", SVG), CREDENTIAL).replace(b'{"id"', b'["id"'), "not JSON"),
])  # fmt: skip
def test_a_file_that_is_not_a_usable_baked_badge_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(BakingError, match=message):
        extract(data)


def test_a_png_whose_credential_text_is_compressed_is_read() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEYWORD, '{"id": "zipped"}', zip=True)
    assert extract(png(info=info))[1] == {"id": "zipped"}


def test_entities_in_an_svg_are_never_expanded() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg"><o:credential xmlns:o="' + OB_NS.encode()
            + b'">&b;</o:credential></svg>')  # fmt: skip
    with pytest.raises(BakingError, match="not JSON"):
        extract(bomb)


def test_an_itxt_chunk_that_inflates_past_the_limit_is_refused() -> None:
    text = zlib.compress(b" " * (2**20 + 10))
    body = PNG_KEYWORD.encode() + b"\0\x01\x00\0\0" + text
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body))
    data = png()
    at = data.index(b"IDAT") - 4
    with pytest.raises(BakingError, match="over 1048576 bytes"):
        extract(data[:at] + chunk + data[at:])


# --- images -------------------------------------------------------------------------------


def test_the_generated_badge_is_deterministic_and_names_the_achievement() -> None:
    first = generated_badge_svg("Forklift & <safe> handling", ["MH-101", "MH-102"])
    assert first == generated_badge_svg("Forklift & <safe> handling", ["MH-101", "MH-102"])
    assert first != generated_badge_svg("Haul truck", ["MH-101", "MH-102"])
    root = etree.fromstring(first)
    texts = "".join(root.itertext())
    assert "Forklift &amp;" not in texts
    assert "Forklift & <safe>" in texts
    assert "MH-101 \u00b7 MH-102" in texts
    assert check_badge_image(first).kind == "svg"


def test_a_long_name_and_many_competencies_are_shortened() -> None:
    svg = generated_badge_svg("word " * 40, [f"C-{i}" for i in range(9)]).decode()
    assert svg.count('class="name"') == 3
    assert "\u2026" in svg
    assert "+6" in svg


def test_the_generated_badge_also_comes_as_a_png() -> None:
    policy = load_policy("forklift-operator")
    image = badge_image(policy, "png")
    assert image.kind == "png"
    assert Image.open(io.BytesIO(image.data)).size == (400, 400)
    assert badge_image(policy).kind == "svg"


@pytest.mark.parametrize(("data", "message"), [
    (None, "image file not found: badge.png"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "badge.png: corrupt PNG"),
    (b"x" * (MAX_IMAGE_BYTES + 1), f"at most {MAX_IMAGE_BYTES}"),
    (png((3000, 10)), "3000x10 pixels: at most 2048"),
])  # fmt: skip
def test_a_policy_naming_an_unusable_image_fails_the_check(
    tmp_path: Path, data: bytes | None, message: str
) -> None:
    policy = _policy_with_image(tmp_path, "badge.png")
    if data is not None:
        (tmp_path / "badge.png").write_bytes(data)
    result = check_policy_file(policy)
    assert [p.message for p in result.problems if message in p.message], result.problems
    problem = result.problems[0]
    assert (problem.location.file, problem.location.line) == (str(policy), _image_line(policy))
    answer = CliRunner().invoke(main, ["credential", "check", str(policy)])
    assert answer.exit_code == 2
    assert f"{policy}:{_image_line(policy)}:" in answer.output


def test_a_policy_image_name_with_a_path_is_refused(tmp_path: Path) -> None:
    result = check_policy_file(_policy_with_image(tmp_path, "../secret.png"))
    assert not result.ok
    assert "image" in str(result.problems[0])


def test_a_policy_naming_a_usable_image_passes_and_is_its_badge(tmp_path: Path) -> None:
    policy = _policy_with_image(tmp_path, "badge.png")
    (tmp_path / "badge.png").write_bytes(png())
    result = check_policy_file(policy)
    assert result.ok, result.problems
    assert result.policy is not None
    image = badge_image(result.policy, search=[tmp_path])
    assert image == BadgeImage("png", png())
    with pytest.raises(BakingError, match="no SVG of it"):
        badge_image(result.policy, "svg", search=[tmp_path])


def _policy_with_image(folder: Path, name: str) -> Path:
    text = find_policy("forklift-operator").read_text(encoding="utf-8")
    text = text.replace("achievement:\n", f"achievement:\n  image: {name}\n", 1)
    path = folder / "forklift-operator.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _image_line(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith("image:"))
