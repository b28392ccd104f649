"""Baked badges: a signed credential carried inside its badge image (Open Badges 3.0, "Baking").

- **PNG**: one ``iTXt`` chunk with the keyword ``openbadgecredential`` whose text is the signed
  credential (its JSON; compression flag 0, no language tag). Written by Pillow
  (`PngInfo.add_itxt`), which re-encodes the image and keeps no other text chunk of it (so a
  template that was itself baked loses its old credential).
- **SVG**: one ``<openbadges:credential>`` element (``xmlns:openbadges=
  "https://purl.imsglobal.org/ob/v3p0"``, declared on the root) as the first child of the
  ``<svg>`` element, the credential's JSON in a CDATA section. Parsed and written with lxml;
  entities are never expanded, nothing is fetched.

`bake(image, credential)` and `extract(data)` are the two directions; `check_badge_image`
is what a policy's image must pass (a PNG or SVG that decodes, at most `MAX_IMAGE_BYTES`,
at most `MAX_PIXELS` a side). Every refusal is a `BakingError` whose message says what is
wrong ("two openbadgecredential iTXt chunks", "PNG chunk IDAT at byte 33: CRC mismatch", ...).

The PNG reader walks the chunks itself (length, type, CRC per the PNG specification, 15 lines)
because Pillow keeps only the last text chunk of a keyword, and a file carrying two credentials
must be refused, not silently read as one of them; Pillow still checks the image itself.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from lxml import etree
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..core.credentials import CredentialError

ImageKind = Literal["png", "svg"]
MEDIA_TYPES: Final[Mapping[ImageKind, str]] = {"png": "image/png", "svg": "image/svg+xml"}

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
PNG_KEYWORD: Final = "openbadgecredential"
SVG_NS: Final = "http://www.w3.org/2000/svg"
OB_NS: Final = "https://purl.imsglobal.org/ob/v3p0"
_CREDENTIAL_TAG: Final = f"{{{OB_NS}}}credential"

MAX_IMAGE_BYTES: Final = 512 * 1024
"""The largest badge image a policy may name."""
MAX_PIXELS: Final = 2048
"""The widest and tallest badge image a policy may name (PNG), in pixels."""
MAX_BAKED_BYTES: Final = 4 * 2**20
"""The largest baked file read back (an image of at most `MAX_IMAGE_BYTES` plus a credential)."""
MAX_CREDENTIAL_TEXT: Final = 2**20
"""The largest credential text taken out of a baked file (as `POST /credentials/verify`)."""


class BakingError(CredentialError):
    """An image cannot be baked, or a baked file cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class BadgeImage:
    """A badge image: its bytes and whether it is a PNG or an SVG."""

    kind: ImageKind
    data: bytes

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]


# ==================================================================================== kinds


def image_kind(data: bytes) -> ImageKind | None:
    """``png`` for the PNG signature, ``svg`` for XML text (a BOM, blanks, then ``<``), else
    None. Says nothing about whether the rest is well formed."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"<"):
        return "svg"
    return None


def check_badge_image(data: bytes) -> BadgeImage:
    """`data` as a badge image a policy may use; `BakingError` when it is too large, neither
    PNG nor SVG, corrupt, or wider or taller than `MAX_PIXELS`."""
    if len(data) > MAX_IMAGE_BYTES:
        raise BakingError(f"the image is {len(data)} bytes: at most {MAX_IMAGE_BYTES} allowed")
    kind = image_kind(data)
    if kind == "png":
        _open_png(data, decode=True)
    elif kind == "svg":
        _parse_svg(data)
    else:
        raise BakingError("not a PNG or SVG image")
    return BadgeImage(kind, data)


# ==================================================================================== bake


def bake(image: BadgeImage, credential: Mapping[str, Any]) -> bytes:
    """`image` with `credential` (the signed document) baked in, as the same kind of image."""
    text = credential_text(credential)
    return _bake_png(image.data, text) if image.kind == "png" else _bake_svg(image.data, text)


def credential_text(credential: Mapping[str, Any]) -> str:
    """The JSON that is baked: compact, UTF-8, with ``]]>`` written ``]]\\u003e`` (the same
    JSON value; such text can only sit inside a JSON string) so that it fits a CDATA
    section."""
    text = json.dumps(credential, ensure_ascii=False, separators=(",", ":"))
    return text.replace("]]>", "]]\\u003e")


def _bake_png(data: bytes, text: str) -> bytes:
    picture = _open_png(data, decode=True)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEYWORD, text, zip=False)
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _bake_svg(data: bytes, text: str) -> bytes:
    old = _parse_svg(data)
    for element in list(old.iter(_CREDENTIAL_TAG)):
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    nsmap = {prefix: uri for prefix, uri in old.nsmap.items() if uri != OB_NS}
    root = etree.Element(old.tag, attrib=dict(old.attrib), nsmap={**nsmap, "openbadges": OB_NS})
    root.text = old.text
    root.extend(list(old))
    credential = etree.Element(_CREDENTIAL_TAG)
    credential.text = etree.CDATA(text)
    credential.tail = "\n"
    root.insert(0, credential)
    baked: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return baked


# ==================================================================================== extract


def extract(data: bytes) -> tuple[ImageKind, dict[str, Any]]:
    """The credential baked into a PNG or SVG badge, as a JSON object.

    `BakingError` when the file is larger than `MAX_BAKED_BYTES`, is not a well-formed PNG or
    SVG, carries no credential or two, or carries something that is not a JSON object (a
    ``JWT-compact`` credential is refused by name: the engine issues JSON with an embedded
    proof)."""
    if len(data) > MAX_BAKED_BYTES:
        raise BakingError(f"the file is {len(data)} bytes: a baked badge is at most "
                          f"{MAX_BAKED_BYTES}")  # fmt: skip
    kind = image_kind(data)
    if kind == "png":
        text = _png_credential(data)
    elif kind == "svg":
        text = _svg_credential(data)
    else:
        raise BakingError("not a PNG or SVG badge (nor JSON)")
    return kind, _json_object(text, kind)


def _png_credential(data: bytes) -> str:
    texts = [_itxt_text(body) for kind, body in _png_chunks(data) if kind == b"iTXt"
             and body.split(b"\0", 1)[0] == PNG_KEYWORD.encode()]  # fmt: skip
    _open_png(data, decode=False)
    if not texts:
        raise BakingError(f"the PNG carries no credential (no {PNG_KEYWORD} iTXt chunk)")
    if len(texts) > 1:
        raise BakingError(f"the PNG carries {len(texts)} {PNG_KEYWORD} iTXt chunks: a baked "
                          "badge carries exactly one credential")  # fmt: skip
    return texts[0]


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of each chunk up to IEND; BakingError for a truncated file or a bad CRC."""
    if not data.startswith(PNG_SIGNATURE):
        raise BakingError("not a PNG (no PNG signature)")
    at = len(PNG_SIGNATURE)
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 12 + length
        if end > len(data):
            break
        body = data[at + 8 : end - 4]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4 : end])[0]:
            name = kind.decode("latin-1")
            raise BakingError(f"corrupt PNG: chunk {name!r} at byte {at}: CRC mismatch")
        yield kind, body
        if kind == b"IEND":
            return
        at = end
    raise BakingError(f"corrupt PNG: truncated at byte {at} (no IEND chunk)")


