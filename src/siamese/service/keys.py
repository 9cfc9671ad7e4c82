"""API keys of the service, kept in the gallery's own database (table `api_keys`): only each
key's SHA-256 and its first characters are stored; the key itself is shown once, when made.

Roles: `admin` may do everything; `recognize` may identify, verify, embed and read, but not
enroll, rename or delete.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from siamese.errors import ConfigError, NotFoundError
from siamese.recognition.gallery_store import GalleryStore, api_keys_table, now

ROLES = ("admin", "recognize")
KEY_PREFIX = "sk_"


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never the key itself."""

    id: int
    name: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None
    rate_per_minute: float | None = None
    """Requests a minute it may make (None: the service's default)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "rate_per_minute": self.rate_per_minute,
        }


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id (None without a key), its role and its own rate limit."""

    key_id: int | None
    role: str
    rate_per_minute: float | None = None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    store: GalleryStore, role: str, name: str = "", rate_per_minute: float | None = None
) -> tuple[ApiKey, str]:
    """A new key of `role`: (its record, the key — shown once, not stored).

    Args:
        rate_per_minute: requests a minute the key may make (None: the service's default;
            0: unlimited).
    Raises:
        ConfigError: an unknown role; a negative rate.
    """
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if rate_per_minute is not None and not rate_per_minute >= 0:
        raise ConfigError(f"--rate must be 0 (unlimited) or more, got {rate_per_minute}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = {
        "name": name or role,
        "role": role,
        "sha256": _digest(key),
        "prefix": key[: len(KEY_PREFIX) + 6],
        "created_at": now(),
        "revoked_at": None,
        "rate_per_minute": rate_per_minute,
    }
    with store.transaction() as conn:
        key_id = conn.execute(api_keys_table.insert().values(**row)).inserted_primary_key[0]
    record = ApiKey(
        int(key_id), row["name"], role, row["prefix"], row["created_at"], None, rate_per_minute
    )
    return record, key


def list_keys(store: GalleryStore) -> list[ApiKey]:
    """Every key made, revoked ones included, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys_table).order_by(api_keys_table.c.id)).all()
    return [
        ApiKey(r.id, r.name, r.role, r.prefix, r.created_at, r.revoked_at, r.rate_per_minute)
        for r in rows
    ]


def revoke_key(store: GalleryStore, key_id: int) -> None:
    """Revoke a key by id: it stops working at once, in every worker.

    Raises:
        NotFoundError: no such key.
    """
    with store.transaction() as conn:
        done = conn.execute(
            api_keys_table.update()
            .where((api_keys_table.c.id == key_id) & api_keys_table.c.revoked_at.is_(None))
            .values(revoked_at=now())
        ).rowcount
    if not done:
        raise NotFoundError(f"no active API key with id {key_id}; `keys list` shows them")


def active_key_count(store: GalleryStore) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(api_keys_table)
                .where(api_keys_table.c.revoked_at.is_(None))
            ).scalar_one()
        )


def role_of(store: GalleryStore, key: str) -> str | None:
    """The role of an active key, or None for an unknown or revoked one."""
    caller = caller_of(store, key)
    return None if caller is None else caller.role


def caller_of(store: GalleryStore, key: str) -> Caller | None:
    """The active key `key` as a `Caller`, or None for an unknown or revoked one."""
    table = api_keys_table
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(table.c.id, table.c.role, table.c.rate_per_minute).where(
                (table.c.sha256 == _digest(key)) & table.c.revoked_at.is_(None)
            )
        ).first()
    return None if row is None else Caller(int(row.id), row.role, row.rate_per_minute)
