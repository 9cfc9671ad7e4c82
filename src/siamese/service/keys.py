"""API keys of the service, kept in the gallery's own database (table `api_keys`): only each
key's SHA-256 and its first characters are stored; the key itself is shown once, when made.

Roles: `admin` may do everything; `recognize` may identify, verify, embed and read, but not
enrol, rename or delete.
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: GalleryStore, role: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key of `role`: (its record, the key — shown once, not stored).

    Raises:
        ConfigError: an unknown role.
    """
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = {
        "name": name or role,
        "role": role,
        "sha256": _digest(key),
        "prefix": key[: len(KEY_PREFIX) + 6],
        "created_at": now(),
        "revoked_at": None,
    }
    with store.transaction() as conn:
        key_id = conn.execute(api_keys_table.insert().values(**row)).inserted_primary_key[0]
    record = ApiKey(int(key_id), row["name"], role, row["prefix"], row["created_at"], None)
    return record, key


def list_keys(store: GalleryStore) -> list[ApiKey]:
    """Every key made, revoked ones included, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys_table).order_by(api_keys_table.c.id)).all()
    return [ApiKey(r.id, r.name, r.role, r.prefix, r.created_at, r.revoked_at) for r in rows]


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
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(api_keys_table.c.role).where(
                (api_keys_table.c.sha256 == _digest(key)) & api_keys_table.c.revoked_at.is_(None)
            )
        ).scalar_one_or_none()
