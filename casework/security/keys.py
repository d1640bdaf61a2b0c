"""Keys: the master key outside the database, data keys wrapped by it, and keys derived per purpose.

- The **master key** (32 random bytes) lives in a file (``CASEWORK_MASTER_KEY_FILE``, default
  ``<instance>/master.key``, mode 0600) or in ``CASEWORK_MASTER_KEY``; it never enters the database or a log.
  From it, HKDF derives the key-encryption key (which wraps data keys) and the audit keys.
- **Data keys** (32 random bytes each) are stored in ``data_keys`` wrapped with AES-256-GCM under the
  key-encryption key. One is *current* (new values use it); older ones stay *active* (readable) until every value
  has been re-encrypted and the key is retired.
- **Per-purpose keys** are derived with HKDF-SHA256 from a data key: one per encrypted column, one per blind-index
  column, one per file. No key is used for two purposes.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app
from sqlalchemy import Boolean, CheckConstraint, String, Text, false, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column

from casework.dbtypes import UTCDateTime, utcnow
from casework.extensions import db
from config import ConfigError

logger = logging.getLogger(__name__)

KEY_BYTES = 32
KEY_ID_LENGTH = 8
REFRESH_SECONDS = 10.0


class MasterKeyError(ConfigError):
    """A key is missing, unreadable or wrong; the message says which, never the key itself."""


class DataKey(db.Model):
    """A data key, wrapped under the master key."""

    __tablename__ = "data_keys"
    __table_args__ = (CheckConstraint("status IN ('current', 'active', 'retired')", name="known_status"),)

    id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    wrapped: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Every blind-index entry under this key has the name pairs (``Encrypted(pairs=True)``): true for the keys
    #: created since pairs were written; a key of before keeps false, and its entries the single words only, until
    #: a rotation replaces it (``casework keys rotate``, then ``retire``).
    pair_terms: Mapped[bool] = mapped_column(Boolean, server_default=false())


def hkdf(key: bytes, info: str, length: int = KEY_BYTES) -> bytes:
    """Derive a key for one purpose (``info``) from ``key``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(key)


