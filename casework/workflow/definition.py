"""Workflow definitions: the TOML files in ``workflows/`` read into frozen dataclasses, and checked.

A definition that cannot work (an unknown stage, a stage no case can reach, an unknown role or condition, a bad
deadline, ...) is refused with a :class:`WorkflowDefinitionError` that names the file and the problem, so a broken
file stops start-up instead of stranding cases. The file format is described in ``workflows/README.md``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casework.auth.roles import ROLES
from config import ConfigError

#: The workflow a case follows unless it names another (``Case.workflow``).
DEFAULT_WORKFLOW = "default"

#: Anchors every case has; a deadline may also count from the last time the case entered a named stage.
RECEIVED = "received"  # the report was received (``Case.received_at``)
ENTERED = "entered"  # the case entered the stage the deadline belongs to
BASE_ANCHORS = frozenset({RECEIVED, ENTERED})

#: Stage ids are stored in ``cases.stage`` (String(64)).
_STAGE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")

_WORKFLOW_KEYS = {"label", "initial", "legal_basis", "provinces"}
_STAGE_KEYS = {"id", "label", "form", "final", "deadline", "danger_deadline", "note"}
_TRANSITION_KEYS = {"id", "from", "to", "label", "roles", "conditions", "effects", "note"}
_DEADLINE_KEYS = {"hours", "working_days", "from", "rule"}


#: What a transition may do besides moving the case, by name (carried out by ``casework.support.operations``).
EFFECTS = {
    "submit_plan": "the current support plan is submitted for approval (Mẫu 04 → Mẫu 05)",
    "approve_plan": "the current plan is approved by the one taking the transition (Mẫu 05 decision)",
    "return_plan": "the current plan goes back to its author for changes",
    "new_plan_cycle": "the current plan ends and a new one is drafted (Art. 30)",
}


class WorkflowDefinitionError(ConfigError):
    """A workflow definition is broken; the message starts with the file's path."""


@dataclass(frozen=True)
class Label:
    """A name for people, in Vietnamese and English."""

    vi: str
    en: str

    def for_locale(self, locale: str | None) -> str:
        """The label in ``locale`` ("vi", "en", "en_GB", ...), Vietnamese when it is neither."""
        return self.en if (locale or "vi")[:2] == "en" else self.vi

    def __str__(self) -> str:
        return self.vi


@dataclass(frozen=True)
class Deadline:
    """Exactly one of ``hours`` (calendar time) or ``working_days``, counted from the anchor ``start``."""

    start: str
    hours: int | None = None
    working_days: int | None = None
    rule: str = ""


@dataclass(frozen=True)
class Stage:
    id: str
    label: Label
    form: str = ""
    final: bool = False
    deadline: Deadline | None = None
    #: Replaces ``deadline`` when it is earlier and the child is in immediate danger (the 12-hour path).
    danger_deadline: Deadline | None = None


@dataclass(frozen=True)
class Transition:
    id: str
    number: int  # 1-based position in the file, for messages
    sources: tuple[str, ...]
    to: str
    label: Label
    roles: frozenset[str]
    conditions: tuple[str, ...]
    effects: tuple[str, ...] = ()  # what taking it does to the support plan (``EFFECTS``)


@dataclass(frozen=True)
class Definition:
    name: str
    path: str
    label: Label
    initial: str
    stages: Mapping[str, Stage]  # in file order
    transitions: tuple[Transition, ...]
    legal_basis: str = ""
    provinces: frozenset[str] = frozenset()  # new cases in these provinces follow this workflow

    def stage(self, stage_id: str) -> Stage:
        """The stage ``stage_id``; :raises KeyError: it is not a stage of this workflow."""
        return self.stages[stage_id]

    def transitions_from(self, stage_id: str) -> list[Transition]:
        return [t for t in self.transitions if stage_id in t.sources]


