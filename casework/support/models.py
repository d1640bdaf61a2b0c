"""What is done for a child once a case is open (Decree 56/2017, Chapter III): risk assessments (Mẫu 02, 03, 06),
emergency measures, support plans and their planned services (Mẫu 04, 05), the services delivered, monitoring
visits, and requests to close a case.

As in the registry, statistics keep plaintext codes and dates (which service, when, what risk level); the story
(notes, names of providers and people responsible, court references) is encrypted.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.dbtypes import UTCDateTime, utcnow, uuid_pk
from casework.extensions import db
from casework.security.fields import Encrypted

RATINGS = ("low", "medium", "high")
_RATED = "IN ('low', 'medium', 'high')"

ASSESSMENT_KINDS = ("initial", "detailed", "review")  # Mẫu 02, Mẫu 03, Mẫu 06
REVIEW_OUTCOMES = ("end", "new_plan", "continue")  # Art. 30: end the plan, or start a new cycle; or keep going
PLAN_STATUSES = ("draft", "submitted", "approved", "returned", "ended")
REFERRAL_STATUSES = ("sent", "accepted", "done", "declined")
SERVICE_OUTCOMES = ("completed", "ongoing", "not_delivered")
VISIT_OUTCOMES = ("stable", "improving", "concern", "danger")
CLOSURE_STATUSES = ("pending", "approved", "rejected", "used")


class Assessment(db.Model):
    """A risk assessment: initial (Mẫu 02), detailed with the case meeting (Mẫu 03) or a review (Mẫu 06).

    Each harm factor is rated with a note; the suggested level follows from the ratings
    (:func:`casework.support.operations.suggest_risk_level`) and the worker confirms it or overrides it with a reason.
    """

    __tablename__ = "assessments"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("kind IN ('initial', 'detailed', 'review')", name="known_kind"),
        CheckConstraint(f"harm_severity {_RATED}", name="rated_harm"),
        CheckConstraint(f"abuser_access {_RATED}", name="rated_access"),
        CheckConstraint(f"care_obstacles {_RATED}", name="rated_obstacles"),
        CheckConstraint(f"child_capacity {_RATED}", name="rated_capacity"),
        CheckConstraint(f"suggested_level {_RATED}", name="rated_suggestion"),
        CheckConstraint(f"risk_level {_RATED}", name="rated_level"),
        CheckConstraint(
            "review_outcome IS NULL OR review_outcome IN ('end', 'new_plan', 'continue')", name="known_outcome"
        ),
        Index("ix_assessments_case_at", "case_id", "assessed_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(16))
    harm_severity: Mapped[str] = mapped_column(String(8))  # how serious the harm is
    abuser_access: Mapped[str] = mapped_column(String(8))  # the abuser's access to the child
    care_obstacles: Mapped[str] = mapped_column(String(8))  # obstacles in the care environment
    child_capacity: Mapped[str] = mapped_column(String(8))  # the child's capacity to protect themself and recover
    harm_note = Encrypted()
    access_note = Encrypted()
    obstacles_note = Encrypted()
    capacity_note = Encrypted()
    suggested_level: Mapped[str] = mapped_column(String(8))
    risk_level: Mapped[str] = mapped_column(String(8))  # the level the worker confirmed
    override_reason = Encrypted()  # required when risk_level differs from suggested_level
    needs = Encrypted()  # the needs identified (Mẫu 03 case meeting)
    attendees = Encrypted()  # who attended the case meeting
    findings = Encrypted()  # the child's condition and the safety of the environment (Mẫu 06)
    review_outcome: Mapped[str | None] = mapped_column(String(16))
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assessed_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))


class EmergencyMeasure(db.Model):
    """An emergency measure or temporary separation (Decree 56/2017, Arts. 31–32), within 12 hours of the report."""

    __tablename__ = "emergency_measures"
    __audited__ = True

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    measure: Mapped[str] = mapped_column(String(32))  # ``emergency_measures`` in codes.toml
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    place = Encrypted()  # where the child is now safe
    note = Encrypted()
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SupportPlan(db.Model):
    """A support and intervention plan (Mẫu 04) and the decision on it (Mẫu 05); a review may start a new cycle."""

    __tablename__ = "support_plans"
    __audited__ = True
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'submitted', 'approved', 'returned', 'ended')", name="known_status"),
        UniqueConstraint("case_id", "cycle", name="one_plan_per_cycle"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    goals = Encrypted()
    review_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note = Encrypted()

    services: Mapped[list[PlannedService]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="PlannedService.position"
    )


class PlannedService(db.Model):
    """A service the plan commits to: which, who is responsible, by when."""

    __tablename__ = "planned_services"
    __audited__ = True

    id: Mapped[uuid.UUID] = uuid_pk()
    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("support_plans.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    service_type: Mapped[str] = mapped_column(String(32))  # ``service_types`` in codes.toml
    responsible = Encrypted()  # the people or agency responsible
    details = Encrypted()
    due_on: Mapped[date | None] = mapped_column(Date)

    plan: Mapped[SupportPlan] = relationship(back_populates="services")


class ServiceRecord(db.Model):
    """A service given to the child: a counselling session, psychological support, legal counselling or aid (with
    the proceedings it follows), medical care, education support, alternative care, ...

    A service from outside the commune is a referral with a status (sent, accepted, done, declined).
    """

    __tablename__ = "service_records"
    __audited__ = True
    __table_args__ = (
        CheckConstraint(
            "referral_status IS NULL OR referral_status IN ('sent', 'accepted', 'done', 'declined')",
            name="known_referral_status",
        ),
        CheckConstraint("outcome IN ('completed', 'ongoing', 'not_delivered')", name="known_outcome"),
        CheckConstraint("duration_minutes IS NULL OR duration_minutes BETWEEN 1 AND 10080", name="plausible_duration"),
        Index("ix_service_records_case_date", "case_id", "delivered_on"),
        Index("ix_service_records_type_date", "service_type", "delivered_on"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"))
    plan_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("support_plans.id"))
    service_type: Mapped[str] = mapped_column(String(32))
    delivered_on: Mapped[date] = mapped_column(Date)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16), default="completed")
    provider = Encrypted()
    notes = Encrypted()
    # A referral to a service outside the commune.
    referral_status: Mapped[str | None] = mapped_column(String(16))
    referral_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Legal aid: the provincial State legal aid centre, and the proceedings it follows.
    legal_aid_centre: Mapped[bool] = mapped_column(Boolean, default=False)
    police_report_ref = Encrypted()
    prosecution_ref = Encrypted()
    court_ref = Encrypted()
    hearing_on: Mapped[date | None] = mapped_column(Date)
    proceedings_outcome = Encrypted()
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MonitoringVisit(db.Model):
    """A visit to follow the child while the plan is carried out, with its outcome."""

    __tablename__ = "monitoring_visits"
    __audited__ = True
    __table_args__ = (CheckConstraint("outcome IN ('stable', 'improving', 'concern', 'danger')", name="known_outcome"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    visited_on: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(16))
    notes = Encrypted()
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClosureRequest(db.Model):
    """A worker's request to close a case, with its reason; a supervisor approves or rejects it, and the approved
    request is used by the closing transition."""

    __tablename__ = "closure_requests"
    __audited__ = True
    __table_args__ = (CheckConstraint("status IN ('pending', 'approved', 'rejected', 'used')", name="known_status"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("cases.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # ``closure_reasons`` in codes.toml
    note = Encrypted()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note = Encrypted()
