"""A province's statistics for a year over BENCH_STATS_CASES demo cases on PostgreSQL, beside the same figures
computed by hand-written SQL in the same run (the floor).

It starts a throw-away PostgreSQL 15 (or uses ``BENCH_DATABASE_URL`` with demo data already loaded), runs
``casework init`` and ``casework demo --cases N``, and times, alternating, warm:

- ``casework.stats.operations.report``: every indicator of the catalogue for the demo province and the current
  year and the year before, broken down by commune, suppressed as for a committee member (and unsuppressed, as for
  the province's officer);
- the dashboard page ``GET /stats`` as the demo committee member (test client, signed in), when it exists;
- the same report computed afresh, as after any change in the province (the snapshot no longer current), and the
  dashboard right after a change, which shows the figures of the last ``CASEWORK_STATS_STALE_MINUTES`` saying when;
- the floor: one hand-written SQL statement per indicator family (``GROUPING SETS``, ``FILTER``,
  ``percentile_cont``) giving the same totals and commune cells for both years.

Before timing, it checks that casework and the floor agree on every total and commune cell.

    make bench                                                  # both benchmarks
    BENCH_STATS_CASES=20000 .venv/bin/python -m bench.stats_bench
    BENCH_DATABASE_URL=postgresql+psycopg://... BENCH_INSTANCE=/path .venv/bin/python -m bench.stats_bench

Environment: ``BENCH_STATS_CASES`` (1000000), ``BENCH_STATS_ITERATIONS`` (15), ``BENCH_SEED`` (1),
``BENCH_RESULTS`` (bench/RESULTS.md; this benchmark writes the section after ``<!-- stats bench -->``).
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench.results import STATS, write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS.md")
MARKER = STATS
PROVINCE = "22"
DEMO_PASSWORD = "casework-demo"  # noqa: S105 - the demo accounts' published password (casework/demo.py)


# --- the floor: the same figures by hand-written SQL --------------------------------------------------------------

ACTIVE = "c.province_code = :p AND c.received_at < :e AND (c.closed_at IS NULL OR c.closed_at >= :s)"

FLOOR_SQL = {
    "codes": f"""
        SELECT cc.list_name, c.commune_code, count(DISTINCT c.child_id)
        FROM cases c JOIN case_codes cc ON cc.case_id = c.id
        WHERE {ACTIVE} AND cc.list_name IN ('special_circumstances', 'at_risk')
        GROUP BY GROUPING SETS ((cc.list_name, c.commune_code), (cc.list_name))""",  # noqa: S608 - constant SQL
    "new_cases": """
        SELECT c.commune_code, count(*) FROM cases c
        WHERE c.province_code = :p AND c.received_at >= :s AND c.received_at < :e
        GROUP BY GROUPING SETS ((c.commune_code), ())""",
    "abused": f"""
        WITH abused AS (
            SELECT c.child_id, c.commune_code FROM cases c
            WHERE {ACTIVE} AND EXISTS (SELECT 1 FROM case_codes cc WHERE cc.case_id = c.id
                                         AND cc.list_name = 'abuse_types')),
        given AS (
            SELECT c2.child_id,
                   bool_or(sr.service_type = 'counselling') AS co,
                   bool_or(sr.service_type = 'psychological_support') AS ps,
                   bool_or(sr.service_type IN ('legal_counselling', 'legal_aid')) AS le
            FROM service_records sr JOIN cases c2 ON c2.id = sr.case_id
            WHERE sr.delivered_on >= :sd AND sr.delivered_on <= :ed AND sr.outcome <> 'not_delivered'
              AND c2.child_id IN (SELECT child_id FROM abused)
            GROUP BY c2.child_id)
        SELECT a.commune_code, count(DISTINCT a.child_id),
               count(DISTINCT a.child_id) FILTER (WHERE g.co), count(DISTINCT a.child_id) FILTER (WHERE g.ps),
               count(DISTINCT a.child_id) FILTER (WHERE g.le),
               count(DISTINCT a.child_id) FILTER (WHERE g.co AND g.ps AND g.le)
        FROM abused a LEFT JOIN given g ON g.child_id = a.child_id
        GROUP BY GROUPING SETS ((a.commune_code), ())""",  # noqa: S608 - constant SQL
    "paid": """
        SELECT pr.commune_code, count(DISTINCT c.child_id) FILTER (WHERE pr.purpose = 'medical_treatment'),
               coalesce(sum(pr.amount_vnd) FILTER (WHERE pr.purpose = 'medical_treatment'), 0),
               coalesce(sum(pr.amount_vnd), 0)
        FROM payment_requests pr JOIN disbursements d ON d.payment_id = pr.id JOIN cases c ON c.id = pr.case_id
        WHERE pr.province_code = :p AND d.paid_on >= :sd AND d.paid_on <= :ed
        GROUP BY GROUPING SETS ((pr.commune_code), ())""",
    "closed": """
        SELECT c.commune_code, count(*) FROM cases c
        WHERE c.province_code = :p AND c.closed_at >= :s AND c.closed_at < :e
        GROUP BY GROUPING SETS ((c.commune_code), ())""",
    "overdue": """
        SELECT c.commune_code, count(*) FROM cases c
        WHERE c.province_code = :p AND c.received_at < :m AND c.closed_at IS NULL AND c.next_deadline_at < :m
        GROUP BY GROUPING SETS ((c.commune_code), ())""",
    "verification": """
        WITH first_exit AS (
            SELECT t.case_id, min(t.at) AS at FROM case_transitions t JOIN cases c ON c.id = t.case_id
            WHERE t.from_stage = 'report_received' AND c.province_code = :p AND c.received_at >= :s
              AND c.received_at < :e
            GROUP BY t.case_id)
        SELECT c.commune_code, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - c.received_at) / 3600)
        FROM cases c JOIN first_exit f ON f.case_id = c.id
        GROUP BY GROUPING SETS ((c.commune_code), ())""",
    "plans": """
        WITH approved AS (
            SELECT sp.case_id, min(sp.decided_at) AS at, min(sp.created_at) AS drafted FROM support_plans sp
            JOIN cases c ON c.id = sp.case_id
            WHERE c.province_code = :p AND sp.decided_at IS NOT NULL AND sp.status IN ('approved', 'ended')
            GROUP BY sp.case_id)
        SELECT c.commune_code, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.at - c.received_at) / 86400)
        FROM cases c JOIN approved a ON a.case_id = c.id
        WHERE a.at >= :s AND a.at < :e
        GROUP BY GROUPING SETS ((c.commune_code), ())""",
}


def floor(session, period, moment) -> dict:
    """The floor's figures for one period: {(family, key, commune or None): value}."""
    start, end = period.bounds()
    params = {"p": PROVINCE, "s": start, "e": end, "sd": period.start, "ed": period.end, "m": moment}
    out = {}
    for name, sql in FLOOR_SQL.items():
        for row in session.execute(text(sql), params):
            if name == "codes":
                out[(row[0], row[1])] = row[2]
            elif name == "abused":
                for i, key in enumerate(("abused", "co", "ps", "le", "all3"), start=1):
                    out[(key, row[0])] = row[i]
            elif name == "paid":
                out[("medical_children", row[0])] = row[1]
                out[("medical_vnd", row[0])] = row[2]
                out[("paid_vnd", row[0])] = row[3]
            elif name in ("verification", "plans"):
                out[(name + "_n", row[0])] = row[1]
                out[(name + "_median", row[0])] = round(row[2], 1) if row[2] is not None else None
            else:
                out[(name, row[0])] = row[1]
    return out