def _itxt_text(body: bytes) -> str:
    """The text of an iTXt chunk (keyword, flags, language, translated keyword, text)."""
    try:
        _, rest = body.split(b"\0", 1)
        compressed, method, rest = rest[0], rest[1], rest[2:]
        _, _, text = rest.split(b"\0", 2)
        if compressed:
            if method != 0:
                raise BakingError("corrupt PNG: unknown iTXt compression method")
            inflater = zlib.decompressobj()
            text = inflater.decompress(text, MAX_CREDENTIAL_TEXT + 1)
            if len(text) > MAX_CREDENTIAL_TEXT or inflater.unconsumed_tail:
                raise BakingError(f"the baked credential is over {MAX_CREDENTIAL_TEXT} bytes")
        return text.decode("utf-8")
    except (ValueError, IndexError, zlib.error) as error:
        raise BakingError(f"corrupt PNG: unreadable {PNG_KEYWORD} iTXt chunk ({error})") from None


def _svg_credential(data: bytes) -> str:
    root = _parse_svg(data)
    found = list(root.iter(_CREDENTIAL_TAG))
    if not found:
        raise BakingError("the SVG carries no credential (no openbadges:credential element)")
    if len(found) > 1:
        raise BakingError(f"the SVG carries {len(found)} openbadges:credential elements: a "
                          "baked badge carries exactly one credential")  # fmt: skip
    if found[0].get("verify") == "JWT-compact":
        raise BakingError("the SVG carries a JWT-compact credential; only credentials with an "
                          "embedded proof (JSON) are read here")  # fmt: skip
    return found[0].text or ""


def _json_object(text: str, kind: ImageKind) -> dict[str, Any]:
    if len(text.encode("utf-8")) > MAX_CREDENTIAL_TEXT:
        raise BakingError(f"the baked credential is over {MAX_CREDENTIAL_TEXT} bytes")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise BakingError(f"the credential baked into the {kind.upper()} is not JSON "
                          f"({error})") from None  # fmt: skip
    if not isinstance(document, dict):
        raise BakingError(f"the credential baked into the {kind.upper()} is not a JSON object")
    return document


# ==================================================================================== parsing


def _open_png(data: bytes, *, decode: bool) -> Image.Image:
    """The PNG, its header checked (size within `MAX_PIXELS` when decoding) and, with
    `decode`, its pixels loaded; otherwise its structure verified without decoding."""
    try:
        picture = Image.open(io.BytesIO(data), formats=["PNG"])
        width, height = picture.size
        if decode and max(width, height) > MAX_PIXELS:
            raise BakingError(f"the PNG is {width}x{height} pixels: at most {MAX_PIXELS} a side")
        if decode:
            picture.load()
        else:
            picture.verify()
    except BakingError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as error:
        raise BakingError(f"corrupt PNG ({error})") from None
    except Image.DecompressionBombError:
        raise BakingError("the PNG is too large to decode") from None
    return picture


def _parse_svg(data: bytes) -> Any:
    """The root element of an SVG document (no entity expansion, no DTD, no network);
    BakingError when it is not well-formed XML or its root is not ``<svg>``."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=False)  # fmt: skip
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as error:
        raise BakingError(f"corrupt SVG: not well-formed XML ({error})") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise BakingError(f"not an SVG: the root element is {root.tag!r}, not <svg> in the SVG "
                          "namespace")  # fmt: skip
    return root
