"""Home pages per role, language choice and the health check."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy import func, select, text

from casework import i18n
from casework.auth.models import User
from casework.auth.roles import FINANCE_OFFICER, PROVINCIAL_OFFICER, ROLES, SOCIAL_WORKER, SUPERVISOR
from casework.cases import operations as case_operations
from casework.cases import search as case_search
from casework.extensions import db
from casework.jobs import redis_connection
from casework.locations.models import Commune, Province
from casework.payments import operations as payment_operations

bp = Blueprint("main", __name__)


@bp.get("/")
def home():
    """Show the signed-in user's home page, which depends on their role."""
    if current_user.role not in ROLES:
        abort(403)
    province = db.session.get(Province, current_user.province_code)
    communes = db.session.scalars(
        select(Commune).where(Commune.code.in_(current_user.commune_codes)).order_by(Commune.name)
    ).all()
    context = {"province": province, "communes": communes}
    if current_user.role == "admin":
        context["user_count"] = db.session.scalar(
            select(func.count(User.id)).where(User.province_code == current_user.province_code)
        )
    if current_user.role in {"provincial_officer", "committee_member"}:
        context["commune_count"] = db.session.scalar(
            select(func.count(Commune.code)).where(Commune.province_code == current_user.province_code)
        )
    context.update(_caseload_context(current_user._get_current_object()))
    return render_template(f"home/{current_user.role}.html", **context)


#: How many cases a home page lists before it links to the full search.
HOME_LIST = 10
#: How many of a worker's open cases their home page lists, the most urgent first; the counts above the list are of
#: all of them, and the search lists the rest page by page.
HOME_CASELOAD = 50


def _caseload_context(user: User) -> dict:
    """What a record role's home page shows: a worker's open cases, a supervisor's team, the overdue cases."""
    if user.role == SOCIAL_WORKER:
        total, late = case_search.caseload_counts(user)
        return {
            "caseload": case_search.caseload(user, limit=HOME_CASELOAD),
            "open_count": total,
            "overdue_count": late,
        }
    if user.role == SUPERVISOR:
        return {
            "team": case_search.team_caseload(user),
            "unassigned": case_search.search(user, case_search.Filters(unassigned=True), per_page=HOME_LIST),
            "overdue": case_search.search(user, case_search.Filters(overdue=True), per_page=HOME_LIST),
            "incoming_referrals": case_operations.incoming_referrals(user),
            "awaiting_payments": payment_operations.awaiting_decision(user, limit=HOME_LIST),
        }
    if user.role == PROVINCIAL_OFFICER:
        return {"overdue": case_search.search(user, case_search.Filters(overdue=True), per_page=HOME_LIST)}
    if user.role == FINANCE_OFFICER:
        return {"to_disburse": payment_operations.to_disburse(user)}
    return {}


@bp.get("/lang/<code>")
def set_language(code: str):
    """Switch the interface language and go back where the user was."""
    if code not in i18n.LANGUAGES:
        abort(404)
    session["lang"] = code
    target = request.args.get("next") or ""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = url_for("main.home")
    return redirect(target)


@bp.get("/healthz")
def healthz():
    """Report whether the database and Redis answer (200 when the database does, 503 otherwise)."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means unreachable
        db.session.rollback()
        checks["database"] = "unreachable"
    try:
        connection = redis_connection()
        if connection is None:
            checks["redis"] = "not_configured"
        else:
            connection.ping()
            checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        checks["redis"] = "unreachable"
    healthy = checks["database"] == "ok" and checks["redis"] != "unreachable"
    status = "ok" if healthy else "degraded"
    return jsonify(status=status, **checks), (200 if checks["database"] == "ok" else 503)
