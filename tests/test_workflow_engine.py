"""The workflow engine without a database: definitions and their checks, guards with their reasons, deadlines."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from casework.auth.roles import ROLES
from casework.workflow import (
    Facts,
    TransitionRefused,
    WorkflowDefinitionError,
    available_transitions,
    check_transition,
    compute_deadline,
    load_all,
    load_definition,
)
from casework.workflow.deadlines import add_hours, add_working_days
from config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN)


def end_of(year: int, month: int, day: int) -> datetime:
    return local(year, month, day, 23, 59, 59)


# --- deadlines -----------------------------------------------------------------------------------------------------


def test_working_days_skip_the_weekend():
    assert add_working_days(local(2026, 3, 13, 14, 0), 5) == end_of(2026, 3, 20)  # Friday to next Friday
    assert add_working_days(local(2026, 3, 12, 9, 0), 2) == end_of(2026, 3, 16)  # Thursday to Monday


def test_a_report_on_saturday_counts_from_monday():
    assert add_working_days(local(2026, 3, 14, 10, 0), 1) == end_of(2026, 3, 16)


def test_working_days_skip_tet_2026():
    # Tết Bính Ngọ: Monday 16 to Friday 20 February 2026, between two weekends (14-22 February off).
    assert add_working_days(local(2026, 2, 12, 9, 0), 1) == end_of(2026, 2, 13)
    assert add_working_days(local(2026, 2, 12, 9, 0), 2) == end_of(2026, 2, 23)
    assert add_working_days(local(2026, 2, 13, 10, 0), 5) == end_of(2026, 2, 27)


def test_working_days_skip_tet_2027():
    # Tết Đinh Mùi: Thursday 4 to Wednesday 10 February 2027 (the weekend in between).
    assert add_working_days(local(2027, 2, 3, 9, 0), 1) == end_of(2027, 2, 11)
    assert add_working_days(local(2027, 2, 3, 9, 0), 5) == end_of(2027, 2, 17)


def test_working_days_skip_30_april_and_1_may():
    # 2026: Thursday 30 April and Friday 1 May, then the weekend.
    assert add_working_days(local(2026, 4, 29, 16, 0), 1) == end_of(2026, 5, 4)
    # 2027: Friday 30 April, Saturday 1 May observed on Monday 3 May.
    assert add_working_days(local(2027, 4, 29, 16, 0), 1) == end_of(2027, 5, 4)


def test_working_days_skip_the_observed_hung_kings_day():
    # 10/3 lunar fell on Sunday 26 April 2026, observed on Monday 27 April.
    assert add_working_days(local(2026, 4, 24, 9, 0), 1) == end_of(2026, 4, 28)


def test_working_days_count_the_local_day_of_a_utc_time():
    # 18:00 UTC on Monday is 01:00 on Tuesday in Hà Nội: the count starts from Tuesday.
    assert add_working_days(datetime(2026, 3, 9, 18, 0, tzinfo=UTC), 1) == end_of(2026, 3, 11)


def test_twelve_hours_run_across_midnight_in_vietnam():
    assert add_hours(local(2026, 3, 10, 20, 30), 12) == local(2026, 3, 11, 8, 30)
    # The same report given in UTC (13:30Z) is due at 08:30 local time.
    due = add_hours(datetime(2026, 3, 10, 13, 30, tzinfo=UTC), 12)
    assert due == local(2026, 3, 11, 8, 30)
    assert due.tzinfo == VN


def test_hours_run_through_tet():
    assert add_hours(local(2026, 2, 16, 22, 0), 12) == local(2026, 2, 17, 10, 0)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        add_hours(datetime(2026, 3, 10, 8, 0), 12)
    with pytest.raises(ValueError, match="naive"):
        add_working_days(datetime(2026, 3, 10, 8, 0), 5)


# --- definitions: each kind of broken file is refused, naming the file and the problem -----------------------------

VALID = """
[workflow]
label = { vi = "Thử", en = "Test" }
initial = "open"

[[stages]]
id = "open"
label = { vi = "Mở", en = "Open" }
DEADLINE

