"""A case's timeline: every report, transition, assessment, measure, plan, service, visit, note, file, assignment,
referral, consent and closure request, in order.

Each entry says what happened (``kind``, a stable code, with ``title`` for people), when, by whom and, where it
helps, a short detail; the detail may hold decrypted text, so the timeline is shown only to whoever may open the
case, and showing it is audited as a view of the case. Areas above this one (payments) add their entries with
:func:`add_source`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from casework import codes
from casework.cases import operations as case_operations
from casework.cases.models import Assignment, Case, CaseNote, Consent, Referral
from casework.cases.stages import definition_of
from casework.extensions import db
from casework.i18n import local_tz
from casework.support import operations


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    title: str
    actor_id: uuid.UUID | None = None
    detail: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # codes and numbers, for the API

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.astimezone(UTC).isoformat(),
            "kind": self.kind,
            "title": self.title,
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "detail": self.detail,
            **({"facts": self.facts} if self.facts else {}),
        }


Source = Callable[[Case, str], Iterable[Entry]]
_SOURCES: list[Source] = []


def add_source(source: Source) -> None:
    """Register ``source(case, locale)``, which yields the timeline entries of one more kind of record."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def _on_day(day, recorded_at: datetime | None) -> datetime:
    """When a thing dated ``day`` happened, for ordering: the moment it was recorded if that was the same day (a
    session written up at once), else the start of the day."""
    tz = local_tz()
    if recorded_at is not None and recorded_at.astimezone(tz).date() == day:
        return recorded_at
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def _label(list_name: str, code: str | None, locale: str) -> str:
    return codes.label(list_name, code, locale) if code else ""


def _core(case: Case, locale: str) -> Iterable[Entry]:
    yield Entry(
        case.received_at,
        "report",
        str(_l("Report received (%(source)s)", source=_label("report_sources", case.source, locale))),
        case.created_by_id,
        case.summary,
        {"source": case.source, "channel": case.channel},
    )
    definition = definition_of(case)

    def stage_label(stage_id: str) -> str:
        stage = definition.stages.get(stage_id)
        return stage.label.for_locale(locale) if stage else stage_id

    for step in operations.transition_history(case):
        title = str(_l("%(from)s → %(to)s", **{"from": stage_label(step.from_stage), "to": stage_label(step.to_stage)}))
        if step.closure_reason:
            title += f" ({_label('closure_reasons', step.closure_reason, locale)})"
        yield Entry(
            step.at,
            "transition",
            title,
            step.actor_id,
            step.note,
            {"from": step.from_stage, "to": step.to_stage, "transition": step.transition},
        )
    kinds = {"initial": _l("Initial risk assessment"), "detailed": _l("Detailed assessment"), "review": _l("Review")}
    for a in operations.assessments_of(case):
        yield Entry(
            a.assessed_at,
            "assessment",
            str(_l("%(kind)s: risk %(level)s", kind=kinds[a.kind], level=_label("risk_levels", a.risk_level, locale))),
            a.assessed_by_id,
            a.override_reason,
            {"assessment": a.kind, "risk_level": a.risk_level, "suggested_level": a.suggested_level},
        )
    for m in operations.emergency_measures_of(case):
        yield Entry(
            m.taken_at,
            "emergency_measure",
            str(_l("Emergency measure: %(measure)s", measure=_label("emergency_measures", m.measure, locale))),
            m.recorded_by_id,
            m.note,
            {"measure": m.measure},
        )
    for plan in operations.plans_of(case):
        yield Entry(
            plan.created_at,
            "plan",
            str(_l("Support plan %(n)d started", n=plan.cycle)),
            plan.created_by_id,
            None,
            {"cycle": plan.cycle},
        )
        if plan.submitted_at:
            yield Entry(
                plan.submitted_at,
                "plan",
                str(_l("Support plan %(n)d submitted", n=plan.cycle)),
                None,
                None,
                {"cycle": plan.cycle},
            )
        if plan.decided_at:
            decided = _l("Support plan %(n)d approved", n=plan.cycle)
            if plan.status == "returned":
                decided = _l("Support plan %(n)d sent back", n=plan.cycle)
            yield Entry(
                plan.decided_at, "plan", str(decided), plan.decided_by_id, plan.decision_note, {"cycle": plan.cycle}
            )
    for s in operations.services_of(case):
        title = _label("service_types", s.service_type, locale)
        if s.referral_status:
            title = str(
                _l("%(service)s (referral: %(status)s)", service=title, status=_referral_label(s.referral_status))
            )
        yield Entry(
            _on_day(s.delivered_on, s.recorded_at),
            "service",
            title,
            s.recorded_by_id,
            s.notes,
            {"service_type": s.service_type, "referral_status": s.referral_status, "id": str(s.id)},
        )
    outcomes = {
        "stable": _l("stable"),
        "improving": _l("improving"),
        "concern": _l("a concern"),
        "danger": _l("in danger"),
    }
    for v in operations.visits_of(case):
        yield Entry(
            _on_day(v.visited_on, v.recorded_at),
            "visit",
            str(_l("Monitoring visit: %(outcome)s", outcome=outcomes[v.outcome])),
            v.recorded_by_id,
            v.notes,
            {"outcome": v.outcome},
        )
    for r in operations.closure_requests_of(case):
        reason = _label("closure_reasons", r.reason, locale)
        yield Entry(
            r.requested_at,
            "closure_request",
            str(_l("Closing requested: %(reason)s", reason=reason)),
            r.requested_by_id,
            r.note,
            {"reason": r.reason},
        )
        if r.decided_at:
            decided = _l("Closing approved") if r.status in ("approved", "used") else _l("Closing rejected")
            yield Entry(
                r.decided_at,
                "closure_request",
                str(decided),
                r.decided_by_id,
                r.decision_note,
                {"reason": r.reason, "status": r.status},
            )
    for note in db.session.scalars(select(CaseNote).where(CaseNote.case_id == case.id)):
        yield Entry(note.created_at, "note", str(_l("Note")), note.author_id, note.body)
    for stored in case_operations.files_of(case):
        yield Entry(
            stored.created_at,
            "file",
            str(_l("File attached: %(name)s", name=stored.original_name or "")),
            stored.created_by_id,
            None,
            {"id": str(stored.id)},
        )
    for a in db.session.scalars(select(Assignment).where(Assignment.case_id == case.id)):
        yield Entry(
            a.started_at, "assignment", str(_l("Assigned")), a.assigned_by_id, a.reason, {"worker_id": str(a.worker_id)}
        )
    for r in db.session.scalars(select(Referral).where(Referral.case_id == case.id)):
        yield Entry(
            r.requested_at,
            "referral",
            str(_l("Referred to commune %(code)s", code=r.to_commune_code)),
            r.requested_by_id,
            r.reason,
            {"to": r.to_commune_code, "status": r.status},
        )
    for c in db.session.scalars(select(Consent).where(Consent.case_id == case.id)):
        title = _l("Consent recorded") if c.given else _l("Legal basis recorded without consent")
        yield Entry(c.recorded_at, "consent", str(title), c.recorded_by_id, None, {"scope": c.scope})


def _referral_label(status: str) -> str:
    return str({"sent": _l("sent"), "accepted": _l("accepted"), "done": _l("done"), "declined": _l("declined")}[status])


add_source(_core)


def timeline(case: Case, locale: str = "vi") -> list[Entry]:
    """Every entry of the case, oldest first (ties in the order the sources give them)."""
    entries: list[Entry] = []
    for source in _SOURCES:
        entries.extend(source(case, locale))
    return sorted(entries, key=lambda e: e.at)
