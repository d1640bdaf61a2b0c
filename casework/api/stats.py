"""``/api/v1/stats``: a province's (or a commune's) indicators for a period, with their breakdowns, as JSON.

The numbers are those of :func:`casework.stats.operations.report`, the same the dashboard and the exports show,
suppressed for the caller's role: a committee member gets small counts as "<k" and their complements as "×"; a
provincial officer of the province gets the numbers as they are. Roles that never see statistics get 403
``forbidden`` before anything is computed, another province 403 ``out_of_scope``, bad dates or an unknown commune
or breakdown 422. Each answer is recorded in the audit trail as an export.
"""

from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from casework import scope
from casework.api import ApiError, bp
from casework.extensions import db
from casework.stats import operations


@bp.get("/stats")
def stats():
    """Answer the indicators the caller may see, for ``province``, ``commune``, ``from``/``to`` (or ``year``, ``half``)
    and ``breakdown``, with the previous period beside each and the new cases of each month."""
    if not scope.can_view_statistics(current_user):
        raise ApiError(403, "forbidden", "Your role does not see statistics.")
    viewer = current_user._get_current_object()
    args = request.args
    province_code = (args.get("province") or viewer.province_code or "").strip()
    commune_code = (args.get("commune") or "").strip() or None
    operations.check_scope(viewer, province_code, None)  # another province: 403 out_of_scope, before the dates
    period = operations.choose_period(
        None, year=args.get("year"), half=args.get("half"), date_from=args.get("from"), date_to=args.get("to")
    )
    report_ = operations.report(
        viewer,
        province_code,
        period,
        commune_code=commune_code,
        dimension=(args.get("breakdown") or "").strip() or None,
    )
    series = operations.monthly_series(viewer, province_code, period, commune_code)
    operations.record_export(viewer, report_, "json")
    db.session.commit()
    return jsonify({**report_.as_dict(), "new_cases_by_month": series.as_dict()})
