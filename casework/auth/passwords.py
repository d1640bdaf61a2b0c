"""Password hashing with argon2id (argon2-cffi)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(time_cost=cfg["CASEWORK_ARGON2_TIME_COST"], memory_cost=cfg["CASEWORK_ARGON2_MEMORY_COST"])


def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Say whether ``password`` matches ``password_hash``; never raises for a wrong password."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


_DUMMY: dict[str, str] = {}


def burn_time(password: str) -> None:
    """Spend the time of one verification, so an unknown username answers as slowly as a known one."""
    key = f"{current_app.config['CASEWORK_ARGON2_TIME_COST']}:{current_app.config['CASEWORK_ARGON2_MEMORY_COST']}"
    if key not in _DUMMY:
        _DUMMY[key] = hash_password("casework-dummy-password")
    verify_password(_DUMMY[key], password)
