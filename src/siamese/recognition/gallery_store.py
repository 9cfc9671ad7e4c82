"""The gallery's database: identities, their examples (embedding, image SHA-256, source,
time, metadata, optionally the image) and the gallery's settings, in SQL through SQLAlchemy
Core — one SQLite file by default, any SQLAlchemy URL (PostgreSQL) where several processes or
hosts share a gallery.

The database is the source of truth; search indexes are caches of it. Every write runs in
one transaction (all of an enrollment or none of it, even when the process is killed) and
bumps `generation`, so another process's cache can tell it is stale with one read.

SQLite is opened in WAL mode (readers never block the writer), with foreign keys on and a
busy timeout; writers take the write lock when their transaction begins (BEGIN IMMEDIATE), so
two processes enrolling at once queue instead of failing halfway.

Schema versions: `SCHEMA_VERSION` is what this code writes; an older gallery is migrated
forward in one transaction when opened; a newer one is refused (upgrade siamese).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from siamese.errors import ConfigError, ConflictError, DataError, NotFoundError, OutputError

SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 60.0

metadata = sa.MetaData()
settings_table = sa.Table(
    "gallery_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
identities_table = sa.Table(
    "identities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(512), nullable=False, unique=True),
    sa.Column("metadata", sa.Text, nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
)
examples_table = sa.Table(
    "examples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "identity_id",
        sa.Integer,
        sa.ForeignKey("identities.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("added_at", sa.String(32), nullable=False),
    sa.Column("metadata", sa.Text, nullable=True),
    sa.Column("image", sa.LargeBinary, nullable=True),
    sa.UniqueConstraint("identity_id", "sha256", name="one_image_once_per_identity"),
)

api_keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    # SHA-256 of the key: keys are 256-bit random strings, so a fast hash cannot be brute
    # forced (a slow password hash would only cost every request time)
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
    # requests a minute this key may make (NULL: the service's --rate-limit)
    sa.Column("rate_per_minute", sa.Float, nullable=True),
)


def _add_key_rates(conn: Connection) -> None:
    """Version 3: API keys get their own rate limit (a column, NULL for the existing keys)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(api_keys_table.name)}
    if "rate_per_minute" not in columns:  # a gallery created at version 2
        conn.execute(sa.text("ALTER TABLE api_keys ADD COLUMN rate_per_minute FLOAT"))


# version → the step that brings a gallery of version − 1 to it (1 creates the first tables,
# 2 adds the service's API keys, 3 their rate limits).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: lambda conn: metadata.create_all(
        conn, tables=[settings_table, identities_table, examples_table]
    ),
    2: lambda conn: metadata.create_all(conn, tables=[api_keys_table]),
    3: _add_key_rates,
}


