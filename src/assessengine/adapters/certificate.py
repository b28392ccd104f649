"""One-page PDF certificates (ReportLab), with a QR code (segno) to the credential's public page.

`render_certificate(facts, public_url=...)` draws an A4 landscape page: the achievement type,
the learner's name, the achievement and its description, the competencies, the award and
expiry dates, the issuer, and a QR code whose text is `public_url` (printed beside it too, with
the credential id), so anyone holding the paper can reach the live verification. The PDF is
made with ReportLab's ``invariant`` mode: the same facts and URL give the same bytes.
"""

from __future__ import annotations

import io
from typing import Final

import segno
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph

from ..core.certificate_facts import CertificateFacts
from ..core.credentials import CredentialError

MAX_COMPETENCIES: Final = 8
"""Competencies listed on the page; "and N more" for the rest."""
QR_SIZE: Final = 42 * mm
_INK: Final = colors.HexColor("#1f2933")
_MUTED: Final = colors.HexColor("#52606d")
_ACCENT: Final = colors.HexColor("#2458a6")


def render_certificate(facts: CertificateFacts, *, public_url: str) -> bytes:
    """The certificate of `facts` as PDF bytes, its QR code pointing at `public_url` (an
    http(s) URL; CredentialError otherwise)."""
    if not public_url.startswith(("https://", "http://")):
        raise CredentialError(f"the certificate's link must be an http(s) URL: {public_url!r}")
    out = io.BytesIO()
    width, height = landscape(A4)
    page = Canvas(out, pagesize=(width, height), invariant=1, pageCompression=1)
    page.setTitle(f"{facts.achievement} - {facts.learner}")
    page.setAuthor(facts.issuer)
    page.setSubject(f"Certificate for credential {facts.credential_id}")
    _frame(page, width, height)
    _body(page, facts, width, height)
    _qr(page, public_url, width)
    page.showPage()
    page.save()
    return out.getvalue()


def _frame(page: Canvas, width: float, height: float) -> None:
    page.setStrokeColor(_ACCENT)
    page.setLineWidth(3)
    page.rect(12 * mm, 12 * mm, width - 24 * mm, height - 24 * mm)
    page.setLineWidth(0.8)
    page.rect(15 * mm, 15 * mm, width - 30 * mm, height - 30 * mm)


def _body(page: Canvas, facts: CertificateFacts, width: float, height: float) -> None:
    mid = width / 2
    y = height - 38 * mm
    page.setFillColor(_ACCENT)
    page.setFont("Helvetica-Bold", 13)
    page.drawCentredString(mid, y, _spaced(facts.achievement_type).upper())
    page.setFillColor(_MUTED)
    page.setFont("Helvetica", 12)
    page.drawCentredString(mid, y - 12 * mm, "This certifies that")
    page.setFillColor(_INK)
    page.setFont("Helvetica-Bold", 28)
    page.drawCentredString(mid, y - 25 * mm, facts.learner)
    page.setFillColor(_MUTED)
    page.setFont("Helvetica", 12)
    page.drawCentredString(mid, y - 35 * mm, "has achieved")
    text_width = width - 120 * mm
    y = _paragraph(page, facts.achievement, 60 * mm, y - 40 * mm, text_width,
                   ParagraphStyle("name", fontName="Helvetica-Bold", fontSize=18, leading=22,
                                  alignment=1, textColor=_INK))  # fmt: skip
    y = _paragraph(page, facts.description, 60 * mm, y - 3 * mm, text_width,
                   ParagraphStyle("desc", fontName="Helvetica", fontSize=10, leading=13,
                                  alignment=1, textColor=_MUTED))  # fmt: skip
    if facts.competencies:
        listed = [f"<b>{_xml(code)}</b> {_xml(name)}" if code else _xml(name)
                  for code, name in facts.competencies[:MAX_COMPETENCIES]]  # fmt: skip
        more = len(facts.competencies) - MAX_COMPETENCIES
        if more > 0:
            listed.append(f"and {more} more")
        _paragraph(page, "Competencies: " + " &middot; ".join(listed), 60 * mm, y - 4 * mm,
                   text_width, ParagraphStyle("comp", fontName="Helvetica", fontSize=10,
                                              leading=13, alignment=1, textColor=_INK),
                   escape=False)  # fmt: skip
    _footer(page, facts)


def _footer(page: Canvas, facts: CertificateFacts) -> None:
    x = 25 * mm
    page.setFillColor(_INK)
    page.setFont("Helvetica-Bold", 11)
    page.drawString(x, 44 * mm, f"Issued by {facts.issuer}")
    page.setFont("Helvetica", 10)
    page.drawString(x, 38 * mm, f"Awarded {facts.awarded}")
    until = f"Valid until {facts.valid_until}" if facts.valid_until else "Does not expire"
    page.drawString(x, 32 * mm, until)
    page.setFillColor(_MUTED)
    page.setFont("Helvetica", 7.5)
    page.drawString(x, 22 * mm, f"Credential {facts.credential_id}")


def _qr(page: Canvas, url: str, width: float) -> None:
    picture = io.BytesIO()
    segno.make(url, error="m", micro=False).save(picture, kind="png", scale=10, border=4)
    picture.seek(0)
    x = width - 25 * mm - QR_SIZE
    page.drawImage(ImageReader(picture), x, 26 * mm, QR_SIZE, QR_SIZE)
    page.setFillColor(_MUTED)
    page.setFont("Helvetica", 7.5)
    page.drawRightString(width - 25 * mm, 22 * mm, "Scan to verify this credential online")
    page.setFont("Helvetica", 6.5)
    page.drawRightString(width - 25 * mm, 18.5 * mm, url if len(url) <= 90 else url[:87] + "...")


def _paragraph(page: Canvas, text: str, x: float, top: float, width: float,
               style: ParagraphStyle, *, escape: bool = True) -> float:  # fmt: skip
    """Draw wrapped `text` with its top at `top`; the y of its bottom."""
    paragraph = Paragraph(_xml(text) if escape else text, style)
    _, height = paragraph.wrap(width, 1000)
    paragraph.drawOn(page, x, top - height)
    return top - height


def _spaced(camel: str) -> str:
    """``MicroCredential`` -> ``Micro Credential``."""
    return "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(camel))


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
