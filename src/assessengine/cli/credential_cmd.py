"""`assessengine credential ...`: the group of the microcredential commands, and `credential
check` (policy files). The group's registry names the module of each other command
(`credential_signing_cmd`, `badge_cmd`, `share_cmd`): checking a policy file imports neither
the store nor the credential stack."""

from __future__ import annotations

from pathlib import Path

import click

from ..adapters.policies import check_policy_file
from ._app import EXIT_INPUT, LazyGroup, main


@main.group(cls=LazyGroup, lazy={
    "issue": "credential_signing_cmd", "verify": "credential_signing_cmd",
    "revoke": "credential_signing_cmd", "status-list": "credential_signing_cmd",
    "badge": "badge_cmd", "certificate": "badge_cmd",
    "share": "share_cmd", "hide": "share_cmd", "expiring": "share_cmd",
})  # fmt: skip
def credential() -> None:
    """Issue, verify and revoke Open Badges 3.0 microcredentials.

    \b
    A credential policy (credentials/<id>.yaml) says what a learner must pass; the engine
    checks the learner's sessions in its store against it and signs the credential:
      assessengine credential issue --db engine.db --learner L-1 --policy forklift-operator \\
          --out L-1.json
      assessengine credential verify L-1.json --db engine.db
      assessengine credential revoke --db engine.db --id urn:uuid:... --reason "..."
      assessengine credential status-list --db engine.db --out status-1.json
      assessengine credential verify L-1.json --status-list status-1.json \\
          --trusted-issuer did:key:z6Mk...
    The key is the one `serve` uses: DB.issuer.pem beside the store (made on the first issue),
    or --issuer-key FILE (`assessengine keys issuer --out FILE`). See docs/credentials.md.
    """


@credential.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Check credential policy files; prints FILE:LINE:COL: message for each problem and
    exits with status 2 (as `rubric check` does)."""
    failed = 0
    for file in files:
        result = check_policy_file(file)
        for problem in result.problems:
            click.echo(str(problem))
        failed += not result.ok
        if result.ok:
            click.echo(f"{file}: ok")
    if failed:
        raise SystemExit(EXIT_INPUT)
