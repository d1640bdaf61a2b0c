"""Computed statistics are kept until what they were computed from changes, and never shown stale."""

from __future__ import annotations

from sqlalchemy import func, select

from casework.cases import operations as case_operations
from casework.cases.models import Case
from casework.extensions import db
from casework.stats import operations
from casework.stats.models import StatsSnapshot, StatsVersion
from casework.stats.periods import Period

YEAR = Period.year(2026)


def intake(n: int) -> dict:
    return {
        "child": {"full_name": f"Trẻ Thử {n}", "sex": "female", "birth_year": 2014, "commune_code": "06970"},
        "categories": ["violence_harm"],
        "risk_level": "medium",
        "source": "school",
        "received_at": "2026-03-02T08:00:00+07:00",
        "summary": "Báo cáo thử.",
    }


def new_cases_total(viewer) -> int:
    report = operations.report(viewer, "22", YEAR, codes=["new_cases"])
    return report.indicators[0][0].grid.total


def test_a_report_is_kept_until_the_province_changes_and_never_shown_stale(app, make_user):
    worker = make_user("social_worker", communes=("06970",))
    officer = make_user("provincial_officer", province="22")
    case_operations.open_case(case_operations.validate_intake(intake(1), worker), worker)
    db.session.commit()
    assert new_cases_total(officer) == 1
    first = db.session.scalar(select(StatsSnapshot))
    computed_at = first.computed_at

    # Nothing changed: the same snapshot answers.
    assert new_cases_total(officer) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(StatsSnapshot)) == 1
    assert db.session.scalar(select(StatsSnapshot.computed_at)) == computed_at

    # A new case in the province moves its number in the same transaction: the next report counts it.
    version = db.session.scalar(select(StatsVersion.version).where(StatsVersion.province_code == "22"))
    case_operations.open_case(case_operations.validate_intake(intake(2), worker), worker)
    db.session.commit()
    assert db.session.scalar(select(StatsVersion.version).where(StatsVersion.province_code == "22")) > version
    assert new_cases_total(officer) == 2

    # A change that is rolled back moves nothing.
    version = db.session.scalar(select(StatsVersion.version).where(StatsVersion.province_code == "22"))
    case = db.session.scalar(select(Case).limit(1))
    case.source = "police"
    db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(StatsVersion.version).where(StatsVersion.province_code == "22")) == version


def test_snapshots_are_kept_apart_by_viewer_suppression(app, make_user):
    worker = make_user("social_worker", communes=("06970",))
    officer = make_user("provincial_officer", province="22")
    member = make_user("committee_member", province="22")
    for n in range(3):
        case_operations.open_case(case_operations.validate_intake(intake(n), worker), worker)
    db.session.commit()
    assert new_cases_total(officer) == 3
    assert operations.report(member, "22", YEAR, codes=["new_cases"]).indicators[0][0].total == "<5"
    assert operations.report(officer, "22", YEAR, codes=["new_cases"]).indicators[0][0].total == 3


def test_with_a_replica_the_indicators_are_read_from_it(app, app_env, make_user):
    """CASEWORK_REPLICA_URL sends the statistics' queries to the replica (here the same database under a second
    engine); the snapshot bookkeeping stays on the primary."""
    from sqlalchemy import event

    from tests.conftest import build_app

    worker = make_user("social_worker", communes=("06970",))
    officer = make_user("provincial_officer", province="22")
    case_operations.open_case(case_operations.validate_intake(intake(1), worker), worker)
    db.session.commit()
    replica_app = build_app(app_env | {"CASEWORK_REPLICA_URL": app.config["SQLALCHEMY_DATABASE_URI"]})
    seen: list[str] = []
    with replica_app.app_context():
        replica = db.engines["replica"]
        event.listen(replica, "before_cursor_execute", lambda *args: seen.append(args[2]))
        viewer = db.session.get(type(officer), officer.id)
        report = operations.report(viewer, "22", YEAR, codes=["new_cases"])
        assert report.indicators[0][0].grid.total == 1
        assert any("FROM cases" in statement for statement in seen)
        assert not any("stats_snapshots" in statement for statement in seen)
        db.session.remove()