# --- casework's side ------------------------------------------------------------------------------------------------


def casework_figures(report) -> dict:
    """The same keys from a report computed unsuppressed (the province officer's)."""
    found = {}
    by_code = {current.code: (current, previous) for current, previous in report.indicators}

    def commune_cells(published, key, row="all"):
        for column, _ in published.grid.columns:
            value = published.grid.cells.get((row, column))
            if value:
                found[(key, column)] = value
        found[(key, None)] = published.grid.row_totals.get(row) if row != "all" else published.grid.total

    special = by_code["children_special"][0]
    for column, _ in special.grid.columns:
        if special.grid.column_totals.get(column):
            found[("special_circumstances", column)] = special.grid.column_totals[column]
    found[("special_circumstances", None)] = special.grid.total
    risk = by_code["children_at_risk"][0]
    for column, _ in risk.grid.columns:
        if risk.grid.column_totals.get(column):
            found[("at_risk", column)] = risk.grid.column_totals[column]
    found[("at_risk", None)] = risk.grid.total
    for code, key in (("new_cases", "new_cases"), ("closed_by_reason", "closed"), ("overdue_open", "overdue")):
        grid = by_code[code][0].grid
        for column, _ in grid.columns:
            if grid.column_totals.get(column):
                found[(key, column)] = grid.column_totals[column]
        found[(key, None)] = grid.total
    return found


