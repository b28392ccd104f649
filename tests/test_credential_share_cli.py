"""`credential share`, `credential hide`, `credential expiring` and the public page URL that
`credential issue` prints: the CLI side of the public page and of the expiring list, through
the same services as the HTTP API (a hidden link stays dead, sharing again makes a new one;
the expiring list as `GET /api/v1/credentials/expiring` gives it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service.credentials import CredentialSettings

from .test_credentials_e2e import db, engine_db, run  # noqa: F401 (fixtures)

URL = re.compile(r"http://127\.0\.0\.1:8080/public/credentials/[A-Za-z0-9_-]+")


def _issued(db: Path, tmp_path: Path) -> tuple[str, str, Path]:  # noqa: F811
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(IssuerKey.generate().to_pem())
    out = tmp_path / "L-1.json"
    issued = run("credential", "issue", "--db", str(db), "--learner", "L-1", "--policy",
                 "forklift-operator", "--issuer-key", str(key_file), "--out", str(out))
    assert issued.exit_code == 0, issued.output
    page = URL.search(issued.output)
    assert page is not None, issued.output
    return json.loads(out.read_text())["id"], page.group(0), key_file


def _public(db: Path, key_file: Path, url: str) -> int:  # noqa: F811
    app = create_app(db_path=db, issuer_key_path=key_file,
                     credentials=CredentialSettings())  # fmt: skip
    with TestClient(app) as client:
        return client.get(httpx.URL(url).path).status_code


def test_issue_prints_the_public_page_and_share_and_hide_manage_it(
    db: Path, tmp_path: Path  # noqa: F811
) -> None:
    credential, page, key_file = _issued(db, tmp_path)
    assert _public(db, key_file, page) == 200
    shared = run("credential", "share", "--db", str(db), "--id", credential)
    assert shared.exit_code == 0, shared.output
    assert shared.output.strip() == f"shared {credential}: {page}"  # the active link, kept

    hidden = run("credential", "hide", "--db", str(db), "--id", credential)
    assert hidden.exit_code == 0, hidden.output
    assert hidden.output.startswith(f"hidden {credential}")
    assert _public(db, key_file, page) == 404

    again = run("credential", "share", "--db", str(db), "--id", credential, "--by", "Dana")
    assert again.exit_code == 0, again.output
    new = URL.search(again.output)
    assert new is not None
    assert new.group(0) != page  # a new link; the old one stays dead
    assert _public(db, key_file, new.group(0)) == 200
    assert _public(db, key_file, page) == 404


def test_share_and_hide_refuse_an_unknown_credential_with_exit_1(
    db: Path  # noqa: F811
) -> None:
    for command in ("share", "hide"):
        result = run("credential", command, "--db", str(db), "--id", "urn:uuid:nope")
        assert result.exit_code == 1, result.output
        assert result.output.startswith("refused: ")


def test_expiring_lists_what_expires_within_the_days_given(
    db: Path, tmp_path: Path  # noqa: F811
) -> None:
    credential, _, _ = _issued(db, tmp_path)
    soon = run("credential", "expiring", "--db", str(db), "--within-days", "30")
    assert soon.exit_code == 0, soon.output
    assert credential not in soon.output
    assert "0 credential(s) expire within 30 days" in soon.output
    later = run("credential", "expiring", "--db", str(db), "--within-days", "3650", "--json")
    assert later.exit_code == 0, later.output
    listed = json.loads(later.output[:later.output.rindex("]") + 1])
    assert [(item["id"], item["learner"], item["policy"]) for item in listed] == [
        (credential, "L-1", "forklift-operator")]
    assert listed[0]["renewable_now"] is False
    for bad in ("0", "3651", "x"):
        refused = run("credential", "expiring", "--db", str(db), "--within-days", bad)
        assert refused.exit_code == 2, refused.output
