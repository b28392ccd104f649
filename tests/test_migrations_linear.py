"""The migrations are one line of revisions: each file ``NNNN_name.py`` is revision NNNN and
follows NNNN-1, so two revisions made in parallel (the same number, or two heads) fail here,
not when a store opens."""

from __future__ import annotations

import re

from alembic.config import Config
from alembic.script import ScriptDirectory

from assessengine.storage.migrate import MIGRATIONS


def test_the_revisions_are_numbered_one_after_the_other_with_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    files = sorted(p.name for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    numbers = [re.match(r"(\d{4})_", name).group(1) for name in files]  # type: ignore[union-attr]
    assert numbers == [f"{k:04d}" for k in range(1, len(files) + 1)], files
    assert scripts.get_heads() == [numbers[-1]]
    for number in numbers:
        script = scripts.get_revision(number)
        assert script is not None
        previous = None if number == "0001" else f"{int(number) - 1:04d}"
        assert script.down_revision == previous, (number, script.down_revision)
