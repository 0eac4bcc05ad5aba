"""Personal API keys: how they are made, stored (SHA-256 only), compared and what they allow.

Pure functions, no I/O: looking keys up belongs to ``api.deps``, creating them to ``api.admin``.
The plaintext of a key exists only in the response to its creation; it is never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

READ_SCOPE = "error_tracking:read"
WRITE_SCOPE = "error_tracking:write"
ALL_SCOPES = "*"
KNOWN_SCOPES = frozenset({READ_SCOPE, WRITE_SCOPE, ALL_SCOPES})

KEY_PREFIX = "swk_"
# 30 random bytes are 40 url-safe characters: 240 bits, far beyond guessing.
_KEY_RANDOM_BYTES = 30


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_RANDOM_BYTES)


def hash_key(plaintext: str) -> str:
    """What the database stores: the hex SHA-256 of the key (a random key needs no salt)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def mask_key(plaintext: str) -> str:
    """Enough of a key for a person to recognise it in a list, never enough to use it."""
    return f"{plaintext[: len(KEY_PREFIX)]}...{plaintext[-4:]}"


def key_matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)


def has_scope(granted: Iterable[str], required: str) -> bool:
    """``*`` grants everything, and a write scope includes reading (as in the reference)."""
    granted = set(granted)
    if ALL_SCOPES in granted or required in granted:
        return True
    return required == READ_SCOPE and WRITE_SCOPE in granted


def may_access_project(project_ids: list[int] | None, project_id: int) -> bool:
    """A key with no project list may touch every project; otherwise only those listed."""
    return project_ids is None or project_id in project_ids
