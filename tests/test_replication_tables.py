"""Which way each table goes between sites and a hub is declared for every table of the
schema (a new table must say it), and a key made in another database's id range is told
apart from one made here (a hub refuses to revoke a site's credential)."""

from __future__ import annotations

from collections import Counter

import pytest

from assessengine.storage import schema
from assessengine.storage.appdb import RANGE_BITS, Db
from assessengine.storage.replication import LOCAL_TABLES, REVIEW_TABLES, SITE_TABLES, range_of


def test_every_table_of_the_schema_goes_one_way_exactly() -> None:
    declared = Counter(SITE_TABLES + REVIEW_TABLES + LOCAL_TABLES)
    assert [t for t, n in declared.items() if n > 1] == []
    tables = {t.name for t in schema.metadata.sorted_tables}
    assert sorted(tables - set(declared)) == [], "declare the new table(s) in storage.replication"
    assert sorted(set(declared) - tables) == []


def test_a_signed_status_list_is_each_databases_own() -> None:
    """The hub signs the lists it serves: were they replicated, the site's first signing of
    a list the hub had signed already would stop replication on a duplicate key."""
    assert "credential_status_published" in LOCAL_TABLES


class _Joined(Db):
    def __init__(self, number: int | None) -> None:
        super().__init__(None, "postgresql")
        self._range = (1, 2**63 - 1) if number is None else range_of(number)

    def id_range(self) -> tuple[int, int]:
        return self._range


@pytest.mark.parametrize(
    ("number", "key", "elsewhere"),
    [
        (None, range_of(3)[0], False),  # never joined: every key is its own
        (1, range_of(1)[0] + 5, False),  # the hub's own
        (1, range_of(2)[0], True),  # a site's, at the hub
        (2, range_of(1)[1], True),  # the hub's, at a site
        (2, 7, False),  # made before anything joined
        (2, (1 << RANGE_BITS) - 1, False),
    ],
)
def test_a_key_in_another_databases_range_was_made_elsewhere(
    number: int | None, key: int, elsewhere: bool
) -> None:
    assert _Joined(number).made_elsewhere(key) is elsewhere
