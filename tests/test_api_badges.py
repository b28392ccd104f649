"""Issued credentials that travel, over HTTP and from the CLI, on a real SQLite file: the hashed
recipient email and the other Open Badges 3.0 fields; the badge image; baked PNG and SVG
badges that verify, with the engine's verifier and with Digital Bazaar's (and fail once
tampered with); refusals of corrupt files; the PDF certificate read back with pypdf and its QR
code decoded with zxing-cpp."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image
from pypdf import PdfReader

from assessengine.adapters.baking import BadgeImage, bake, extract
from assessengine.adapters.standards import schema_problems
from assessengine.cli import main
from assessengine.core.credentials import OB_SCHEMA_URL
from assessengine.credential_verify import verify
from assessengine.storage.credentials import SqlCredentialStore
from assessengine.storage.sqlite import SqliteStore

from .independent_verify import independent_verification
from .test_api_credentials import API, BASE, POLICY, Http, open_http, record_template
from .test_api_support import LEARNER, OTHER_LEARNER
from .test_web_support import csrf_of

EMAIL = "Dana.Reyes@Example.org"
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("badges") / "engine.db"
    with SqliteStore(path, synchronous="OFF") as store:
        record_template(store)
    return path


@pytest.fixture(scope="module")
def issued(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Http, dict[str, Any]]]:  # fmt: skip
    """The learner's credential, issued with their email, and the server that issued it."""
    for http in open_http(template, tmp_path_factory.mktemp("issued")):
        http.observe_all()
        answer = http.post(f"{API}/credentials/issue",
                           {"learner": LEARNER, "policy": POLICY, "email": EMAIL}, "assessor")
        assert answer.status_code == 201, answer.text
        yield http, answer.json()


def _url(credential: dict[str, Any], tail: str, learner: str = LEARNER) -> str:
    return (f"{API}/learners/{quote(learner, safe='')}/credentials/"
            f"{quote(credential['id'], safe='')}/{tail}")  # fmt: skip


# --- the document ---------------------------------------------------------------------------


