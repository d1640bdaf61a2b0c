"""Children and their cases: the registry social workers spend their day in.

What statistics need stays plaintext: unit codes, sex, birth year or estimated age, ethnicity, disability, the
codes of groups, risks and abuse, stages and dates of events. Everything that identifies a child or tells their
story is encrypted (``Encrypted``), searchable through blind indexes where a worker looks it up: names by word,
the personal ID and phone numbers by digits.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    and_,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db
from casework.security.fields import DIGITS, WORDS, Encrypted

#: Code lists whose codes a case carries several of (``codes.toml``).
CASE_CODE_LISTS = ("special_circumstances", "at_risk", "abuse_types")


class Child(db.Model):
    """A child, identified by encrypted details and counted by plaintext statistical fields."""

    __tablename__ = "children"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("sex IN ('female', 'male', 'unknown')", name="known_sex"),
        CheckConstraint("birth_year IS NULL OR (birth_year >= 1990 AND birth_year <= 2100)", name="plausible_year"),
        CheckConstraint("estimated_age IS NULL OR (estimated_age >= 0 AND estimated_age <= 25)", name="plausible_age"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # Encrypted: who the child is.
    full_name = Encrypted(index=WORDS, pairs=True)
    other_names = Encrypted(index=WORDS, pairs=True)
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
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))

    cases: Mapped[list[Case]] = relationship(back_populates="child", order_by="Case.received_at")


class SiblingLink(db.Model):
    """Two children known to be siblings (stored once, the smaller id first)."""

    __tablename__ = "sibling_links"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("child_a_id < child_b_id", name="ordered_pair"),
        UniqueConstraint("child_a_id", "child_b_id", name="one_link_per_pair"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    child_a_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("children.id"), index=True)
    child_b_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("children.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))


class CaseNumberSequence(db.Model):
    """The last case number given out per province and year (``22-2025-000123``)."""

    __tablename__ = "case_number_sequences"

    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Case(db.Model):
    """One report about one child and everything done about it, from intake to closure."""

    __tablename__ = "cases"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("risk_level IN ('low', 'medium', 'high')", name="known_risk_level"),
        CheckConstraint("version >= 1", name="positive_version"),
        CheckConstraint("(closed_at IS NULL) = (closure_reason IS NULL)", name="closure_has_reason"),
        Index("ix_cases_scope_deadline", "commune_code", "closed_at", "next_deadline_at"),
        Index("ix_cases_assigned_open", "assigned_to_id", "closed_at"),
        # A worker's caseload in its order (casework.cases.search.DEADLINE_ORDER), open cases only. PostgreSQL only:
        # SQLite takes no NULLS LAST in an index, and its embedded databases are a commune's, small enough to sort.
        Index(
            "ix_cases_caseload",
            "assigned_to_id",
            text("next_deadline_at ASC NULLS LAST"),
            text("received_at DESC"),
            postgresql_where=text("closed_at IS NULL"),
            postgresql_include=["commune_code"],  # a caseload's overdue count, scope included, from the index alone
        ).ddl_if(dialect="postgresql"),
        # The queue of open cases nobody holds yet, per commune: a supervisor's home page counts and lists it, and
        # without this read every open case of their communes to find the few unassigned (115 ms at 1,000,000).
        Index(
            "ix_cases_unassigned",
            "commune_code",
            "next_deadline_at",
            postgresql_where=text("closed_at IS NULL AND assigned_to_id IS NULL"),
            sqlite_where=text("closed_at IS NULL AND assigned_to_id IS NULL"),
        ),
        # A name search's candidate children -> their open cases in the user's area (casework.cases.search.
        # _matching_ids): 10 ms -> 3 ms for 1,500 candidates at 1,000,000 cases. Not the case id too: with it the
        # planner scanned the whole index for "id IN (...)" instead of reading the primary key.
        Index(
            "ix_cases_open_child",
            "child_id",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
            postgresql_include=["commune_code"],
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_number: Mapped[str] = mapped_column(String(20), unique=True)
    child_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("children.id"), index=True)
    commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"), index=True)
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(32))
    # Mẫu 01: the reporter's name, phone and address are kept only with their consent, and encrypted.
    reporter_name = Encrypted()
    reporter_phone = Encrypted(index=DIGITS)
    reporter_address = Encrypted()
    summary = Encrypted()
    risk_level: Mapped[str] = mapped_column(String(16))
    immediate_danger: Mapped[bool] = mapped_column(Boolean, default=False)
    stage: Mapped[str] = mapped_column(String(64), default="report_received", index=True)
    workflow: Mapped[str] = mapped_column(String(64), default="default")
    # When the case last entered its stage: the anchor of the stage's deadline (``workflows/*.toml``).
    stage_entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assigned_to_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    next_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closure_reason: Mapped[str | None] = mapped_column(String(32))
    import_fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Optimistic locking: a stale form's update matches no row and fails instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    child: Mapped[Child] = relationship(back_populates="cases")
    codes: Mapped[list[CaseCode]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="(CaseCode.list_name, CaseCode.code)"
    )

    def codes_of(self, list_name: str) -> list[str]:
        return [c.code for c in self.codes if c.list_name == list_name]

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class OpenCaseload(db.Model):
    """How many open cases a worker holds in a commune: the totals above a caseload, without counting it.

    Kept by the database itself, not by the app: triggers on ``cases`` (migration 0014) add one when a case is
    opened or assigned to the worker in the commune and take one away when it is closed, reassigned, moved to another
    commune or deleted, in the same transaction, whoever writes (the app, the importer, the demo loader, plain SQL).
    The app only reads it. Counting a caseload of 35,000 open cases cost 7-10 ms of PostgreSQL on every home page.
    """

    __tablename__ = "open_caseloads"

    assigned_to_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), primary_key=True)
    commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"), primary_key=True)
    open_cases: Mapped[int] = mapped_column(Integer)


class CaseTransition(db.Model):
    """A step of the case through its workflow: from which stage to which, by whom, when, and the worker's note.

    Kept for ever: reopening a closed case adds steps, it never removes one.
    """

    __tablename__ = "case_transitions"
    __audited__ = True
    __table_args__ = (Index("ix_case_transitions_case_to", "case_id", "to_stage", "at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"))
    transition: Mapped[str] = mapped_column(String(64))  # the transition's id in the definition
    from_stage: Mapped[str] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    closure_reason: Mapped[str | None] = mapped_column(String(32))
    note = Encrypted()
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseCode(db.Model):
    """A group of Article 10, an at-risk type or an abuse type that applies to a case."""

    __tablename__ = "case_codes"
    __table_args__ = (
        CheckConstraint("list_name IN ('special_circumstances', 'at_risk', 'abuse_types')", name="known_list"),
        Index("ix_case_codes_list_code", "list_name", "code"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    list_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(String(48), primary_key=True)

    case: Mapped[Case] = relationship(back_populates="codes")


class Consent(db.Model):
    """Consent under the Personal Data Protection Law 2025 (Art. 24: the child aged 7 or over, and the legal
    representative), or the legal basis relied on without it (Art. 19(1)); withdrawals are recorded and acted on."""

    __tablename__ = "consents"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("subject IN ('child', 'representative')", name="known_subject"),
        CheckConstraint("given OR basis IS NOT NULL", name="no_consent_needs_a_basis"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    subject: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(32))
    given: Mapped[bool] = mapped_column(Boolean)
    basis: Mapped[str | None] = mapped_column(String(48))
    note = Encrypted()
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))

    @hybrid_property
    def in_force(self) -> bool:
        """Given and not withdrawn: what may be relied on (in Python and in a query)."""
        return self.given and self.withdrawn_at is None

    @in_force.inplace.expression
    @classmethod
    def _in_force_expression(cls):
        return and_(cls.given.is_(True), cls.withdrawn_at.is_(None))


class CaseChange(db.Model):
    """One field changed on a case or its child: who, when, and the old and new values (encrypted)."""

    __tablename__ = "case_changes"

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    field: Mapped[str] = mapped_column(String(64))
    old_value = Encrypted()
    new_value = Encrypted()


class Assignment(db.Model):
    """Who held a case, from when to when: the history stays visible after transfers."""

    __tablename__ = "case_assignments"
    __audited__ = True

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    worker_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    assigned_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason = Encrypted()


class Referral(db.Model):
    """A case referred to another commune or province, which accepts or declines it."""

    __tablename__ = "case_referrals"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'accepted', 'declined', 'cancelled')", name="known_status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    from_commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"))
    to_commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason = Encrypted()
    # Sharing outside the commune needs recorded consent, or a supervisor's override with a reason.
    consent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("consents.id"))
    override_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    override_reason = Encrypted()
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note = Encrypted()


class CaseNote(db.Model):
    """A worker's note on a case (encrypted), with its author and time."""

    __tablename__ = "case_notes"
    __audited__ = True

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body = Encrypted()


class ImportBatch(db.Model):
    """One upload of a register: its dry run, its import, and what each row became."""

    __tablename__ = "import_batches"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("status IN ('uploaded', 'checked', 'imported', 'failed')", name="known_status"),
        UniqueConstraint("file_id", name="one_batch_per_file"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    file_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("stored_files.id"))
    commune_code: Mapped[str | None] = mapped_column(ForeignKey("communes.code"))
    status: Mapped[str] = mapped_column(String(16), default="uploaded")
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    error_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_rows: Mapped[int] = mapped_column(Integer, default=0)
    skipped_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
