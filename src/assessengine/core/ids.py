"""The one rule for session and learner ids, wherever they enter the engine (ZeroMQ OPEN,
EVENTS and CLOSE; events files; field-log uploads and their form fields; learner tokens).

An id is 1 to `MAX_ID_LENGTH` characters of ``A-Z a-z 0-9 . _ : @ -``, starting with a letter
or a digit. So an id is a single URL path segment as it stands (no ``/``, no ``%``, no spaces,
never ``.`` or ``..``), a file name, a log token and a command-line argument (never an
option), and every id a simulator, a UUID, an e-mail address or `assessengine` itself makes
(``forklift-warehouse-s1-000042``, ``field-3f9a0c1b2d4e``, ``learner-000042``) fits.

`Id` is the pydantic type (its JSON schema carries the pattern); `id_problem` says in words
what is wrong with a value, for the readers that are not pydantic models.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import StringConstraints

MAX_ID_LENGTH: Final = 128
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
"""The characters of an id (its length is bounded separately by `MAX_ID_LENGTH`)."""
ID_RULE: Final = (
    f"1 to {MAX_ID_LENGTH} characters of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"
)
"""The rule in words, for error messages and documentation."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")


def is_id(value: object) -> bool:
    """Whether `value` is a string that follows the id rule."""
    return (
        isinstance(value, str) and len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value) is not None
    )


def id_problem(value: object, what: str = "id") -> str | None:
    """None if `value` is a valid id, else one line saying why not, naming `what` (e.g.
    ``"session"``); the value is shown escaped and cut short."""
    if is_id(value):
        return None
    if not isinstance(value, str):
        return f"{what} must be a string (an id), got {type(value).__name__}"
    if len(value) > MAX_ID_LENGTH:
        return f"{what} has {len(value)} characters; an id has at most {MAX_ID_LENGTH}"
    shown = ascii(value if len(value) <= 40 else value[:40] + "...")
    return f"{what} {shown} is not a valid id (an id is {ID_RULE})"


def check_id(value: object, what: str = "id") -> str:
    """`value` if it is a valid id; raises ValueError (the `id_problem` line) if not."""
    problem = id_problem(value, what)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(value, str)
    return value


# ------------------------------------------------------------------------------ sites

SITE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
"""A site's name (``ASSESSENGINE_SITE_ID``, ``site add --name``): a lower-case letter, then up
to 31 lower-case letters, digits and ``_``. It is an id's prefix and a PostgreSQL identifier's
part as it stands (no quoting, no case folding)."""
SITE_RULE: Final = "1 to 32 characters of a-z 0-9 _, starting with a letter"
SITE_SEPARATOR: Final = ":"
"""Between a site's name and the id it was given there: ``north:S1``."""

_SITE: Final = re.compile(SITE_PATTERN)


def site_problem(value: object) -> str | None:
    """None if `value` is a valid site name, else one line saying why not."""
    if isinstance(value, str) and _SITE.fullmatch(value) is not None:
        return None
    shown = ascii(value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "...")
    return f"site {shown} is not a valid site name (a site name is {SITE_RULE})"


def qualify(site: str, value: str) -> str:
    """`value` (an id given at `site`) as the id it has everywhere: ``SITE:value``. The result
    may break the id rule (too long): check it with `id_problem`."""
    return f"{site}{SITE_SEPARATOR}{value}"


def unqualify(site: str, value: str) -> str:
    """The id `value` was given at `site` (`qualify` undone); `value` itself when it does not
    start with the site's prefix."""
    prefix = site + SITE_SEPARATOR
    return value[len(prefix):] if value.startswith(prefix) else value
