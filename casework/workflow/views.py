"""The administrators' view of the case workflows: each definition the application loaded, drawn as a diagram.

Read-only: the definitions are files in ``CASEWORK_WORKFLOWS_DIR`` (``workflows/README.md``), read at start-up;
this page shows what the running application actually follows. Administrators and supervisors may look.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from casework import i18n, scope
from casework.extensions import db
from casework.locations.models import Province
from casework.workflow import diagram, registry
from casework.workflow.definition import DEFAULT_WORKFLOW, Definition

bp = Blueprint("workflows", __name__)

#: What each condition a definition may name checks (the engine's ``CONDITIONS``), for people.
CONDITION_HELP = {
    "has_planned_service": _l("The plan has at least one planned service."),
    "plan_approved": _l("A supervisor has approved the plan."),
    "emergency_measure_recorded": _l("An emergency measure or temporary separation is recorded."),
    "safe_to_leave_assessment": _l(
        "The child is not flagged in immediate danger, or an emergency measure is recorded."
    ),
    "closure_reason": _l("A known closure reason is given."),
    "closure_approved": _l("A supervisor approved the closure, or a supervisor is closing the case."),
}

#: What each effect a transition may have does to the support plan (``EFFECTS``), for people.
EFFECT_HELP = {
    "submit_plan": _l("The current plan is submitted for approval."),
    "approve_plan": _l("The current plan is approved: the decision of the one taking the step."),
    "return_plan": _l("The current plan goes back to its author for changes."),
    "new_plan_cycle": _l("The current plan ends and a new one is drafted."),
}


def _require_reader() -> None:
    if not scope.can_view_workflows(current_user):
        abort(403)


def _province_names(definitions: list[Definition]) -> dict[str, str]:
    codes = sorted({code for definition in definitions for code in definition.provinces})
    if not codes:
        return {}
    return dict(db.session.execute(select(Province.code, Province.name).where(Province.code.in_(codes))).all())


def _ordered(found) -> list[Definition]:
    """The default workflow first, then the others by name."""
    return sorted(found.values(), key=lambda d: (d.name != DEFAULT_WORKFLOW, d.name))


@bp.get("/admin/workflows")
def list_workflows():
    """List the case workflows the application loaded, with the file each comes from."""
    _require_reader()
    definitions = _ordered(registry.definitions())
    return render_template(
        "workflows/list.html",
        definitions=definitions,
        province_names=_province_names(definitions),
        file_name=lambda d: Path(d.path).name,
        default_name=DEFAULT_WORKFLOW,
    )


@bp.get("/admin/workflows/<workflow_name>")
def show_workflow(workflow_name: str):
    """Show a workflow as a diagram, with the tables of its stages and transitions."""
    definition = registry.definitions().get(workflow_name)
    if definition is None:
        abort(404)
    _require_reader()
    locale = i18n.select_locale()
    # to_svg escapes every text it draws (the definition's labels come from a file an administrator wrote).
    svg = Markup(diagram.to_svg(definition, locale=locale))  # noqa: S704 - escaped inside to_svg
    return render_template(
        "workflows/show.html",
        definition=definition,
        svg=svg,
        locale=locale,
        province_names=_province_names([definition]),
        file_name=Path(definition.path).name,
        default_name=DEFAULT_WORKFLOW,
        deadline_words=lambda deadline: diagram.deadline_words(deadline, locale),
        condition_help=CONDITION_HELP,
        effect_help=EFFECT_HELP,
    )
