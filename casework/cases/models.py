"""Children (the case registry issue adds cases, intake and the rest).

What statistics need stays plaintext: commune code, sex, birth year or estimated age, ethnicity, disability.
Everything that identifies a child is encrypted (``Encrypted``), searchable through blind indexes where a worker
looks it up: names by word, the personal ID and phone numbers by digits.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db
from casework.security.fields import DIGITS, WORDS, Encrypted


class Child(db.Model):
    """A child, identified by encrypted details and counted by plaintext statistical fields."""

    __tablename__ = "children"
    __table_args__ = (
        CheckConstraint("sex IN ('female', 'male', 'unknown')", name="known_sex"),
        CheckConstraint("birth_year IS NULL OR (birth_year >= 1990 AND birth_year <= 2100)", name="plausible_year"),
        CheckConstraint("estimated_age IS NULL OR (estimated_age >= 0 AND estimated_age <= 25)", name="plausible_age"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # Encrypted: who the child is.
    full_name = Encrypted(index=WORDS)
    other_names = Encrypted(index=WORDS)
    date_of_birth = Encrypted(kind="date")
    national_id = Encrypted(index=DIGITS)
    address = Encrypted()
    guardian_name = Encrypted(index=WORDS)
    guardian_phone = Encrypted(index=DIGITS)
    # Plaintext: what statistics count.
    sex: Mapped[str] = mapped_column(String(16))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    estimated_age: Mapped[int | None] = mapped_column(Integer)
    ethnicity: Mapped[str | None] = mapped_column(String(2))
    has_disability: Mapped[bool] = mapped_column(Boolean, default=False)
    disability_kind: Mapped[str | None] = mapped_column(String(32))
    commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