[[stages]]
id = "done"
label = { vi = "Xong", en = "Done" }
final = true

[[transitions]]
id = "finish"
from = "open"
to = "done"
label = { vi = "Kết thúc", en = "Finish" }
roles = ["social_worker"]
conditions = []
"""


def write(tmp_path: Path, text: str, name: str = "broken.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(WorkflowDefinitionError) as info:
        load_definition(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_a_small_valid_definition_loads(tmp_path):
    definition = load_definition(write(tmp_path, VALID.replace("DEADLINE", ""), "mine.toml"))
    assert definition.name == "mine"
    assert list(definition.stages) == ["open", "done"]


def test_definition_errors_are_configuration_errors():
    assert issubclass(WorkflowDefinitionError, ConfigError)


def test_transition_to_an_unknown_stage_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace('to = "done"', 'to = "plannd"')
    assert "transition 1 goes to unknown stage 'plannd'" in refusal(tmp_path, text)


def test_unreachable_stage_is_refused(tmp_path):
    text = (
        VALID.replace("DEADLINE", "")
        + """
[[stages]]
id = "limbo"
label = { vi = "Lơ lửng", en = "Limbo" }

[[transitions]]
id = "leave_limbo"
from = "limbo"
to = "done"
label = { vi = "Ra", en = "Out" }
roles = ["supervisor"]
"""
    )
    assert "stage 'limbo' is unreachable from the initial stage 'open'" in refusal(tmp_path, text)


def test_unknown_role_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace('roles = ["social_worker"]', 'roles = ["caseworker"]')
    assert "transition 1 names unknown role 'caseworker'" in refusal(tmp_path, text)


@pytest.mark.parametrize(
    ("deadline", "problem"),
    [
        ("deadline = { hours = 0 }", "hours must be a whole number of at least 1, not 0"),
        ('deadline = { working_days = "5" }', "working_days must be a whole number of at least 1"),
        ("deadline = { hours = 12, working_days = 5 }", "needs exactly one of 'hours' or 'working_days'"),
        ("deadline = { days = 5 }", "has unknown key 'days'"),
        ('deadline = { hours = 12, from = "reported" }', "counts from unknown anchor 'reported'"),
    ],
)
def test_bad_deadline_is_refused(tmp_path, deadline, problem):
    message = refusal(tmp_path, VALID.replace("DEADLINE", deadline))
    assert "stage 'open' deadline" in message
    assert problem in message


def test_unknown_condition_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace("conditions = []", 'conditions = ["has_planned_servise"]')
    assert "transition 1 names unknown condition 'has_planned_servise'" in refusal(tmp_path, text)


def test_duplicate_stage_is_refused(tmp_path):
    text = (
        VALID.replace("DEADLINE", "")
        + """
