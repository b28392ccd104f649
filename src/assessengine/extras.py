"""The optional extras (pyproject's ``[project.optional-dependencies]``) by the top-level
modules they install, so that a command reaching for a module that is not installed names
the extra and its pip command instead of ending in a traceback (`cli._app`)."""

from __future__ import annotations

from typing import Final

EXTRA_OF_MODULE: Final = {
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "s3fs": "archive",
    "dask": "archive",
    "distributed": "archive",
    "rich": "archive",
}
"""Top-level module -> the extra that installs it."""


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """What to tell the user when `error` is a module of an extra not installed (None for
    any other missing module: that is a broken install, not a choice)."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (f"this needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'assessengine[{extra}]'")  # fmt: skip
