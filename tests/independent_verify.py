"""Verify a credential with Digital Bazaar's VC stack (Node.js), an implementation independent of
the engine's: `tests/independent_verifier/verify.mjs` (@digitalbazaar/vc 7, data-integrity 2,
eddsa-rdfc-2022-cryptosuite 1, did-method-key 5; JSON-LD safe mode), with the engine's bundled
contexts and no network. Installed by the README's test command
(``npm ci --prefix tests/independent_verifier``). The status list is not read there (the
engine's own verifier checks revocation)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).with_name("independent_verifier")
CONTEXTS = Path(__file__).resolve().parents[1] / "src/assessengine/adapters/standards_data/contexts"


def independent_verification(
    document: Mapping[str, Any], *, did_web_http: bool = False
) -> dict[str, Any]:
    """``{"verified": bool, "error": str | None}`` from Digital Bazaar's verifier.
    `did_web_http`: a did:web issuer's DID document is fetched over plain HTTP (a test's
    server on 127.0.0.1), not HTTPS."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules").is_dir():
        pytest.fail("the independent verifier is not installed: "
                    "npm ci --prefix tests/independent_verifier (README's test command)")
    flags = ["--did-web-http"] if did_web_http else []
    answer = subprocess.run([node, str(HERE / "verify.mjs"), str(CONTEXTS), *flags],
                            input=json.dumps(document), capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    result: dict[str, Any] = json.loads(answer.stdout)
    return result