def _timed(fn: Callable[[], object], iterations: int) -> list[float]:
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _env(url: str, instance: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CASEWORK_DATABASE_URL": url, "CASEWORK_INSTANCE": instance, "CASEWORK_CONFIG": "embedded"})
    env.pop("CASEWORK_REDIS_URL", None)
    return env


def main() -> None:  # noqa: PLR0915 - a script, read top to bottom
    cases = int(os.environ.get("BENCH_STATS_CASES", "1000000"))
    iterations = int(os.environ.get("BENCH_STATS_ITERATIONS", "15"))
    seed = os.environ.get("BENCH_SEED", "1")
    url = os.environ.get("BENCH_DATABASE_URL")
    instance = os.environ.get("BENCH_INSTANCE") or tempfile.mkdtemp(prefix="casework-stats-bench-")
    server = None
    load_seconds = None
    if not url:
        sys.path.insert(0, str(ROOT))
        from tests.services import PostgresServer

        server = PostgresServer().start()
        url = server.create_database("casework")
        env = _env(url, instance)
        casework = str(Path(sys.executable).with_name("casework"))
        subprocess.run([casework, "init"], env=env, check=True, capture_output=True)  # noqa: S603 - our own command
        started = time.perf_counter()
        subprocess.run([casework, "demo", "--cases", str(cases), "--seed", seed], env=env, check=True)  # noqa: S603
        load_seconds = time.perf_counter() - started
    os.environ.update(_env(url, instance))
    try:
        run(url, cases, iterations, load_seconds)
    finally:
        if server is not None:
            server.stop()


def run(url: str, cases: int, iterations: int, load_seconds: float | None) -> None:  # noqa: PLR0915
    from sqlalchemy import func, select

    from casework import create_app
    from casework.auth.models import User
    from casework.cases.models import Case
    from casework.extensions import db
    from casework.stats import operations
    from casework.stats.indicators import today
    from casework.stats.periods import Period

    app = create_app("embedded")
    with app.app_context():
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))  # as after a nightly maintenance run
        total_cases = db.session.scalar(select(func.count(Case.id)))
        province_cases = db.session.scalar(select(func.count(Case.id)).where(Case.province_code == PROVINCE))
        officer = db.session.scalar(select(User).where(User.username == "officer"))
        committee = db.session.scalar(select(User).where(User.username == "committee"))
        year = today().year
        period = Period.year(year)
        moment = min(period.bounds()[1], datetime.now(UTC))

        # Agreement first: casework's figures against the floor's, both years.
        unsuppressed = operations.report(officer, PROVINCE, period, dimension="commune")
        mine = casework_figures(unsuppressed)
        theirs = floor(db.session, period, moment)
        compared = 0
        for key, value in mine.items():
            family, commune = key
            if family == "overdue":
                continue  # "past its deadline now": a deadline may pass between the two computations
            if (family, commune) in theirs:
                if theirs[(family, commune)] != value:
                    raise SystemExit(f"casework and the floor disagree on {key}: {value} != {theirs[key]}")
                compared += 1
        db.session.rollback()

        def casework_report(viewer):
            def call():
                operations.report(viewer, PROVINCE, period, dimension="commune")
                db.session.rollback()

            return call

        def floor_call():
            floor(db.session, period, moment)
            floor(db.session, period.previous(), moment)
            db.session.rollback()

        page = None
        if "stats.dashboard" in app.view_functions:
            client = app.test_client()
            login = client.get("/login").get_data(as_text=True)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
            client.post("/login", data={"csrf_token": token, "username": "committee", "password": DEMO_PASSWORD})

            def page():
                response = client.get("/stats/", query_string={"year": str(year), "breakdown": "commune"})
                if response.status_code != 200:
                    raise SystemExit(f"GET /stats answered {response.status_code}")

        measured = {
            "report, committee member (suppressed)": [],
            "report, provincial officer (unsuppressed)": [],
            "floor: hand-written SQL, both years": [],
        }
        calls = {
            "report, committee member (suppressed)": casework_report(committee),
            "report, provincial officer (unsuppressed)": casework_report(officer),
            "floor: hand-written SQL, both years": floor_call,
        }
        if page is not None:
            measured["dashboard page `GET /stats`, committee member"] = []
            calls["dashboard page `GET /stats`, committee member"] = page
        for fn in calls.values():  # warm up
            fn()
        for _ in range(iterations):
            for name, fn in calls.items():
                measured[name] += _timed(fn, 1)

        # Afresh: after any change in the province, the first report computes every indicator again.
        from casework.stats import snapshots

        def afresh():
            snapshots.bump(db.session.connection(), {PROVINCE})
            db.session.commit()
            operations.report(committee, PROVINCE, period, dimension="commune")
            db.session.rollback()

        fresh_name = "report computed afresh after a change (committee member)"
        measured[fresh_name] = _timed(afresh, max(2, iterations // 5))
        if page is not None:
            # After a change, the dashboard shows the figures of the last few minutes, saying when they were computed.
            def page_after_change():
                snapshots.bump(db.session.connection(), {PROVINCE})
                db.session.commit()
                page()

            measured["dashboard page right after a change (figures of the last minutes)"] = _timed(
                page_after_change, iterations
            )
        results = {name: _summary(values) for name, values in measured.items()}
    write(results, total_cases, province_cases, iterations, compared, load_seconds, page, url)


def write(results, total_cases, province_cases, iterations, compared, load_seconds, page, url) -> None:
    path = Path(os.environ.get("BENCH_RESULTS", RESULTS))
    floor_p50, floor_p95 = results["floor: hand-written SQL, both years"]
    lines = [
        MARKER,
        "",
        "# Statistics benchmark: results",
        "",
        f"- **Date**: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine**: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}; Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f}",
        f"- **Data**: {total_cases:,} demo cases; province {PROVINCE} holds {province_cases:,}",
        f"- **What**: every indicator of the catalogue for province {PROVINCE}, this year and the year before, "
        "broken down by commune; casework's figures and the floor's agreed on "
        f"{compared} totals and commune cells before timing",
        f"- **Method**: {iterations} timed calls each after one warm-up, alternating; milliseconds",
    ]
    if load_seconds is not None:
        lines.append(f"- **Loading** (`casework demo`): {load_seconds:.0f} s")
    lines += ["", "| what | p50 | p95 | ratio to the floor (p50) |", "|---|---:|---:|---:|"]
    for name, (p50, p95) in results.items():
        lines.append(f"| {name} | {p50:.0f} | {p95:.0f} | {p50 / floor_p50:.2f}× |")
    lines.append("")
    section = "\n".join(lines)
    write_section(path, MARKER, section.removeprefix(MARKER))  # the other benchmarks' sections stay
    print(section)


if __name__ == "__main__":
    main()