def generate_master_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_master_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_master_key(text: str, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (ValueError, TypeError):
        raise MasterKeyError(f"the master key in {source} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"the master key in {source} has {len(key)} bytes, not {KEY_BYTES}")
    return key


def write_master_key_file(path: Path, key: bytes | None = None) -> None:
    """Create the master key file with mode 0600; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(encode_master_key(key or generate_master_key()) + "\n")


def read_master_key(app: Flask) -> bytes:
    """Read the master key from ``CASEWORK_MASTER_KEY`` or the key file, refusing a file others can read."""
    inline = app.config.get("CASEWORK_MASTER_KEY")
    if inline:
        return decode_master_key(inline, "CASEWORK_MASTER_KEY")
    path = Path(app.config["CASEWORK_KEY_FILE"])
    if not path.is_file():
        raise MasterKeyError(f"the master key file {path} does not exist; run `casework init`")
    if path.stat().st_mode & 0o077:
        raise MasterKeyError(f"the master key file {path} is readable by other users; run: chmod 600 {path}")
    return decode_master_key(path.read_text(), str(path))


@dataclass
class _Loaded:
    keys: dict[str, bytes]
    current: str | None
    loaded_at: float
    paired: frozenset[str] = frozenset()  # the keys with pair_terms


class Keyring:
    """The keys of one application: unwraps data keys and derives per-purpose keys, all in memory."""

    def __init__(self, master_key: bytes) -> None:
        self._kek = hkdf(master_key, "casework/key-encryption")
        self._audit = hkdf(master_key, "casework/audit-chain")
        self._checkpoint = hkdf(master_key, "casework/audit-checkpoint")
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._derived: dict[tuple[str, str], bytes] = {}

    # -- master-derived keys ----------------------------------------------------------------------------------

    @property
    def audit_key(self) -> bytes:
        return self._audit

    @property
    def checkpoint_key(self) -> bytes:
        return self._checkpoint

    # -- data keys -------------------------------------------------------------------------------------------------

    def wrap(self, key_id: str, key: bytes) -> str:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._kek).encrypt(nonce, key, f"casework data key {key_id}".encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def unwrap(self, key_id: str, wrapped: str) -> bytes:
        raw = base64.urlsafe_b64decode(wrapped.encode())
        try:
            return AESGCM(self._kek).decrypt(raw[:12], raw[12:], f"casework data key {key_id}".encode())
        except InvalidTag:
            raise MasterKeyError(
                f"the master key does not open data key {key_id}: wrong master key file, or the key row was altered"
            ) from None

    def load(self) -> _Loaded:
        """(Re)load the data keys from the database.

        Without flushing the session: a reload comes in the middle of sealing a value, and a flush there would write
        the record half-made and then again (a new case born at version 2, a change counted twice).
        """
        with db.session.no_autoflush:
            rows = db.session.execute(
                select(DataKey.id, DataKey.wrapped, DataKey.status, DataKey.pair_terms).where(
                    DataKey.status != "retired"
                )
            ).all()
        keys = {kid: self.unwrap(kid, wrapped) for kid, wrapped, _, _ in rows}
        current = next((kid for kid, _, status, _ in rows if status == "current"), None)
        paired = frozenset(kid for kid, _, _, pairs in rows if pairs)
        with self._lock:
            self._loaded = _Loaded(keys=keys, current=current, loaded_at=time.monotonic(), paired=paired)
        return self._loaded

    def _state(self, *, fresh: bool = False) -> _Loaded:
        loaded = self._loaded
        if fresh or loaded is None or time.monotonic() - loaded.loaded_at > REFRESH_SECONDS:
            loaded = self.load()
        return loaded

    def current_key_id(self) -> str:
        state = self._state()
        if state.current is None:
            state = self._state(fresh=True)
        if state.current is None:
            raise MasterKeyError("there is no current data key; run `casework init`")
        return state.current

    def key_ids(self) -> list[str]:
        """Every readable data key, current first."""
        state = self._state()
        current = state.current
        return sorted(state.keys, key=lambda kid: (kid != current, kid))

    def pairs_everywhere(self) -> bool:
        """Whether every readable key's index entries have the name pairs (a lookup may then use them)."""
        state = self._state()
        return bool(state.keys) and set(state.keys) <= state.paired

    def data_key(self, key_id: str) -> bytes:
        state = self._state()
        if key_id not in state.keys:
            state = self._state(fresh=True)
        try:
            return state.keys[key_id]
        except KeyError:
            raise MasterKeyError(f"data key {key_id} is unknown or retired") from None

    def derived(self, key_id: str, purpose: str) -> bytes:
        """The key for ``purpose`` derived from data key ``key_id`` (cached)."""
        cache_key = (key_id, purpose)
        key = self._derived.get(cache_key)
        if key is None:
            key = hkdf(self.data_key(key_id), purpose)
            self._derived[cache_key] = key
        return key

    def forget(self) -> None:
        with self._lock:
            self._loaded = None
            self._derived.clear()


def _new_key_id() -> str:
    return secrets.token_hex(KEY_ID_LENGTH // 2)


def create_data_key(ring: Keyring, *, make_current: bool = True) -> DataKey:
    """Create a data key; the current one (if any) becomes active (readable, no longer used for new values)."""
    kid = _new_key_id()
    while db.session.get(DataKey, kid) is not None:
        kid = _new_key_id()
    if make_current:
        for old in db.session.scalars(select(DataKey).where(DataKey.status == "current").with_for_update()):
            old.status = "active"
    status = "current" if make_current else "active"
    key = DataKey(id=kid, wrapped=ring.wrap(kid, secrets.token_bytes(KEY_BYTES)), status=status, pair_terms=True)
    db.session.add(key)
    db.session.flush()
    ring.forget()
    return key


def ensure_data_key(ring: Keyring) -> DataKey | None:
    """Create the first data key when there is none (``casework init``)."""
    if db.session.scalar(select(DataKey.id).where(DataKey.status == "current")) is None:
        return create_data_key(ring)
    return None


def keyring() -> Keyring:
    """The keyring of the current application."""
    ring = current_app.extensions.get("casework_keyring")
    if ring is None:
        ring = Keyring(read_master_key(current_app))
        current_app.extensions["casework_keyring"] = ring
    return ring


def init_app(app: Flask) -> None:
    """Read the master key and check, when the database is reachable, that it opens the data keys.

    A wrong master key stops start-up with a clear message instead of showing garbage later. An unreachable
    database or a schema not yet created defers the check to first use.
    """
    from casework.security import tasks  # noqa: F401 - registers the re-encryption job

    no_key_yet = not app.config.get("CASEWORK_MASTER_KEY") and not Path(app.config["CASEWORK_KEY_FILE"]).exists()
    if no_key_yet and app.config.get("CASEWORK_CONFIG") != "production":
        # Embedded and testing: `casework init` creates the key file; until then nothing can be encrypted.
        app.extensions.pop("casework_keyring", None)
        return
    ring = Keyring(read_master_key(app))  # a malformed or exposed key stops start-up
    app.extensions["casework_keyring"] = ring
    with app.app_context():
        try:
            ring.load()
        except (OperationalError, ProgrammingError) as exc:
            db.session.rollback()
            logger.info("data keys not checked at start-up (%s)", exc.__class__.__name__)
        finally:
            db.session.remove()