def test_the_tick_computes_the_default_dashboards_of_changed_provinces_once(app, make_user):
    from casework.stats.indicators import today

    worker = make_user("social_worker", communes=("06970",))
    case_operations.open_case(case_operations.validate_intake(intake(1), worker), worker)
    db.session.commit()
    assert operations.refresh_stale() == 2  # suppressed and not, for province 22 only
    assert operations.refresh_stale() == 0  # nothing changed since
    officer = make_user("provincial_officer", province="22")
    db.session.commit()
    before = db.session.scalar(select(func.count()).select_from(StatsSnapshot))
    operations.report(officer, "22", Period.year(today().year), dimension="commune")
    assert db.session.scalar(select(func.count()).select_from(StatsSnapshot)) == before  # the viewer found it ready


def test_the_dashboard_may_show_recent_figures_saying_when_but_downloads_are_current(app, make_user):
    from datetime import timedelta

    from casework.dbtypes import utcnow

    worker = make_user("social_worker", communes=("06970",))
    officer = make_user("provincial_officer", province="22")
    case_operations.open_case(case_operations.validate_intake(intake(1), worker), worker)
    db.session.commit()
    assert operations.report(officer, "22", YEAR, codes=["new_cases"], allow_recent=True).indicators[0][0].total == 1
    case_operations.open_case(case_operations.validate_intake(intake(2), worker), worker)
    db.session.commit()
    # The dashboard may keep the figures of a minute ago (it says when they were computed) ...
    recent = operations.report(officer, "22", YEAR, codes=["new_cases"], allow_recent=True)
    assert recent.indicators[0][0].total == 1
    # ... downloads, the API and the CLI never do.
    assert new_cases_total(officer) == 2
    # Figures older than CASEWORK_STATS_STALE_MINUTES are computed again, for the dashboard too.
    db.session.execute(StatsSnapshot.__table__.update().values(computed_at=utcnow() - timedelta(minutes=16)))
    db.session.commit()
    case_operations.open_case(case_operations.validate_intake(intake(3), worker), worker)
    db.session.commit()
    assert operations.report(officer, "22", YEAR, codes=["new_cases"], allow_recent=True).indicators[0][0].total == 3


def test_the_months_of_new_cases_are_kept_like_the_indicators_and_current_where_it_matters(app, make_user):
    from datetime import timedelta

    from casework.dbtypes import utcnow

    worker = make_user("social_worker", communes=("06970",))
    officer = make_user("provincial_officer", province="22")
    case_operations.open_case(case_operations.validate_intake(intake(1), worker), worker)
    db.session.commit()
    march = YEAR.months().index((2026, 3))
    assert operations.monthly_series(officer, "22", YEAR, allow_recent=True).values[march] == 1
    kept = db.session.scalar(select(func.count()).select_from(StatsSnapshot))
    assert operations.monthly_series(officer, "22", YEAR, allow_recent=True).values[march] == 1
    assert db.session.scalar(select(func.count()).select_from(StatsSnapshot)) == kept  # counted once, then read

    case_operations.open_case(case_operations.validate_intake(intake(2), worker), worker)
    db.session.commit()
    # The dashboard may show the months of a minute ago; the API's series is current.
    assert operations.monthly_series(officer, "22", YEAR, allow_recent=True).values[march] == 1
    assert operations.monthly_series(officer, "22", YEAR).values[march] == 2
    # A commune's months are counted apart from the province's.
    assert operations.monthly_series(officer, "22", YEAR, "06970").values[march] == 2
    db.session.execute(StatsSnapshot.__table__.update().values(computed_at=utcnow() - timedelta(minutes=16)))
    db.session.commit()
    case_operations.open_case(case_operations.validate_intake(intake(3), worker), worker)
    db.session.commit()
    assert operations.monthly_series(officer, "22", YEAR, allow_recent=True).values[march] == 3