def test_the_recipient_is_identified_by_the_salted_hash_of_their_email(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    _, credential = issued
    (identity,) = credential["credentialSubject"]["identifier"]
    assert identity["type"] == "IdentityObject"
    assert identity["hashed"] is True
    assert identity["identityType"] == "emailAddress"
    salt = identity["salt"]
    assert len(salt) == 32
    expected = hashlib.sha256(("dana.reyes@example.org" + salt).encode()).hexdigest()
    assert identity["identityHash"] == f"sha256${expected}"
    assert "dana.reyes" not in json.dumps(credential).lower()  # only its hash


def test_the_credential_carries_its_schema_award_date_and_description(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    _, credential = issued
    assert credential["credentialSchema"] == [
        {"id": OB_SCHEMA_URL, "type": "1EdTechJsonSchemaValidator2019"}]
    assert credential["awardedDate"] == credential["validFrom"]
    achievement = credential["credentialSubject"]["achievement"]
    assert credential["description"] == achievement["description"]
    assert achievement["image"] == {"id": f"{BASE}{API}/achievements/{POLICY}/image",
                                    "type": "Image", "caption": achievement["name"]}
    assert not schema_problems(credential)
    result = verify(credential, trusted={credential["issuer"]["id"]})
    assert result.ok, result.to_data()
    assert result.check("expansion").ok  # the extensions context defines the schema's type
    assert independent_verification(credential) == {"verified": True, "error": None}


def test_an_issue_request_with_a_malformed_email_is_refused(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, _ = issued
    answer = http.post(f"{API}/credentials/issue",
                       {"learner": OTHER_LEARNER, "policy": POLICY, "email": "not-an-address"},
                       "assessor")  # fmt: skip
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["name"] == "body.email"


# --- images and baked badges ----------------------------------------------------------------


def test_the_achievement_image_is_public_in_both_kinds(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, credential = issued
    url = credential["credentialSubject"]["achievement"]["image"]["id"].removeprefix(BASE)
    svg = http.get(url, None)
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert b"Counterbalance forklift" in svg.content
    png = http.get(f"{url}.png", None)
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    assert http.get(f"{API}/achievements/no-such-policy/image", None).status_code == 404
    described = http.client.get(f"{API}/achievements/{POLICY}",
                                headers={"Accept": "application/json"})  # fmt: skip
    assert described.json()["image"] == credential["credentialSubject"]["achievement"]["image"]


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_a_baked_badge_carries_the_signed_credential_and_verifies(
    issued: tuple[Http, dict[str, Any]], kind: str,
) -> None:
    http, credential = issued
    answer = http.get(_url(credential, f"badge.{kind}"), "learner")
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    assert extract(answer.content) == (kind, credential)
    media = "image/png" if kind == "png" else "image/svg+xml"
    checked = http.client.post(f"{API}/credentials/verify", content=answer.content,
                               headers={"Content-Type": media}).json()  # fmt: skip
    assert checked["valid"] is True, checked
    independent = independent_verification(extract(answer.content)[1])
    assert independent == {"verified": True, "error": None}


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_a_tampered_baked_badge_fails_verification(
    issued: tuple[Http, dict[str, Any]], kind: str, tmp_path: Path,
) -> None:
    http, credential = issued
    baked = http.get(_url(credential, f"badge.{kind}"), "learner").content
    forged = json.loads(json.dumps(extract(baked)[1]))
    forged["credentialSubject"]["achievement"]["name"] += " (senior)"
    rebaked = bake(_image_of(baked, kind), forged)
    media = "image/png" if kind == "png" else "image/svg+xml"
    checked = http.client.post(f"{API}/credentials/verify", content=rebaked,
                               headers={"Content-Type": media}).json()  # fmt: skip
    assert checked["valid"] is False
    assert checked["signature"] == "failed"
    assert independent_verification(extract(rebaked)[1])["verified"] is False
    path = tmp_path / f"forged.{kind}"
    path.write_bytes(rebaked)
    answer = CliRunner().invoke(main, ["credential", "verify", str(path), "--db", str(http.db),
                                       "--base-url", BASE])  # fmt: skip
    assert answer.exit_code == 1
    assert "FAILED   signature" in answer.output


def _image_of(baked: bytes, kind: str) -> BadgeImage:
    return BadgeImage("png" if kind == "png" else "svg", baked)


@pytest.mark.parametrize(("body", "media", "message"), [
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR broken", "image/png", "corrupt PNG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'>", "image/svg+xml", "corrupt SVG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "carries no credential"),
])  # fmt: skip
def test_verifying_a_corrupt_badge_is_a_422_naming_the_problem(
    issued: tuple[Http, dict[str, Any]], body: bytes, media: str, message: str,
) -> None:
    http, _ = issued
    answer = http.client.post(f"{API}/credentials/verify", content=body,
                              headers={"Content-Type": media})  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["detail"]


def test_a_baked_badge_over_the_limit_is_a_413(issued: tuple[Http, dict[str, Any]]) -> None:
    http, _ = issued
    answer = http.client.post(f"{API}/credentials/verify", content=b"\x89PNG" + b"\0" * 2**22,
                              headers={"Content-Type": "image/png"})  # fmt: skip
    assert answer.status_code == 413


def test_badges_and_certificates_follow_the_credential_access_rules(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, credential = issued
    for tail in ("badge.png", "certificate.pdf"):
        assert http.get(_url(credential, tail), None).status_code == 401
        assert http.get(_url(credential, tail, OTHER_LEARNER), "admin").status_code == 404
    assert http.get(_url(credential, "badge.gif"), "learner").status_code == 422


# --- certificates ---------------------------------------------------------------------------


def _read_certificate(pdf: bytes) -> tuple[str, list[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    codes = [b.text for image in page.images
             for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(image.data)))]  # fmt: skip
    return " ".join(page.extract_text().split()), codes


def test_the_certificate_shows_the_credential_and_a_qr_code_to_its_page(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, credential = issued
    answer = http.get(_url(credential, "certificate.pdf") + "?name=Dana%20Reyes", "learner")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    text, codes = _read_certificate(answer.content)
    achievement = credential["credentialSubject"]["achievement"]
    for expected in ("Dana Reyes", achievement["name"], "Issued by assessengine",
                     f"Awarded {credential['validFrom'][:10]}",
                     f"Valid until {credential['validUntil'][:10]}", credential["id"],
                     *(a["targetCode"] for a in achievement["alignment"])):  # fmt: skip
        assert expected in text, expected
    (link,) = codes
    assert link.startswith(f"{BASE}/public/credentials/")  # the public page: no sign-in
    public_id = link.removeprefix(f"{BASE}/public/credentials/")
    store = SqlCredentialStore(http.db)
    try:
        shared = store.shared(public_id)
    finally:
        store.close()
    assert shared is not None
    assert shared.id == credential["id"]


def test_the_cli_writes_the_badge_and_the_certificate(
    issued: tuple[Http, dict[str, Any]], tmp_path: Path,
) -> None:
    http, credential = issued
    common = ["--db", str(http.db), "--id", credential["id"], "--base-url", BASE]
    out = tmp_path / "badge.png"
    assert CliRunner().invoke(main, ["credential", "badge", *common, "--out", str(out)],
                              catch_exceptions=False).exit_code == 0  # fmt: skip
    checked = CliRunner().invoke(main, ["credential", "verify", str(out), "--db", str(http.db),
                                        "--base-url", BASE])  # fmt: skip
    assert checked.exit_code == 0, checked.output
    assert "the credential baked into this PNG" in checked.output
    pdf = tmp_path / "certificate.pdf"
    answer = CliRunner().invoke(main, ["credential", "certificate", *common, "--out", str(pdf),
                                       "--name", "Dana Reyes", "--public-url",
                                       "https://engine.example.org/c/abc"])  # fmt: skip
    assert answer.exit_code == 0, answer.output
    text, codes = _read_certificate(pdf.read_bytes())
    assert "Dana Reyes" in text
    assert codes == ["https://engine.example.org/c/abc"]
    if os.environ.get("ASSESSENGINE_SCREENSHOTS") == "1":
        _screenshot(pdf)


def _screenshot(pdf: Path) -> None:
    """docs/certificate.png: the certificate's page, rendered by pdftoppm (poppler-utils)."""
    tool = shutil.which("pdftoppm")
    assert tool is not None, "ASSESSENGINE_SCREENSHOTS=1 needs pdftoppm (poppler-utils)"
    target = DOCS / "certificate"
    subprocess.run([tool, "-png", "-r", "80", "-singlefile", str(pdf), str(target)],
                   check=True, timeout=60)  # fmt: skip
    with Image.open(f"{target}.png") as shot:
        assert shot.size[0] > 800


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "x.gif"], "--format png|svg"),
    (["--out", "x.png", "--id", "urn:uuid:00000000-0000-0000-0000-000000000000"], "refused"),
])  # fmt: skip
def test_the_cli_refuses_a_bad_badge_request(
    issued: tuple[Http, dict[str, Any]], tmp_path: Path, args: list[str], message: str,
) -> None:
    http, credential = issued
    ids = [] if "--id" in args else ["--id", credential["id"]]
    answer = CliRunner().invoke(main, ["credential", "badge", "--db", str(http.db), *ids,
                                       *[str(tmp_path / a) if a.startswith("x.") else a
                                         for a in args]])  # fmt: skip
    assert answer.exit_code in (1, 2)
    assert message in answer.output


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\nbroken", b"<svg/>"])
def test_the_cli_refuses_a_corrupt_badge_with_one_line_and_exit_2(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "badge.bin"
    path.write_bytes(content)
    answer = CliRunner().invoke(main, ["credential", "verify", str(path)])
    assert answer.exit_code == 2
    assert answer.output.startswith(f"{path}: ")
    assert answer.output.count("\n") == 1


def test_a_revoked_credential_gets_no_badge_nor_certificate(
    template: Path, tmp_path: Path
) -> None:
    for http in open_http(template, tmp_path):
        http.observe_all()
        credential = http.issue().json()
        revoked = http.post(f"{API}/credentials/{quote(credential['id'], safe='')}/revoke",
                            {"reason": "the field assessment was not supervised"})
        assert revoked.status_code == 200
        for tail in ("badge.svg", "certificate.pdf"):
            answer = http.get(_url(credential, tail), "learner")
            assert answer.status_code == 409
            assert "revoked" in answer.json()["detail"]


def test_the_learner_page_offers_the_baked_badges_and_the_certificate(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, credential = issued
    form = http.client.get("/signin")
    http.client.post("/signin", data={"token": http.tokens["learner"], "csrf": csrf_of(form.text),
                                      "next": ""}, follow_redirects=False)  # fmt: skip
    try:
        page_url = f"/learners/{LEARNER}/credentials/{quote(credential['id'], safe='')}"
        page = http.client.get(page_url).text
        for tail in ("badge.png", "badge.svg", "certificate.pdf"):
            assert f'href="{page_url}/{tail}"' in page
        baked = http.client.get(f"{page_url}/badge.svg")
        assert baked.headers["content-type"].startswith("image/svg+xml")
        assert extract(baked.content) == ("svg", credential)
        pdf = http.client.get(f"{page_url}/certificate.pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert http.client.get(f"{page_url}/badge.gif").status_code == 404
    finally:
        http.client.cookies.clear()
