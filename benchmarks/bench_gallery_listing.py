"""Listing a large gallery: pages read by the database against reading every identity.

A real SQLite gallery (`GalleryStore`, WAL, its indexes) is filled with 200,000 identities
of 5 examples each (1,000,000 examples, 128-d float32 embeddings as the face model stores
them; written in bulk, not through the model), then timed, each the median of 20 calls:

- the first page of 100 identities, and a page deep in the gallery by keyset (`after=`, as
  the API's `next_after` hands on) and by offset;
- one identity with its example count, one identity's examples;
- a search by part of a name (a scan of the names, by design);
- the peer in the same run: what `GET /v1/identities` did before issue 26, reading every
  identity with its count and slicing the page in Python (`identity_names`).

Writes `benchmarks/results/gallery_listing.json` and its BENCHMARKS.md section.

    python benchmarks/bench_gallery_listing.py       # about 2 minutes here, 1.7 GB of disk
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results

IDENTITIES = 200_000
EXAMPLES_PER = 5
DIM = 128
REPEATS = 20


def fill(location: Path) -> Any:
    import sqlalchemy as sa

    from siamese.recognition.gallery_store import GalleryStore, examples_table, identities_table

    store = GalleryStore.create(location, {"embedding_dim": DIM})
    blob = np.random.default_rng(0).standard_normal(DIM).astype(np.float32).tobytes()
    chunk = 20_000
    with store.transaction() as conn:
        for start in range(0, IDENTITIES, chunk):
            conn.execute(
                identities_table.insert(),
                [
                    {"name": f"person {i:07d}", "metadata": None, "created_at": "2026-12-07"}
                    for i in range(start, min(IDENTITIES, start + chunk))
                ],
            )
        ids = conn.execute(sa.select(identities_table.c.id)).scalars().all()
        for start in range(0, len(ids), chunk):
            conn.execute(
                examples_table.insert(),
                [
                    {
                        "identity_id": i,
                        "embedding": blob,
                        "sha256": f"{i:040x}{k:024x}",
                        "source": f"{i}-{k}.jpg",
                        "added_at": "2026-12-07",
                    }
                    for i in ids[start : start + chunk]
                    for k in range(EXAMPLES_PER)
                ],
            )
    return store


def timed(call: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Median milliseconds of `call`."""
    call()  # warm: the page cache, SQLite's statement cache
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return 1000 * statistics.median(seconds)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="siamese-listing-") as folder:
        location = Path(folder) / "large.sqlite"
        started = time.perf_counter()
        store = fill(location)
        fill_seconds = time.perf_counter() - started
        deep = f"person {IDENTITIES - 1000:07d}"
        rows = {
            "first page (100)": timed(lambda: store.identity_page(limit=100)),
            "deep page by keyset (after=)": timed(
                lambda: store.identity_page(limit=100, after=deep)
            ),
            "deep page by offset": timed(
                lambda: store.identity_page(offset=IDENTITIES - 1000, limit=100)
            ),
            "one identity": timed(lambda: store.identity_row(deep)),
            "one identity's examples": timed(lambda: store.example_page(deep)),
            "search by part of a name": timed(
                lambda: store.identity_page(limit=100, contains="99999")
            ),
        }
        peer = timed(lambda: store.identity_names()[:100], repeats=3)
        size = location.stat().st_size + sum(
            p.stat().st_size for p in Path(folder).glob("large.sqlite-*")
        )
        store.close()
    document = {
        "benchmark": "gallery_listing",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "identities": IDENTITIES,
        "examples": IDENTITIES * EXAMPLES_PER,
        "embedding_dim": DIM,
        "fill_seconds": round(fill_seconds, 1),
        "database_bytes": size,
        "median_ms": rows,
        "peer_every_identity_ms": peer,
        "ratio_first_page_to_peer": rows["first page (100)"] / peer,
    }
    publish_results("gallery_listing", document, section(document))
    print(section(document))


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        f"A real SQLite gallery of {document['identities']:,} identities and "
        f"{document['examples']:,} examples ({document['embedding_dim']}-d embeddings, "
        f"{document['database_bytes'] / 2**30:.2f} GiB), read through `GalleryStore`; median "
        "of 20 calls each, warm page cache.",
        "",
        "| read | median |",
        "|---|---|",
    ]
    for name, ms in document["median_ms"].items():
        lines.append(f"| {name} | {ms:.2f} ms |")
    lines += [
        f"| peer, same run: every identity read, then the first 100 (the API before) | "
        f"{document['peer_every_identity_ms']:.0f} ms |",
        "",
        f"First page: **{document['ratio_first_page_to_peer']:.4f}×** the peer's time. "
        f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
