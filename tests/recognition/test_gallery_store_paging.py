"""Identities and examples listed a page at a time by the database: keyset and offset paging,
search by part of a name, and query plans that use the indexes (so a page of a large gallery
costs what a page of a small one does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from siamese.recognition.gallery_store import (
    GalleryStore,
    examples_table,
    identities_table,
)

IDENTITIES = 3_000
EXAMPLES_PER = 3


def _names() -> list[str]:
    # mixed case, digits, and the characters LIKE treats specially
    names = [f"Person {i:05d}" for i in range(IDENTITIES - 3)]
    return [*names, "100% sure", "under_score", "ALL CAPS"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> GalleryStore:
    path = Path(tmp_path_factory.mktemp("paging")) / "gallery.db"
    store = GalleryStore.create(path, {"embedding_dim": 4})
    blob = np.zeros(4, np.float32).tobytes()
    with store.transaction() as conn:
        names = _names()
        conn.execute(
            identities_table.insert(),
            [{"name": n, "metadata": None, "created_at": "2026-12-07"} for n in names],
        )
        ids = dict(conn.execute(sa.select(identities_table.c.name, identities_table.c.id)).all())
        rows = [
            {
                "identity_id": ids[n],
                "embedding": blob,
                "sha256": f"{ids[n]:032x}{k:032x}",
                "source": f"{n}-{k}.png",
                "added_at": "2026-12-07",
            }
            for i, n in enumerate(names)
            for k in range(i % EXAMPLES_PER + 1)  # 1, 2 or 3 examples
        ]
        conn.execute(examples_table.insert(), rows)
    yield store
    store.close()


def _brute_force() -> list[tuple[str, int]]:
    names = _names()
    counts = {n: i % EXAMPLES_PER + 1 for i, n in enumerate(names)}
    return sorted(counts.items())  # SQLite orders names bytewise, as Python's sort does


def test_walking_every_page_by_keyset_gives_every_identity_once_with_its_count(
    store: GalleryStore,
) -> None:
    seen, after = [], None
    while True:
        rows, total = store.identity_page(limit=700, after=after)
        assert total == IDENTITIES
        seen += [(name, examples) for name, examples, _, _ in rows]
        if len(rows) < 700:
            break
        after = rows[-1][0]
    assert seen == _brute_force()


def test_offset_paging_and_the_whole_list_agree_with_keyset(store: GalleryStore) -> None:
    everything = [(n, c) for n, c, _, _ in store.identity_names()]
    assert everything == _brute_force()
    rows, total = store.identity_page(offset=1_234, limit=5)
    assert total == IDENTITIES and [(n, c) for n, c, _, _ in rows] == everything[1_234:1_239]
    rows, _ = store.identity_page(offset=2, limit=3, after=everything[10][0])
    assert [n for n, *_ in rows] == [n for n, _ in everything[13:16]]


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("person 0000", [f"Person {i:05d}" for i in range(10)]),
        ("caps", ["ALL CAPS"]),
        ("%", ["100% sure"]),  # literal, not LIKE's wildcard
        ("_", ["under_score"]),
        ("nobody", []),
    ],
)
def test_search_by_part_of_a_name_ignores_case_and_takes_wildcards_literally(
    store: GalleryStore, part: str, expected: list[str]
) -> None:
    rows, total = store.identity_page(limit=50, contains=part)
    assert [n for n, *_ in rows] == sorted(expected) and total == len(expected)


def test_one_identity_and_a_page_of_its_examples(store: GalleryStore) -> None:
    name, examples, metadata, _ = store.identity_row("Person 00005")
    assert (name, examples, metadata) == ("Person 00005", 3, None)
    assert store.identity_row("nobody") is None
    page, total = store.example_page("Person 00005", offset=1, limit=1)
    assert total == 3 and [r.source for r in page] == ["Person 00005-1.png"]
    assert store.example_page("nobody") == ([], 0)


def _plans(store: GalleryStore, call: Any) -> list[str]:
    """The query plan of every statement `call` runs on the store's SQLite database."""
    statements: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    plans = []
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            raw = conn.connection.dbapi_connection
            rows = raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append(" | ".join(str(r[-1]) for r in rows))
    return plans


def test_a_page_reads_through_the_indexes_never_a_scan_of_the_examples(
    store: GalleryStore,
) -> None:
    plans = _plans(store, lambda: store.identity_page(limit=100, after="Person 02000"))
    page = next(p for p in plans if "examples" in p)
    # the page walks the unique index on name; each row's examples are counted by index
    assert "USING INDEX" in page or "USING COVERING INDEX" in page, page
    assert "SCAN examples" not in page, page
    assert "SEARCH examples USING" in page, page
    for call in (
        lambda: store.identity_row("Person 00005"),
        lambda: store.example_page("Person 00005"),
    ):
        for plan in _plans(store, call):
            assert "SCAN examples" not in plan and "SCAN identities" not in plan, plan