class _Reader:
    """Parses one file's table, raising errors prefixed with the file's path."""

    def __init__(self, path: str, roles: Collection[str], conditions: Collection[str]) -> None:
        self.path = path
        self.roles = roles
        self.conditions = conditions

    def fail(self, problem: str) -> WorkflowDefinitionError:
        return WorkflowDefinitionError(f"{self.path}: {problem}")

    def table(self, value: Any, where: str, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{where} has unknown key {unknown[0]!r}")
        return value

    def text(self, table: dict, key: str, where: str, *, required: bool = True) -> str:
        value = table.get(key, "" if not required else None)
        if value is None:
            raise self.fail(f"{where} has no {key!r}")
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{where}: {key!r} must be a non-empty string")
        return value

    def label(self, table: dict, where: str) -> Label:
        raw = table.get("label")
        if not isinstance(raw, dict) or not all(isinstance(raw.get(lang), str) and raw[lang] for lang in ("vi", "en")):
            raise self.fail(f'{where} needs label = {{ vi = "...", en = "..." }}')
        return Label(vi=raw["vi"], en=raw["en"])

    def deadline(self, raw: Any, where: str, stage_ids: Collection[str]) -> Deadline | None:
        if raw is None:
            return None
        raw = self.table(raw, where, _DEADLINE_KEYS)
        units = [key for key in ("hours", "working_days") if key in raw]
        if len(units) != 1:
            raise self.fail(f"{where} needs exactly one of 'hours' or 'working_days'")
        amount = raw[units[0]]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise self.fail(f"{where}: {units[0]} must be a whole number of at least 1, not {amount!r}")
        start = raw.get("from", ENTERED)
        if start not in BASE_ANCHORS and start not in stage_ids:
            raise self.fail(f"{where} counts from unknown anchor {start!r} (use 'received', 'entered' or a stage id)")
        return Deadline(start=start, rule=str(raw.get("rule", "")), **{units[0]: amount})

    def read(self, name: str, data: dict) -> Definition:
        if "workflow" not in data:
            raise self.fail("no [workflow] table")
        workflow = self.table(data["workflow"], "[workflow]", _WORKFLOW_KEYS)
        unknown = sorted(set(data) - {"workflow", "stages", "transitions"})
        if unknown:
            raise self.fail(f"unknown top-level key {unknown[0]!r}")

        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise self.fail("no stages (declare each with [[stages]])")
        tables = [self.table(raw, f"stage {n}", _STAGE_KEYS) for n, raw in enumerate(raw_stages, 1)]
        stage_ids: list[str] = []
        for n, raw in enumerate(tables, 1):
            stage_id = self.text(raw, "id", f"stage {n}")
            if not _STAGE_ID.fullmatch(stage_id):
                raise self.fail(
                    f"stage {n}: id {stage_id!r} must be lower-case ASCII letters, digits and _ (64 at most)"
                )
            if stage_id in stage_ids:
                raise self.fail(f"stage {n}: duplicate stage {stage_id!r}")
            stage_ids.append(stage_id)
        stages: dict[str, Stage] = {}
        for stage_id, raw in zip(stage_ids, tables, strict=True):
            where = f"stage {stage_id!r}"
            final = raw.get("final", False)
            if not isinstance(final, bool):
                raise self.fail(f"{where}: 'final' must be true or false")
            stages[stage_id] = Stage(
                id=stage_id,
                label=self.label(raw, where),
                form=self.text(raw, "form", where, required=False),
                final=final,
                deadline=self.deadline(raw.get("deadline"), f"{where} deadline", stage_ids),
                danger_deadline=self.deadline(raw.get("danger_deadline"), f"{where} danger_deadline", stage_ids),
            )

        if "initial" not in workflow:
            raise self.fail("[workflow] has no initial stage ('initial')")
        initial = workflow["initial"]
        if initial not in stages:
            raise self.fail(f"initial stage {initial!r} is not a stage")

        provinces = workflow.get("provinces", [])
        if not isinstance(provinces, list) or not all(
            isinstance(p, str) and re.fullmatch(r"[0-9]{2}", p) for p in provinces
        ):
            raise self.fail("[workflow]: 'provinces' must be a list of two-digit province codes")
        if name == DEFAULT_WORKFLOW and provinces:
            raise self.fail("[workflow]: the default workflow applies everywhere; it takes no 'provinces'")

        transitions = self._transitions(data.get("transitions", []), stages)
        self._check_graph(initial, stages, transitions)
        return Definition(
            name=name,
            path=self.path,
            label=self.label(workflow, "[workflow]"),
            initial=initial,
            stages=stages,
            transitions=tuple(transitions),
            legal_basis=self.text(workflow, "legal_basis", "[workflow]", required=False),
            provinces=frozenset(provinces),
        )

    def _transitions(self, raw_list: Any, stages: Mapping[str, Stage]) -> list[Transition]:
        if not isinstance(raw_list, list):
            raise self.fail("transitions must be declared with [[transitions]]")
        transitions: list[Transition] = []
        seen_ids: set[str] = set()
        seen_pairs: set[tuple[str, str]] = set()
        for n, raw in enumerate(raw_list, 1):
            where = f"transition {n}"
            raw = self.table(raw, where, _TRANSITION_KEYS)
            transition_id = self.text(raw, "id", where)
            if transition_id in seen_ids:
                raise self.fail(f"{where}: duplicate transition id {transition_id!r}")
            seen_ids.add(transition_id)
            sources = raw.get("from")
            sources = [sources] if isinstance(sources, str) else sources
            if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
                raise self.fail(f"{where} needs 'from': a stage id or a list of them")
            for source in sources:
                if source not in stages:
                    raise self.fail(f"{where} comes from unknown stage {source!r}")
            to = self.text(raw, "to", where)
            if to not in stages:
                raise self.fail(f"{where} goes to unknown stage {to!r}")
            for source in sources:
                if (source, to) in seen_pairs:
                    raise self.fail(f"{where}: a second transition from {source!r} to {to!r}")
                seen_pairs.add((source, to))
            roles = raw.get("roles")
            if not isinstance(roles, list) or not roles:
                raise self.fail(f"{where} needs 'roles': the roles that may take it")
            for role in roles:
                if role not in self.roles:
                    raise self.fail(f"{where} names unknown role {role!r}")
            conditions = raw.get("conditions", [])
            if not isinstance(conditions, list):
                raise self.fail(f"{where}: 'conditions' must be a list of names")
            for condition in conditions:
                if condition not in self.conditions:
                    raise self.fail(f"{where} names unknown condition {condition!r}")
            effects = raw.get("effects", [])
            if not isinstance(effects, list):
                raise self.fail(f"{where}: 'effects' must be a list of names")
            for effect in effects:
                if effect not in EFFECTS:
                    raise self.fail(f"{where} names unknown effect {effect!r}")
            transitions.append(
                Transition(
                    id=transition_id,
                    number=n,
                    sources=tuple(sources),
                    to=to,
                    label=self.label(raw, where),
                    roles=frozenset(roles),
                    conditions=tuple(conditions),
                    effects=tuple(effects),
                )
            )
        return transitions

    def _check_graph(self, initial: str, stages: Mapping[str, Stage], transitions: list[Transition]) -> None:
        reached = {initial}
        frontier = [initial]
        while frontier:
            here = frontier.pop()
            for transition in transitions:
                if here in transition.sources and transition.to not in reached:
                    reached.add(transition.to)
                    frontier.append(transition.to)
        unreachable = [stage_id for stage_id in stages if stage_id not in reached]
        if unreachable:
            raise self.fail(f"stage {unreachable[0]!r} is unreachable from the initial stage {initial!r}")
        for stage in stages.values():
            if not stage.final and not any(stage.id in t.sources for t in transitions):
                raise self.fail(f"stage {stage.id!r} is a dead end: not final, and no transition leaves it")
        if not any(stage.final for stage in stages.values()):
            raise self.fail("no final stage (mark the closing stage with final = true)")


def load_definition(
    path: str | Path,
    *,
    roles: Collection[str] = ROLES,
    conditions: Collection[str] | None = None,
) -> Definition:
    """Read and check the definition in ``path``; its name is the file's stem.

    :param conditions: the condition names a transition may use (default: the engine's registry).
    :raises WorkflowDefinitionError: the file is unreadable or the definition is broken; the message names both.
    """
    if conditions is None:
        # Imported here: the engine imports this module for the dataclasses.
        from casework.workflow.engine import CONDITIONS

        conditions = CONDITIONS
    shown = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise WorkflowDefinitionError(f"{shown}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowDefinitionError(f"{shown}: not valid TOML ({exc})") from exc
    return _Reader(shown, roles, conditions).read(Path(path).stem, data)


def load_all(directory: str | Path = "workflows") -> dict[str, Definition]:
    """Read and check every ``*.toml`` definition in ``directory``, by name; the ``default`` one must be there.

    :raises WorkflowDefinitionError: a definition is broken, or there is no default.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise WorkflowDefinitionError(f"{folder}: the workflow directory does not exist")
    definitions = {path.stem: load_definition(path) for path in sorted(folder.glob("*.toml"))}
    if DEFAULT_WORKFLOW not in definitions:
        raise WorkflowDefinitionError(
            f"{folder}: no {DEFAULT_WORKFLOW}.toml (the workflow a case follows unless it names another)"
        )
    claimed: dict[str, str] = {}
    for name, found in definitions.items():
        for province in sorted(found.provinces):
            if province in claimed:
                raise WorkflowDefinitionError(
                    f"{found.path}: province {province!r} is already given to workflow {claimed[province]!r}"
                )
            claimed[province] = name
    return definitions
