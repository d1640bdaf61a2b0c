"""The application's workflows: every definition in ``CASEWORK_WORKFLOWS_DIR``, read and checked at start-up.

A broken definition stops :func:`casework.create_app` with a :class:`WorkflowDefinitionError` naming the file and
the problem. A case follows the workflow it names (``Case.workflow``); a new case follows its province's workflow
(``provinces = [...]`` in a definition's ``[workflow]`` table), else ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, current_app

from casework.workflow.definition import DEFAULT_WORKFLOW, Definition, load_all

_KEY = "casework.workflows"


def init_app(app: Flask) -> None:
    app.extensions[_KEY] = load_all(app.config["CASEWORK_WORKFLOWS_DIR"])


def definitions() -> Mapping[str, Definition]:
    return current_app.extensions[_KEY]


def definition(name: str | None) -> Definition:
    """The workflow ``name``; a case naming a workflow that has since been removed follows the default."""
    found = definitions()
    return found.get(name or DEFAULT_WORKFLOW) or found[DEFAULT_WORKFLOW]


def workflow_for_province(province_code: str) -> Definition:
    """The workflow a new case in ``province_code`` follows."""
    found = definitions()
    for name, candidate in sorted(found.items()):
        if name != DEFAULT_WORKFLOW and province_code in candidate.provinces:
            return candidate
    return found[DEFAULT_WORKFLOW]