[[stages]]
id = "open"
label = { vi = "Mở lại", en = "Open again" }
"""
    )
    assert "stage 3: duplicate stage 'open'" in refusal(tmp_path, text)


def test_stage_id_that_cannot_be_stored_is_refused(tmp_path):
    text = (
        VALID.replace("DEADLINE", "").replace('id = "done"', 'id = "Đã xong"').replace('to = "done"', 'to = "Đã xong"')
    )
    assert "stage 2: id 'Đã xong' must be lower-case ASCII" in refusal(tmp_path, text)


def test_missing_initial_stage_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace('initial = "open"\n', "")
    assert "[workflow] has no initial stage" in refusal(tmp_path, text)


def test_initial_stage_that_is_not_a_stage_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace('initial = "open"', 'initial = "opened"')
    assert "initial stage 'opened' is not a stage" in refusal(tmp_path, text)


def test_unknown_effect_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace("conditions = []", 'conditions = []\neffects = ["aprove_plan"]')
    assert "transition 1 names unknown effect 'aprove_plan'" in refusal(tmp_path, text)


def test_bad_province_list_is_refused(tmp_path):
    text = VALID.replace("DEADLINE", "").replace('initial = "open"', 'initial = "open"\nprovinces = ["Quảng Ninh"]')
    assert "'provinces' must be a list of two-digit province codes" in refusal(tmp_path, text)


def test_two_workflows_cannot_claim_one_province(tmp_path):
    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    claimed = VALID.replace("DEADLINE", "").replace('initial = "open"', 'initial = "open"\nprovinces = ["22"]')
    write(tmp_path, claimed, "a_first.toml")
    second = write(tmp_path, claimed, "b_second.toml")
    with pytest.raises(
        WorkflowDefinitionError, match=f"^{second}: province '22' is already given to workflow 'a_first'"
    ):
        load_all(tmp_path)


def test_invalid_toml_is_refused_naming_the_file(tmp_path):
    assert "not valid TOML" in refusal(tmp_path, "[workflow\n")


def test_load_all_needs_a_default_definition(tmp_path):
    write(tmp_path, VALID.replace("DEADLINE", ""), "province_22.toml")
    with pytest.raises(WorkflowDefinitionError, match=r"no default\.toml"):
        load_all(tmp_path)


def test_a_province_adds_a_definition_without_code(tmp_path):
    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    write(tmp_path, VALID.replace("DEADLINE", 'deadline = { working_days = 3, from = "received" }'), "quang_ninh.toml")
    definitions = load_all(tmp_path)
    assert set(definitions) == {"default", "quang_ninh"}
    assert definitions["quang_ninh"].stage("open").deadline.working_days == 3


def test_load_all_names_the_broken_file(tmp_path):
    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    broken = write(tmp_path, VALID.replace("DEADLINE", "").replace('to = "done"', 'to = "dne"'), "ha_noi.toml")
    with pytest.raises(WorkflowDefinitionError, match=f"^{broken}: transition 1 goes to unknown stage 'dne'"):
        load_all(tmp_path)


# --- the default definition ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default():
    return load_all(WORKFLOWS)["default"]


def test_default_definition_loads_and_every_stage_is_reachable(default):
    assert default.initial == "report_received"  # Case.stage's default
    reached, frontier = {default.initial}, [default.initial]
    while frontier:
        for transition in default.transitions_from(frontier.pop()):
            if transition.to not in reached:
                reached.add(transition.to)
                frontier.append(transition.to)
    assert reached == set(default.stages)
    assert all(t.roles <= set(ROLES) for t in default.transitions)
    assert all(stage.label.vi and stage.label.en for stage in default.stages.values())


def test_default_follows_decree_56(default):
    forms = {stage.form for stage in default.stages.values()}
    assert {"Mẫu 01", "Mẫu 02", "Mẫu 03", "Mẫu 04", "Mẫu 05", "Mẫu 06"} <= forms
    assert default.stage("plan_drafting").deadline.working_days == 5
    assert default.stage("plan_approval").deadline.working_days == 7
    assert default.stage("emergency_intervention").deadline.hours == 12
    assert {t.to for t in default.transitions_from("review")} == {"plan_drafting", "closed"}


# --- guards and their reasons --------------------------------------------------------------------------------------

WORKER = SimpleNamespace(role="social_worker")
SUPERVISOR = SimpleNamespace(role="supervisor")


def case(stage: str, *, immediate_danger: bool = False, closed: bool = False):
    closed_at = datetime(2026, 3, 1, tzinfo=UTC) if closed else None
    return SimpleNamespace(stage=stage, immediate_danger=immediate_danger, closed_at=closed_at)


def option(default, the_case, user, facts, to):
    options = {o.to: o for o in available_transitions(default, the_case, user, facts)}
    return options[to]


def reason_of(opt) -> str:
    assert not opt.open
    return str(opt.reason)


def test_open_transitions_from_a_new_report(default):
    options = available_transitions(default, case("report_received"), WORKER, Facts())
    assert [(o.to, o.open) for o in options] == [
        ("initial_assessment", True),
        ("emergency_intervention", True),
        ("closed", False),
    ]
    assert options[0].label.for_locale("vi") == "Bắt đầu đánh giá nguy cơ ban đầu"
    assert options[0].label.for_locale("en") == "Start the initial risk assessment"


def test_wrong_role_cannot_approve_a_plan(default):
    facts = Facts(has_planned_service=True, plan_approved=True)
    opt = option(default, case("plan_approval"), WORKER, facts, "support")
    assert reason_of(opt) == "Your role cannot take this step."


def test_a_plan_without_a_planned_service_cannot_be_submitted(default):
    opt = option(default, case("plan_drafting"), WORKER, Facts(), "plan_approval")
    assert reason_of(opt) == "The plan needs at least one planned service."
    assert option(default, case("plan_drafting"), WORKER, Facts(has_planned_service=True), "plan_approval").open


def test_a_plan_cannot_be_carried_out_before_approval(default):
    # Taking approve_plan is the supervisor's decision (Mẫu 05): a worker cannot, and the review needs it done.
    assert option(default, case("plan_approval"), SUPERVISOR, Facts(has_planned_service=True), "support").open
    assert "approve_plan" in next(t for t in default.transitions if t.id == "approve_plan").effects
    opt = option(default, case("support"), WORKER, Facts(has_planned_service=True), "review")
    assert reason_of(opt) == "The plan cannot be carried out before a supervisor approves it."
    approved = Facts(has_planned_service=True, plan_approved=True)
    assert option(default, case("support"), WORKER, approved, "review").open


def test_closing_needs_a_reason(default):
    opt = option(default, case("review"), SUPERVISOR, Facts(), "closed")
    assert reason_of(opt) == "Closing needs a reason."


def test_closing_needs_a_known_reason(default):
    opt = option(default, case("review"), SUPERVISOR, Facts(closure_reason="bored"), "closed")
    assert reason_of(opt) == "bored is not a known closure reason."


def test_closing_needs_a_supervisors_approval(default):
    opt = option(default, case("review"), WORKER, Facts(closure_reason="risk_removed"), "closed")
    assert reason_of(opt) == "Closing needs a supervisor's approval."
    approved = Facts(closure_reason="risk_removed", supervisor_approved_closure=True)
    assert option(default, case("review"), WORKER, approved, "closed").open
    assert option(default, case("review"), SUPERVISOR, Facts(closure_reason="goals_met"), "closed").open


def test_every_reason_is_listed(default):
    opt = option(default, case("review"), WORKER, Facts(), "closed")
    assert [str(r) for r in opt.reasons] == ["Closing needs a reason.", "Closing needs a supervisor's approval."]


def test_a_child_in_danger_cannot_leave_assessment_without_an_emergency_measure(default):
    in_danger = case("initial_assessment", immediate_danger=True)
    opt = option(default, in_danger, WORKER, Facts(), "detailed_assessment")
    assert reason_of(opt).startswith("The child is in immediate danger")
    assert option(default, in_danger, WORKER, Facts(), "emergency_intervention").open
    assert option(default, in_danger, WORKER, Facts(emergency_measure_recorded=True), "detailed_assessment").open
    opt = option(default, case("detailed_assessment", immediate_danger=True), WORKER, Facts(), "plan_drafting")
    assert reason_of(opt).startswith("The child is in immediate danger")
    # A child not in danger goes on without one.
    assert option(default, case("initial_assessment"), WORKER, Facts(), "detailed_assessment").open


def test_the_emergency_path_needs_the_measure_recorded(default):
    opt = option(default, case("emergency_intervention"), WORKER, Facts(), "detailed_assessment")
    assert reason_of(opt) == "Record the emergency measure or temporary separation first."


def test_a_closed_case_refuses_every_step_but_reopening(default):
    opt = option(default, case("support", closed=True), SUPERVISOR, Facts(), "review")
    assert reason_of(opt) == "The case is closed; reopen it first."
    options = available_transitions(default, case("closed", closed=True), SUPERVISOR, Facts())
    assert [(o.to, o.open) for o in options] == [("initial_assessment", True)]


def test_reopening_is_for_a_supervisor(default):
    opt = option(default, case("closed", closed=True), WORKER, Facts(), "initial_assessment")
    assert reason_of(opt) == "Your role cannot take this step."


def test_a_case_outside_the_users_area_opens_nothing(default):
    options = available_transitions(default, case("report_received"), WORKER, Facts(in_scope=False))
    assert options and all(str(o.reason) == "This case is outside your area." for o in options)


def test_check_transition_raises_the_reason(default):
    with pytest.raises(TransitionRefused, match="The plan needs at least one planned service.") as info:
        check_transition(default, case("plan_drafting"), WORKER, Facts(), "plan_approval")
    assert info.value.code == "transition_refused"
    assert info.value.status == 409
    with pytest.raises(TransitionRefused) as info:
        check_transition(default, case("plan_drafting"), WORKER, Facts(), "closed_forever")
    assert info.value.code == "no_such_transition"
    taken = check_transition(default, case("plan_drafting"), WORKER, Facts(has_planned_service=True), "plan_approval")
    assert taken.id == "submit_plan"


# --- deadlines from the definition ---------------------------------------------------------------------------------


def test_the_plan_is_due_within_5_working_days(default):
    entered = local(2026, 2, 12, 15, 0)  # Thursday before Tết
    assert compute_deadline(default, "plan_drafting", {"entered": entered}) == end_of(2026, 2, 26)


def test_approval_counts_7_working_days_from_the_start_of_drafting(default):
    anchors = {"entered": local(2026, 4, 27, 9, 0), "plan_drafting": local(2026, 4, 22, 9, 0)}
    # Thu 23, Fri 24, (Mon 27 Hùng Kings observed), Tue 28, Wed 29, (30/4, 1/5, weekend), Mon 4, Tue 5, Wed 6 May.
    assert compute_deadline(default, "plan_approval", anchors) == end_of(2026, 5, 6)


def test_a_child_in_danger_is_due_an_emergency_measure_within_12_hours(default):
    received = local(2026, 3, 10, 20, 30)
    anchors = {"received": received, "entered": received}
    assert compute_deadline(default, "report_received", anchors) is None
    assert compute_deadline(default, "report_received", anchors, immediate_danger=True) == local(2026, 3, 11, 8, 30)
    entered_emergency = {"received": received, "entered": local(2026, 3, 11, 1, 0)}
    assert compute_deadline(default, "emergency_intervention", entered_emergency) == local(2026, 3, 11, 8, 30)


def test_a_stage_without_a_deadline_has_none(default):
    assert compute_deadline(default, "support", {"entered": local(2026, 3, 10, 9, 0)}) is None


def test_a_missing_anchor_is_an_error(default):
    with pytest.raises(KeyError, match="plan_drafting"):
        compute_deadline(default, "plan_approval", {"entered": local(2026, 3, 10, 9, 0)})


# --- start-up ------------------------------------------------------------------------------------------------------


def test_a_broken_definition_stops_the_application_at_start_up_naming_the_file(tmp_path, app_env):
    from tests.conftest import build_app

    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    broken = write(tmp_path, VALID.replace("DEADLINE", "").replace('roles = ["social_worker"]', 'roles = ["chairman"]'))
    with pytest.raises(WorkflowDefinitionError, match=f"^{broken}: transition 1 names unknown role 'chairman'"):
        build_app(app_env | {"CASEWORK_WORKFLOWS_DIR": str(tmp_path)})


def test_a_province_workflow_is_what_its_new_cases_follow(tmp_path, app_env):
    from casework.workflow import registry
    from tests.conftest import build_app

    shutil.copy(WORKFLOWS / "default.toml", tmp_path / "default.toml")
    write(
        tmp_path,
        VALID.replace("DEADLINE", "").replace('initial = "open"', 'initial = "open"\nprovinces = ["22"]'),
        "quang_ninh.toml",
    )
    app = build_app(app_env | {"CASEWORK_WORKFLOWS_DIR": str(tmp_path)})
    with app.app_context():
        assert registry.workflow_for_province("22").name == "quang_ninh"
        assert registry.workflow_for_province("01").name == "default"
        assert registry.definition("removed_since").name == "default"