def now() -> str:
    """UTC time as ISO 8601, seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def database_url(location: Path | str) -> str:
    """An SQLAlchemy URL: a URL as given ("postgresql://…", "sqlite:///…"), or a file path
    for SQLite."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        # psycopg 3 (the `serve` extra) rather than SQLAlchemy's default driver, psycopg2
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def cannot_connect(url: str, err: Exception) -> str:
    """The message for a database server that does not answer: what could not be reached
    first (the URL without its password), then the driver's reason, then what to check."""
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    shown = shown.replace("postgresql+psycopg://", "postgresql://")
    reason = str(getattr(err, "orig", None) or err).strip().splitlines()
    return (
        f"cannot connect to {shown}: {reason[0] if reason else type(err).__name__}; check that "
        "the database server is running and reachable, and the URL's user, host, port and "
        "database name"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver: SQLAlchemy's `begin` issues BEGIN IMMEDIATE itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer (`GalleryStore.transaction`) takes the write lock at the start: it cannot
    # deadlock with another writer halfway, and concurrent enrollments queue on the busy
    # timeout. Reads begin deferred: in WAL mode they see a snapshot and never wait.
    write = conn.get_execution_options().get("siamese_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(location: Path | str) -> Engine:
    """An engine for the gallery at `location` (an SQLite file path or a database URL)."""
    url = database_url(location)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as err:
        raise ConfigError(
            f"{location}: not a database URL SQLAlchemy knows ({err}); give an SQLite file "
            "path, or a URL such as postgresql://user@host/dbname"
        ) from None
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"{location}: this database needs its Python driver, which is not installed "
            f"({err.name}); install it (e.g. pip install 'psycopg[binary]' for postgresql://)"
        ) from None


@dataclass(frozen=True)
class ExampleRow:
    """One stored example, without its embedding and image."""

    id: int
    identity: str
    sha256: str
    source: str | None
    added_at: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class NewExample:
    """An example to store: its embedding, image SHA-256, source, and image (or None)."""

    embedding: np.ndarray
    sha256: str
    source: str
    image: bytes | None


@dataclass(frozen=True)
class StoredEnrollment:
    """What `GalleryStore.enroll` wrote.

    Attributes:
        identity_id: the identity's row; created: whether the call created it.
        stored: indices (into the examples given) of those stored; example_ids: their rows.
        repeated: indices of those skipped (already this identity's, or given twice).
        generation: the write counter after the write, or None when nothing was written.
    """

    identity_id: int
    created: bool
    stored: list[int]
    example_ids: list[int]
    repeated: list[int]
    generation: int | None


class GalleryStore:
    """Rows in, rows out: all of the gallery's SQL, with no knowledge of models or search.

    Attributes:
        after_write: called inside every write transaction, after the write counter moves,
            with the connection and the new generation (the gallery re-derives its decision
            threshold there, so the threshold and the write that changed it commit together).
    """

    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self.location = location
        self.after_write: Callable[[Connection, int], None] | None = None

    # ------------------------------------------------------------------------------------
    # Creating and opening

    @classmethod
    def create(cls, location: Path | str, settings: dict[str, Any]) -> GalleryStore:
        """A new, empty gallery with `settings`.

        Raises:
            ConfigError: a gallery already exists there.
        """
        url = database_url(location)
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if path.exists() and path.stat().st_size > 0:
                raise ConfigError(
                    f"{path}: a file is already there; open that gallery, or choose a new "
                    "path (delete the file to start over)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(location)
        store = cls(engine, str(location))
        with store.transaction(queue=False) as conn:
            if sa.inspect(conn).has_table(settings_table.name):
                raise ConfigError(
                    f"{location}: a gallery already exists in that database; open it instead"
                )
            for version in range(1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
            rows = {**settings, "schema_version": SCHEMA_VERSION, "generation": 0}
            conn.execute(
                settings_table.insert(),
                [{"key": k, "value": json.dumps(v)} for k, v in rows.items()],
            )
        return store

    @classmethod
    def open(cls, location: Path | str) -> GalleryStore:
        """An existing gallery, migrated forward if it is older than this code.

        Raises:
            ConfigError: no gallery there, or one written by a newer siamese.
        """
        url = database_url(location)
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise ConfigError(
                    f"{path}: no gallery there; create one with `siamese gallery create "
                    f"{path} --model MODEL`"
                )
        engine = make_engine(location)
        store = cls(engine, str(location))
        try:
            with engine.connect() as conn:
                has = sa.inspect(conn).has_table(settings_table.name)
        except sa.exc.OperationalError as err:
            if url.startswith("sqlite"):
                raise ConfigError(f"{location}: cannot open the gallery ({err.orig})") from None
            raise ConfigError(cannot_connect(url, err)) from None
        except sa.exc.DatabaseError as err:
            raise ConfigError(
                f"{location}: not a gallery database ({err.orig}); give the file `siamese "
                "gallery create` made"
            ) from None
        if not has:
            raise ConfigError(
                f"{location}: this database holds no gallery; create one with `siamese gallery "
                "create`"
            )
        version = int(store.setting("schema_version"))
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{location}: gallery schema version {version} was written by a newer siamese "
                f"(this one reads up to {SCHEMA_VERSION}); upgrade siamese to open it"
            )
        if version < SCHEMA_VERSION:
            with store.transaction() as conn:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[step](conn)
                store._set(conn, "schema_version", SCHEMA_VERSION)
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self, queue: bool = True) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error.
        `queue`: wait for the other writers first (False only while creating the tables).

        Raises:
            OutputError: the database refused the write (locked beyond the busy timeout, a
                read-only file, a full disk); nothing of the transaction was written.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(siamese_write=True)
                with conn.begin():
                    if queue and conn.dialect.name != "sqlite":
                        # Writers queue on the generation row, as SQLite's BEGIN IMMEDIATE
                        # queues them on the file: no two enrollments interleave, so two
                        # workers creating one identity at once cannot collide.
                        conn.execute(
                            sa.select(settings_table.c.value)
                            .where(settings_table.c.key == "generation")
                            .with_for_update()
                        )
                    yield conn
        except sa.exc.OperationalError as err:
            raise OutputError(
                f"{self.location}: the database refused the write ({err.orig}); nothing of it "
                "was stored. Check that the file is writable and its disk has room, or that "
                f"no other process holds the gallery for more than {BUSY_TIMEOUT_S:.0f} s"
            ) from None

    # ------------------------------------------------------------------------------------
    # Settings

    def settings(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(settings_table)).all()
        return {key: json.loads(value) for key, value in rows}

    def setting(self, key: str) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(settings_table.c.value).where(settings_table.c.key == key)
            ).scalar_one_or_none()
        if value is None:
            raise ConfigError(f"{self.location}: the gallery has no setting {key!r}: damaged")
        return json.loads(value)

    def setting_in(self, conn: Connection, key: str) -> Any:
        """A setting read in `conn`'s transaction (None when the gallery has no such key)."""
        value = conn.execute(
            sa.select(settings_table.c.value).where(settings_table.c.key == key)
        ).scalar_one_or_none()
        return None if value is None else json.loads(value)

    def _set(self, conn: Connection, key: str, value: Any) -> None:
        conn.execute(
            settings_table.update()
            .where(settings_table.c.key == key)
            .values(value=json.dumps(value))
        )

    def set_settings(self, conn: Connection, values: dict[str, Any]) -> None:
        """Set settings, adding the keys the gallery does not have yet."""
        for key, value in values.items():
            updated = conn.execute(
                settings_table.update()
                .where(settings_table.c.key == key)
                .values(value=json.dumps(value))
            ).rowcount
            if not updated:
                conn.execute(settings_table.insert().values(key=key, value=json.dumps(value)))

    def generation(self, conn: Connection | None = None) -> int:
        """The count of writes so far: a cache built at generation g is stale when it differs."""
        if conn is not None:
            value = conn.execute(
                sa.select(settings_table.c.value).where(settings_table.c.key == "generation")
            ).scalar_one()
            return int(json.loads(value))
        return int(self.setting("generation"))

    def bump(self, conn: Connection) -> int:
        """Count one write (inside its transaction), then run `after_write`; returns the new
        generation."""
        generation = self.generation(conn) + 1
        self._set(conn, "generation", generation)
        if self.after_write is not None:
            self.after_write(conn, generation)
        return generation

    # ------------------------------------------------------------------------------------
    # Identities and examples

    def identity_id(self, conn: Connection, name: str) -> int | None:
        return conn.execute(
            sa.select(identities_table.c.id).where(identities_table.c.name == name)
        ).scalar_one_or_none()

    def add_identity(self, conn: Connection, name: str, meta: dict[str, Any] | None) -> int:
        result = conn.execute(
            identities_table.insert().values(
                name=name, metadata=_json_or_none(meta), created_at=now()
            )
        )
        return int(result.inserted_primary_key[0])

    def owners_of(self, conn: Connection, sha256: list[str]) -> dict[str, list[str]]:
        """sha256 → the identities holding an example of that image."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(sha256), 500):
            rows = conn.execute(
                sa.select(examples_table.c.sha256, identities_table.c.name)
                .join(identities_table)
                .where(examples_table.c.sha256.in_(sha256[start : start + 500]))
            ).all()
            for digest, name in rows:
                out.setdefault(digest, []).append(name)
        return out

    def add_examples(self, conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
        """Insert example rows; returns their ids.

        Ids are never reused, even after the newest examples were deleted (SQLite would give
        the next row the largest id + 1, which may be a deleted example's): a persisted
        search index knows an example by its id, and must not take a new example for a
        deleted one. The highest id ever given is kept in the settings."""
        if not rows:
            return []
        largest = conn.execute(sa.select(sa.func.max(examples_table.c.id))).scalar_one()
        given = self.setting_in(conn, "example_id_high_water")
        next_id = max(int(largest or 0), int(given or 0)) + 1
        ids = list(range(next_id, next_id + len(rows)))
        conn.execute(
            examples_table.insert(), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
        )
        self.set_settings(conn, {"example_id_high_water": ids[-1]})
        return ids

    def identity_names(self) -> list[tuple[str, int, dict[str, Any] | None, str]]:
        """(name, examples, metadata, created_at) of every identity, by name."""
        return self.identity_page(limit=None)[0]

    def identity_page(
        self,
        offset: int = 0,
        limit: int | None = 100,
        after: str | None = None,
        contains: str | None = None,
    ) -> tuple[list[tuple[str, int, dict[str, Any] | None, str]], int]:
        """A page of identities by name, and how many match in all.

        The page is read by the database, not filtered here: `after` (keyset paging: names
        after this one, through the unique index on name, as fast on the millionth page as
        on the first) and/or `offset` rows skipped, at most `limit` rows (None: all); each
        row's example count is looked up through the index on examples.identity_id for the
        page's rows only. `contains` keeps names containing it, ignoring case (a scan of the
        names: fine for a person typing a name, not for a loop).

        Returns:
            ([(name, examples, metadata, created_at)], total matching `contains`).
        """
        ids = identities_table
        matching = []
        if contains:
            matching.append(sa.func.lower(ids.c.name).contains(contains.lower(), autoescape=True))
        page = sa.select(ids.c.id, ids.c.name, ids.c.metadata, ids.c.created_at).where(*matching)
        if after is not None:
            page = page.where(ids.c.name > after)
        page = page.order_by(ids.c.name).offset(offset or None).limit(limit).subquery()
        examples = (
            sa.select(sa.func.count(examples_table.c.id))
            .where(examples_table.c.identity_id == page.c.id)
            .scalar_subquery()
        )
        query = sa.select(page.c.name, examples, page.c.metadata, page.c.created_at).order_by(
            page.c.name
        )
        total = sa.select(sa.func.count()).select_from(ids).where(*matching)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            count = int(conn.execute(total).scalar_one())
        return [(n, int(c), _json_load(m), t) for n, c, m, t in rows], count

    def identity_row(self, name: str) -> tuple[str, int, dict[str, Any] | None, str] | None:
        """(name, examples, metadata, created_at) of one identity, or None."""
        ids = identities_table
        examples = (
            sa.select(sa.func.count(examples_table.c.id))
            .where(examples_table.c.identity_id == ids.c.id)
            .scalar_subquery()
        )
        query = sa.select(ids.c.name, examples, ids.c.metadata, ids.c.created_at).where(
            ids.c.name == name
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], int(row[1]), _json_load(row[2]), row[3])

    def examples_of(self, name: str) -> list[ExampleRow]:
        """Every stored example of identity `name`, oldest first (none: no such identity, or
        none left)."""
        return self.example_page(name, limit=None)[0]

    def example_page(
        self, name: str, offset: int = 0, limit: int | None = 100
    ) -> tuple[list[ExampleRow], int]:
        """A page of identity `name`'s examples, oldest first, and how many it has, read by
        the database through the index on examples.identity_id."""
        query = (
            sa.select(
                examples_table.c.id,
                identities_table.c.name,
                examples_table.c.sha256,
                examples_table.c.source,
                examples_table.c.added_at,
                examples_table.c.metadata,
            )
            .join(identities_table)
            .where(identities_table.c.name == name)
            .order_by(examples_table.c.id)
            .offset(offset or None)
            .limit(limit)
        )
        total = (
            sa.select(sa.func.count(examples_table.c.id))
            .join(identities_table)
            .where(identities_table.c.name == name)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            count = int(conn.execute(total).scalar_one())
        examples = [ExampleRow(i, n, s, src, t, _json_load(m)) for i, n, s, src, t, m in rows]
        return examples, count

    def all_embeddings(
        self, dim: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str], int]:
        """Every stored embedding and every identity, read in one snapshot.

        Returns:
            (embeddings (M, dim) float32, example ids (M,) int64, identity ids (M,) int64,
            identity id → name, the generation they were read at).
        Raises:
            DataError: a stored embedding of another size (a damaged gallery).
        """
        rows, names, generation = self._every_example(examples_table.c.embedding)
        m = len(rows)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=m)
        owners = np.fromiter((r[1] for r in rows), dtype=np.int64, count=m)
        blobs = [r[2] for r in rows]
        del rows
        sizes = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=m)
        wrong = np.flatnonzero(sizes != 4 * dim)
        if wrong.size:
            raise DataError(
                f"{self.location}: example {int(ids[wrong[0]])} holds a "
                f"{int(sizes[wrong[0]]) // 4}-d embedding, the gallery's model gives {dim}-d: "
                "the gallery is damaged"
            )
        embeddings = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(m, dim).copy()
        return embeddings, ids, owners, names, generation

    def _every_example(
        self, *columns: sa.ColumnElement[Any]
    ) -> tuple[list[tuple[Any, ...]], dict[int, str], int]:
        """(id, identity id, *columns) of every example by id, identity id → name, and the
        write counter, read in one snapshot. Through the driver's own cursor: plain tuples
        instead of a Row object per example (1M examples here: 8.4 s before, about 4 s)."""
        with self.engine.connect() as conn, conn.begin():
            generation = self.generation(conn)
            names = dict(
                conn.execute(sa.select(identities_table.c.id, identities_table.c.name)).all()
            )
            query = sa.select(examples_table.c.id, examples_table.c.identity_id, *columns)
            query = query.order_by(examples_table.c.id)
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(str(query.compile(dialect=self.engine.dialect)))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return rows, {int(i): str(n) for i, n in names.items()}, generation

    def example_owners(self) -> tuple[np.ndarray, np.ndarray, dict[int, str], int]:
        """Every example's id and identity, without the embeddings, in one snapshot: what a
        persisted search index is checked against (1M examples: well under a second).

        Returns:
            (example ids (M,) int64 ascending, identity ids (M,) int64, identity id → name,
            the generation they were read at).
        """
        rows, names, generation = self._every_example()
        pairs = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        ids, owners = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
        return ids, owners, names, generation

    def embeddings_by_id(self, example_ids: np.ndarray, dim: int) -> np.ndarray:
        """(len(example_ids), dim) float32 embeddings of these examples, in the order given.

        Raises:
            DataError: one of them is missing (deleted meanwhile) or of another size.
        """
        wanted = np.asarray(example_ids, dtype=np.int64)
        out = np.empty((wanted.size, dim), dtype=np.float32)
        found: dict[int, bytes] = {}
        with self.engine.connect() as conn:
            for start in range(0, wanted.size, 500):
                part = [int(i) for i in wanted[start : start + 500]]
                found.update(
                    conn.execute(
                        sa.select(examples_table.c.id, examples_table.c.embedding).where(
                            examples_table.c.id.in_(part)
                        )
                    ).all()
                )
        for row, example_id in enumerate(wanted.tolist()):
            blob = found.get(example_id)
            if blob is None or len(blob) != 4 * dim:
                raise DataError(
                    f"{self.location}: example {example_id} is "
                    + ("gone" if blob is None else f"a {len(blob) // 4}-d embedding, not {dim}-d")
                )
            out[row] = np.frombuffer(blob, dtype="<f4")
        return out

    def stored_images(self) -> list[tuple[int, bytes | None, str | None]]:
        """(example id, stored image bytes or None, source) of every example."""
        with self.engine.connect() as conn:
            return [
                (int(i), img, src)
                for i, img, src in conn.execute(
                    sa.select(
                        examples_table.c.id, examples_table.c.image, examples_table.c.source
                    ).order_by(examples_table.c.id)
                ).all()
            ]

    def counts(self, conn: Connection | None = None) -> tuple[int, int]:
        """(identities, examples), in `conn`'s transaction when given."""
        if conn is None:
            with self.engine.connect() as own:
                return self.counts(own)
        identities = conn.execute(
            sa.select(sa.func.count()).select_from(identities_table)
        ).scalar_one()
        examples = conn.execute(sa.select(sa.func.count()).select_from(examples_table)).scalar_one()
        return int(identities), int(examples)

    # ------------------------------------------------------------------------------------
    # Writes of the gallery

    def enroll(
        self,
        name: str,
        metadata: dict[str, Any] | None,
        examples: list[NewExample],
        force: bool = False,
    ) -> StoredEnrollment:
        """Add `examples` to identity `name` (created if new) in one transaction: an image it
        already has, or one given twice, is skipped; an image another identity has is refused
        unless `force`.

        Raises:
            ConflictError: an image enrolled under another identity (without `force`);
                nothing is written.
        """
        digests = [e.sha256 for e in examples]
        firsts = {d: k for k, d in reversed(list(enumerate(digests)))}
        with self.transaction() as conn:
            owners = self.owners_of(conn, sorted(set(digests)))
            others = {d: [o for o in who if o != name] for d, who in owners.items()}
            clashes = {d: o for d, o in others.items() if o}
            if clashes and not force:
                lines = [
                    f"{examples[firsts[d]].source} (enrolled as {', '.join(o)})"
                    for d, o in clashes.items()
                ]
                raise ConflictError(
                    f"already enrolled under another identity, so not enrolled as {name!r}: "
                    + "; ".join(lines)
                    + ". If the same image really shows both, enroll with force=True (--force)"
                )
            identity_id = self.identity_id(conn, name)
            created = identity_id is None
            if identity_id is None:
                identity_id = self.add_identity(conn, name, metadata)
            elif metadata is not None:
                conn.execute(
                    identities_table.update()
                    .where(identities_table.c.id == identity_id)
                    .values(metadata=_json_or_none(metadata))
                )
            mine = {d for d, who in owners.items() if name in who}
            stored = sorted(k for d, k in firsts.items() if d not in mine)
            chosen = set(stored)
            rows = [
                {
                    "identity_id": identity_id,
                    "embedding": embedding_blob(examples[k].embedding),
                    "sha256": examples[k].sha256,
                    "source": examples[k].source,
                    "added_at": now(),
                    "metadata": None,
                    "image": examples[k].image,
                }
                for k in stored
            ]
            example_ids = self.add_examples(conn, rows)
            generation = self.bump(conn) if rows or created else None
        repeated = [k for k in range(len(examples)) if k not in chosen]
        return StoredEnrollment(identity_id, created, stored, example_ids, repeated, generation)

    def remove_identity(self, name: str) -> tuple[int, int, int]:
        """Delete an identity and its examples: (its id, examples deleted, generation).

        Raises:
            NotFoundError: no such identity.
        """
        with self.transaction() as conn:
            identity_id = self.existing(conn, name)
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(examples_table)
                .where(examples_table.c.identity_id == identity_id)
            ).scalar_one()
            conn.execute(identities_table.delete().where(identities_table.c.id == identity_id))
            generation = self.bump(conn)
        return identity_id, int(count), generation

    def remove_example(self, name: str, example_id: int) -> int:
        """Delete one example of an identity (the identity stays); returns the generation.

        Raises:
            NotFoundError: no such identity, or no such example of it.
        """
        with self.transaction() as conn:
            identity_id = self.existing(conn, name)
            deleted = conn.execute(
                examples_table.delete().where(
                    (examples_table.c.id == int(example_id))
                    & (examples_table.c.identity_id == identity_id)
                )
            ).rowcount
            if not deleted:
                raise NotFoundError(f"identity {name!r} has no example {example_id}")
            return self.bump(conn)

    def example_image(self, name: str, example_id: int) -> bytes:
        """The stored image of one example.

        Raises:
            NotFoundError: no such identity or example, or the gallery keeps no images.
        """
        with self.engine.connect() as conn:
            identity_id = self.existing(conn, name)
            blob = conn.execute(
                sa.select(examples_table.c.image).where(
                    (examples_table.c.id == int(example_id))
                    & (examples_table.c.identity_id == identity_id)
                )
            ).scalar_one_or_none()
        if blob is None:
            raise NotFoundError(
                f"no stored image of example {example_id} of {name!r} (the gallery keeps "
                "images only when created with --keep-images)"
            )
        return bytes(blob)

    def set_metadata(self, name: str, metadata: dict[str, Any] | None) -> None:
        """Replace an identity's metadata (None clears it).

        Raises:
            NotFoundError: no such identity.
        """
        with self.transaction() as conn:
            identity_id = self.existing(conn, name)
            conn.execute(
                identities_table.update()
                .where(identities_table.c.id == identity_id)
                .values(metadata=_json_or_none(metadata))
            )

    def rename(self, name: str, new_name: str) -> tuple[int, int | None, int] | None:
        """Rename an identity, or merge it into `new_name` when that exists (its examples
        join it; an image both had is kept once).

        Returns:
            (the old id, the id merged into or None, generation), or None when the names are
            the same identity.
        Raises:
            NotFoundError: no such identity.
        """
        with self.transaction() as conn:
            old_id = self.existing(conn, name)
            target = self.identity_id(conn, new_name)
            if target == old_id:
                return None
            if target is None:
                conn.execute(
                    identities_table.update()
                    .where(identities_table.c.id == old_id)
                    .values(name=new_name)
                )
            else:
                theirs = sa.select(examples_table.c.sha256).where(
                    examples_table.c.identity_id == target
                )
                conn.execute(
                    examples_table.delete().where(
                        (examples_table.c.identity_id == old_id)
                        & examples_table.c.sha256.in_(theirs)
                    )
                )
                conn.execute(
                    examples_table.update()
                    .where(examples_table.c.identity_id == old_id)
                    .values(identity_id=target)
                )
                conn.execute(identities_table.delete().where(identities_table.c.id == old_id))
            generation = self.bump(conn)
        return old_id, target, generation

    def embeddings_of(self, name: str, dim: int) -> np.ndarray:
        """(K, dim) float32 embeddings of an identity's examples.

        Raises:
            NotFoundError: no such identity. DataError: it has no examples.
        """
        with self.engine.connect() as conn:
            identity_id = self.existing(conn, name)
            blobs = (
                conn.execute(
                    sa.select(examples_table.c.embedding).where(
                        examples_table.c.identity_id == identity_id
                    )
                )
                .scalars()
                .all()
            )
        if not blobs:
            raise DataError(f"identity {name!r} has no examples to verify against")
        return np.stack([np.frombuffer(b, dtype="<f4").reshape(dim) for b in blobs])

    def replace_embeddings(
        self, example_ids: list[int], vectors: np.ndarray, settings: dict[str, Any]
    ) -> int:
        """Store new embeddings of these examples and new settings in one transaction (a move
        to another model); returns the generation."""
        with self.transaction() as conn:
            for example_id, vector in zip(example_ids, vectors, strict=True):
                conn.execute(
                    examples_table.update()
                    .where(examples_table.c.id == example_id)
                    .values(embedding=embedding_blob(vector))
                )
            # Embeddings changed under the same ids: persisted indexes of the old ones are void.
            epoch = int(self.setting_in(conn, "embedding_epoch") or 0) + 1
            self.set_settings(conn, {**settings, "embedding_epoch": epoch})
            return self.bump(conn)

    def existing(self, conn: Connection, name: str) -> int:
        """The id of identity `name`.

        Raises:
            NotFoundError: no such identity (with the name that differs only in case, if any).
        """
        identity_id = self.identity_id(conn, name)
        if identity_id is None:
            raise NotFoundError(self.no_such(name, conn))
        return identity_id

    def no_such(self, name: str, conn: Connection | None = None) -> str:
        """The message for an identity that is not there."""
        if conn is None:
            with self.engine.connect() as own:
                return self.no_such(name, own)
        near = conn.execute(
            sa.select(identities_table.c.name).where(
                sa.func.lower(identities_table.c.name) == name.lower()
            )
        ).scalar()
        hint = f" (did you mean {near!r}?)" if near else ""
        return (
            f"no identity {name!r} in {self.location}{hint}; `siamese gallery list` shows the "
            "enrolled ones"
        )


def embedding_blob(vector: np.ndarray) -> bytes:
    """A (D,) embedding as little-endian float32 bytes (the stored form)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _json_load(value: str | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(value)
