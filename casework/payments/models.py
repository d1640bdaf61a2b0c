"""Programmes, the approval policy, payment requests, their decisions and their disbursement.

Money is whole VND in ``BigInteger`` columns. A programme's ``committed_vnd`` (approved, not yet paid) and
``paid_vnd`` move only through conditional ``UPDATE`` statements (:mod:`casework.payments.operations`), and a
check constraint keeps their sum within the budget, so no race can overdraw it. The payee's details and the
description are encrypted: they identify a family.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db
from casework.security.fields import Encrypted

STATUSES = ("draft", "submitted", "returned", "approved", "rejected", "paid")
DECISIONS = ("approve", "reject", "return")
PAYEE_METHODS = ("bank", "cash")


class Programme(db.Model):
    """A funding programme's budget for one province and year, and what is committed and paid from it."""

    __tablename__ = "programmes"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("budget_vnd > 0", name="positive_budget"),
        CheckConstraint("committed_vnd >= 0 AND paid_vnd >= 0", name="no_negative_totals"),
        CheckConstraint("committed_vnd + paid_vnd <= budget_vnd", name="within_budget"),
        UniqueConstraint("province_code", "year", "name", name="one_name_per_province_year"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    budget_vnd: Mapped[int] = mapped_column(BigInteger)
    committed_vnd: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_vnd: Mapped[int] = mapped_column(BigInteger, default=0)
    purposes: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every purpose
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)  # special_circumstances/at_risk codes; empty: all
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def available_vnd(self) -> int:
        return self.budget_vnd - self.committed_vnd - self.paid_vnd


class ApprovalBand(db.Model):
    """Who decides a request of an amount: the roles of the approvers, in order (two roles: two approvers).

    A band applies to a province (``province_code``) and a programme (``programme_id``), either of which may be
    empty (any); the most specific bands that exist for a request decide, by amount (``min_vnd`` <= amount, and
    amount < ``max_vnd`` when set). ``casework init`` leaves the default bands of the issue in force.
    """

    __tablename__ = "approval_bands"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("min_vnd >= 1", name="positive_minimum"),
        CheckConstraint("max_vnd IS NULL OR max_vnd > min_vnd", name="ordered_band"),
        Index("ix_approval_bands_scope", "province_code", "programme_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    programme_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("programmes.id"))
    min_vnd: Mapped[int] = mapped_column(BigInteger)
    max_vnd: Mapped[int | None] = mapped_column(BigInteger)
    approver_roles: Mapped[list[str]] = mapped_column(JSON)


class PaymentRequest(db.Model):
    """A request to pay a family (or a provider) for a child's case, from a programme, with its receipts."""

    __tablename__ = "payment_requests"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("amount_vnd > 0", name="positive_amount"),
        CheckConstraint(
            "status IN ('draft', 'submitted', 'returned', 'approved', 'rejected', 'paid')", name="known_status"
        ),
        CheckConstraint("payee_method IN ('bank', 'cash')", name="known_method"),
        Index("ix_payment_requests_inbox", "status", "next_role", "commune_code", "submitted_at"),
        Index("ix_payment_requests_programme_status", "programme_id", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    # Where the case was when the request was made: whose scope it is in.
    commune_code: Mapped[str] = mapped_column(ForeignKey("communes.code"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"), index=True)
    programme_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("programmes.id"))
    purpose: Mapped[str] = mapped_column(String(32))  # ``payment_purposes`` in codes.toml
    amount_vnd: Mapped[int] = mapped_column(BigInteger)
    payee_name = Encrypted()
    payee_relation = Encrypted()
    payee_method: Mapped[str] = mapped_column(String(8))
    payee_account = Encrypted()  # bank and account number, when paid by bank
    description = Encrypted()
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # The approvers' roles in order, fixed when the request is submitted, and how many have approved this round.
    approver_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    approvals: Mapped[int] = mapped_column(Integer, default=0)
    next_role: Mapped[str | None] = mapped_column(String(32))  # whose decision is awaited (the inbox's key)
    round: Mapped[int] = mapped_column(Integer, default=0)  # submissions so far (a returned request goes again)
    requested_by_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the final approval or the rejection
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class PaymentDecision(db.Model):
    """One approver's decision on one step of one submission: unique, so a request is decided once per step."""

    __tablename__ = "payment_decisions"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("decision IN ('approve', 'reject', 'return')", name="known_decision"),
        UniqueConstraint("payment_id", "round", "step", name="one_decision_per_step"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payment_requests.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(8))
    reason = Encrypted()
    decided_by_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Disbursement(db.Model):
    """The payment made: when, how, and its reference. One per request: a paid request is never paid again."""

    __tablename__ = "disbursements"
    __audited__ = True
    __table_args__ = (
        UniqueConstraint("payment_id", name="paid_once"),
        CheckConstraint("method IN ('bank', 'cash')", name="known_method"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payment_requests.id"))
    paid_on: Mapped[date] = mapped_column(Date, index=True)
    method: Mapped[str] = mapped_column(String(8))
    reference = Encrypted()
    recorded_by_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
