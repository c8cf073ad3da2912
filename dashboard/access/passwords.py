"""Password hashing: Argon2id through argon2-cffi, with its RFC 9106 defaults."""
from __future__ import annotations

import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

HASHER = PasswordHasher()
MIN_LENGTH = 8

_dummy: str | None = None
_dummy_lock = threading.Lock()


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    return HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return HASHER.check_needs_rehash(stored)


def burn_time(password: str) -> None:
    """Verify against a hash nobody has, so a name that does not exist costs what a wrong
    password costs (an unknown name and a known one take the same time to refuse)."""
    global _dummy
    with _dummy_lock:
        if _dummy is None:
            _dummy = HASHER.hash(secrets.token_urlsafe(16))
    verify_password(_dummy, password)


def generate_password() -> str:
    """A password for a generated account: 16 URL-safe characters, ~96 bits."""
    return secrets.token_urlsafe(12)
