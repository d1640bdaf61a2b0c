"""Name search and the caseload with BENCH_CASES demo cases on PostgreSQL, beside the same queries over plaintext.

casework keeps children's names encrypted and finds them through blind indexes: one keyed-HMAC term per folded word,
candidates confirmed after decryption. This measures what that costs. It starts a throw-away PostgreSQL 15 (the
test suite's :class:`tests.services.PostgresServer`), runs ``casework init`` and ``casework demo --cases N``, copies
the names in plaintext into bench-only tables, and times each query both ways in the same run, alternating, warm,
many times:

- ``bench_plain_names(case_id, commune_code, full_name_folded, other_names_folded)``: the names, folded;
- ``bench_plain_words(word, field, case_id)`` with a btree on ``(word, field)``: one row per word of each name, the
  shape of the blind index with the word itself in place of its HMAC. It is the fair plaintext equivalent: the same
  "every word, any order, no diacritics" search, answered by an index instead of a scan.

The casework side goes through the application's own code: :func:`casework.cases.search.search` and
:func:`~casework.cases.search.caseload`, and pages requested through the Flask test client as a signed-in social
worker. The baseline is hand-written SQL with the same scope, filters, order and limits.

    make bench                                    # BENCH_CASES=100000
    BENCH_CASES=5000 BENCH_ITERATIONS=50 .venv/bin/python -m bench.search_bench

Environment: ``BENCH_CASES`` (100000), ``BENCH_ITERATIONS`` per query and side (300), ``BENCH_SEED`` (1),
``BENCH_SQLITE_LOAD=1`` to time the same generation on SQLite too, ``BENCH_RESULTS`` (bench/RESULTS.md).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flask import Flask, render_template, render_template_string
from flask.testing import FlaskClient
from flask_login import current_user
from sqlalchemy import Column, Index, MetaData, SmallInteger, String, Table, Text, Uuid, func, insert, select, text

from bench.results import SEARCH, write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS.md")
WARMUP = 20
PER_PAGE = 25  # casework.cases.search.PER_PAGE
CASELOAD_LIMIT = 200  # casework.cases.search.caseload's default
DEMO_PASSWORD = "casework-demo"  # noqa: S105 - the demo accounts' published password (casework/demo.py)

# --- the plaintext baseline ----------------------------------------------------------------------------------------

plain = MetaData()
plain_names = Table(
    "bench_plain_names",
    plain,
    Column("case_id", Uuid, primary_key=True),
    Column("commune_code", String(5), nullable=False),
    Column("full_name", Text, nullable=False),  # as written, for the pages
    Column("full_name_folded", Text, nullable=False),
    Column("other_names_folded", Text),
)
plain_words = Table(
    "bench_plain_words",
    plain,
    Column("word", Text, nullable=False),
    Column("field", SmallInteger, nullable=False),  # 1 full_name, 2 other_names: the blind index's column
    Column("case_id", Uuid, nullable=False),
    Index("ix_bench_plain_words_word", "word", "field"),
)

SCOPE = {
    "commune": "c.commune_code = ANY(:communes)",
    "province": "c.commune_code IN (SELECT code FROM communes WHERE province_code = :province)",
}
ORDER = "(c.next_deadline_at IS NULL), c.next_deadline_at, c.received_at DESC"


def plain_search(words: Sequence[str], scope: str) -> tuple[Any, dict[str, str]]:
    """The plaintext search: the cases whose full name, or whose other names, hold every query word (an INTERSECT
    per field, the fastest shape tried: see README.md), then the scope and filters of ``search.search`` (open cases,
    ordered by next deadline, none last, then newest report), the count and the first page in one query."""
    params = {f"w{i}": word for i, word in enumerate(words)}
    # Constant fragments and bind parameters only: the query words never enter the SQL text.
    word_select = "SELECT case_id FROM bench_plain_words WHERE field = {field} AND word = :{param}"
    per_field = ["(" + " INTERSECT ".join(word_select.format(field=f, param=p) for p in params) + ")" for f in (1, 2)]
    where = f"c.id IN (SELECT case_id FROM hits) AND {SCOPE[scope]} AND c.closed_at IS NULL"  # noqa: S608
    sql = "WITH hits AS MATERIALIZED ({hits}) SELECT c.*, count(*) OVER () AS total FROM cases c WHERE {where} "
    sql = sql.format(hits=" UNION ".join(per_field), where=where) + f"ORDER BY {ORDER} LIMIT {PER_PAGE}"
    return text(sql), params


PLAIN_CASELOAD_CHILDREN = text(
    "SELECT c.id AS case_id, c.*, ch.* FROM cases c JOIN children ch ON ch.id = c.child_id "  # noqa: S608
    f"WHERE {SCOPE['commune']} AND c.assigned_to_id = :worker AND c.closed_at IS NULL "
    f"ORDER BY {ORDER} LIMIT {CASELOAD_LIMIT}"
)
PLAIN_CASELOAD_NAMES = text(
    "SELECT c.id, c.case_number, c.commune_code, c.stage, c.closed_at, c.risk_level, c.immediate_danger, "  # noqa: S608
    "c.assigned_to_id, c.next_deadline_at, c.received_at, n.full_name "
    f"FROM cases c JOIN bench_plain_names n ON n.case_id = c.id WHERE {SCOPE['commune']} "
    f"AND c.assigned_to_id = :worker AND c.closed_at IS NULL ORDER BY {ORDER} LIMIT :limit"
)

# The caseload as a page would show it, the same template for both sides: extends the real base layout.
CASELOAD_PAGE = """{% extends "base.html" %}
{% block title %}Caseload{% endblock %}
{% block content %}
<table>
  <thead><tr><th>Case</th><th>Child</th><th>Stage</th><th>Risk</th><th>Deadline</th></tr></thead>
  <tbody>
  {% for row in rows %}
    <tr><td>{{ row.case_number }}</td><td>{{ row.full_name }}</td><td>{{ row.stage }}</td>
        <td>{{ row.risk_level }}</td><td>{{ row.next_deadline_at|date }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% endblock %}"""


# --- measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Series:
    """Latencies of one query on one side, in milliseconds, and what each call returned (to compare the sides)."""

    samples: list[float] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)


@dataclass
class Row:
    label: str
    casework: Series
    baseline: Series
    note: str = ""


def paired(
    casework_call: Callable[[Any], Any],
    baseline_call: Callable[[Any], Any],
    inputs: Sequence[Any],
    iterations: int,
    before: Callable[[], None] = lambda: None,
) -> tuple[Series, Series]:
    """Time both sides on the same inputs, alternating (so that drift hits both alike), after a warm-up."""
    sides = (Series(), Series())
    for i in range(WARMUP + iterations):
        value = inputs[i % len(inputs)]
        order = ((0, casework_call), (1, baseline_call)) if i % 2 == 0 else ((1, baseline_call), (0, casework_call))
        for side, call in order:
            before()
            started = time.perf_counter()
            answer = call(value)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= WARMUP:
                sides[side].samples.append(elapsed)
                sides[side].answers.append(answer)
    return sides


# --- the database and the application --------------------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str) -> tuple[str, float]:
    """Run ``casework ARGS`` with ``env``; return its output and the wall-clock seconds it took."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")} | env
    exe = Path(sys.executable).with_name("casework")
    started = time.perf_counter()
    done = subprocess.run([str(exe), *args], env=full_env, capture_output=True, text=True, check=False)  # noqa: S603
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"casework {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout, seconds


def load_demo(env: dict[str, str], cases: int, seed: int) -> dict[str, float]:
    """``casework init`` then ``casework demo --cases N``; the generator's own seconds and the command's."""
    run_cli(env, "init")
    output, wall = run_cli(env, "demo", "--cases", str(cases), "--seed", str(seed))
    generated = re.search(r"generated in ([\d.]+)s", output)
    return {"generate_s": float(generated.group(1)) if generated else float("nan"), "command_s": wall}


def build_plain_copy() -> int:
    """Copy every case's child's names, decrypted and folded, into the bench-only plaintext tables."""
    from casework.cases.models import Case, Child
    from casework.extensions import db
    from casework.security.text import fold, words

    plain.drop_all(db.engine)
    plain.create_all(db.engine)
    stmt = select(Case.id, Case.commune_code, Child).join(Child, Child.id == Case.child_id)
    names: list[dict] = []
    word_rows: list[dict] = []
    copied = 0

    def flush() -> None:
        if names:
            db.session.execute(insert(plain_names), names)
            db.session.execute(insert(plain_words), word_rows)
        names.clear()
        word_rows.clear()

    for case_id, commune_code, child in db.session.execute(stmt.execution_options(yield_per=5000)):
        full, other = child.full_name, child.other_names
        names.append(
            {
                "case_id": case_id,
                "commune_code": commune_code,
                "full_name": full,
                "full_name_folded": fold(full),
                "other_names_folded": fold(other) if other else None,
            }
        )
        for number, value in ((1, full), (2, other)):
            word_rows.extend({"word": w, "field": number, "case_id": case_id} for w in sorted(set(words(value or ""))))
        copied += 1
        if len(names) >= 5000:
            flush()
    flush()
    db.session.commit()
    return copied


def vacuum_analyze() -> None:
    """Give the planner its statistics, as autovacuum would on a database that has been running."""
    from casework.extensions import db

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def add_bench_pages(app: Flask) -> None:
    """Bench-only pages behind the same sign-in: the caseload table with names through casework (children loaded in
    one query) and from plaintext, and the social worker's real home page fed from plaintext."""
    from casework.cases import search
    from casework.cases.models import Child
    from casework.extensions import db
    from casework.locations.models import Commune, Province

    def casework_caseload():
        cases = search.caseload(current_user)
        children = {c.id: c for c in db.session.scalars(select(Child).where(Child.id.in_([k.child_id for k in cases])))}
        rows = [
            {
                "case_number": case.case_number,
                "full_name": children[case.child_id].full_name,
                "stage": case.stage,
                "risk_level": case.risk_level,
                "next_deadline_at": case.next_deadline_at,
            }
            for case in cases
        ]
        return render_template_string(CASELOAD_PAGE, rows=rows)

    def plain_rows(limit: int = CASELOAD_LIMIT) -> list[SimpleNamespace]:
        found = db.session.execute(
            PLAIN_CASELOAD_NAMES, {"communes": current_user.commune_codes, "worker": current_user.id, "limit": limit}
        ).mappings()
        return [SimpleNamespace(**row, child=SimpleNamespace(full_name=row["full_name"])) for row in found]

    def plain_caseload():
        return render_template_string(CASELOAD_PAGE, rows=plain_rows())

    def plain_home():
        """``main.home`` for a social worker, with the caseload read from the plaintext copy."""
        from casework.cases.search import caseload_counts
        from casework.main.views import HOME_CASELOAD

        caseload = plain_rows(HOME_CASELOAD)  # the rows the home page shows, as casework reads them
        open_count, overdue_count = caseload_counts(current_user)  # plain columns on both sides
        return render_template(
            "home/social_worker.html",
            province=db.session.get(Province, current_user.province_code),
            communes=db.session.scalars(
                select(Commune).where(Commune.code.in_(current_user.commune_codes)).order_by(Commune.name)
            ).all(),
            caseload=caseload,
            open_count=open_count,
            overdue_count=overdue_count,
        )

    app.add_url_rule("/bench/caseload", "bench.caseload", casework_caseload)
    app.add_url_rule("/bench/caseload-plain", "bench.caseload_plain", plain_caseload)
    app.add_url_rule("/bench/home-plain", "bench.home_plain", plain_home)


def sign_in(client: FlaskClient, username: str) -> None:
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    answer = client.post("/login", data={"csrf_token": token, "username": username, "password": DEMO_PASSWORD})
    if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
        raise SystemExit(f"could not sign in as {username} (status {answer.status_code})")


# --- the benchmark -------------------------------------------------------------------------------------------------


def name_queries(rng: random.Random, names: list[str], count: int = 200) -> tuple[list[str], list[str]]:
    """Existing full names without diacritics, and two of their words (family and given name, as people type)."""
    chosen = rng.sample(names, min(count, len(names)))
    return chosen, [f"{n.split()[0]} {n.split()[-1]}" for n in chosen]


def measure(app: Flask, iterations: int, seed: int) -> tuple[list[Row], dict[str, Any]]:
    from casework.auth.models import User
    from casework.cases import search
    from casework.cases.models import Case
    from casework.extensions import db
    from casework.security.text import words

    rng = random.Random(seed)  # noqa: S311 - choosing queries, not secrets
    rows: list[Row] = []
    facts: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    with app.app_context():
        ids = {
            u.username: u.id for u in db.session.scalars(select(User).where(User.username.in_(("worker", "officer"))))
        }
        worker = db.session.get(User, ids["worker"])
        officer = db.session.get(User, ids["officer"])
        scopes = {
            "officer": ("province", {"province": officer.province_code}),
            "worker": ("commune", {"communes": list(worker.commune_codes)}),
        }
        in_province = db.session.scalars(
            text(
                "SELECT n.full_name_folded FROM bench_plain_names n JOIN cases c ON c.id = n.case_id "
                "WHERE c.province_code = :p ORDER BY n.case_id"
            ),
            {"p": officer.province_code},
        ).all()
        in_commune = db.session.scalars(
            text("SELECT full_name_folded FROM bench_plain_names WHERE commune_code = ANY(:c) ORDER BY case_id"),
            {"c": list(worker.commune_codes)},
        ).all()
        facts["officer_cases"], facts["worker_commune_cases"] = len(in_province), len(in_commune)
        facts["worker_open_assigned"] = db.session.scalar(
            select(func.count(Case.id)).where(Case.assigned_to_id == worker.id, Case.closed_at.is_(None))
        )
        pools = {"officer": name_queries(rng, in_province), "worker": name_queries(rng, in_commune)}
        db.session.remove()

        def fresh(user_id):
            """A user as a request loads it: in a new session, its communes read."""
            db.session.remove()
            user = db.session.get(User, user_id)
            _ = user.commune_codes
            return user

        for who, label in (("officer", "provincial officer"), ("worker", "social worker")):
            scope, params = scopes[who]
            for kind, queries in zip(("full name", "2 words"), pools[who], strict=True):
                holder: dict[str, Any] = {}

                def before(who=who, holder=holder):
                    holder["user"] = fresh(ids[who])

                def casework_call(q, holder=holder):
                    page = search.search(holder["user"], search.Filters(q=q))
                    return page.total

                def baseline_call(q, scope=scope, params=params):
                    statement, words_given = plain_search(sorted(set(words(q))), scope)
                    found = db.session.execute(statement, {**words_given, **params}).all()
                    return found[0].total if found else 0

                ours, theirs = paired(casework_call, baseline_call, queries, iterations, before)
                pairs = list(zip(ours.answers, theirs.answers, strict=True))
                fewer, more = sum(a < b for a, b in pairs), sum(a > b for a, b in pairs)
                note = f"{statistics.fmean(theirs.answers):.1f} open cases found on average"
                if fewer or more:
                    note += (
                        f"; casework counted fewer cases than the baseline on {fewer} of {len(pairs)} calls"
                        f" and more on {more}"
                    )
                rows.append(Row(f"name search, {label}, {kind} (`search.search`)", ours, theirs, note))

        holder = {}

        def before_caseload():
            holder["user"] = fresh(ids["worker"])

        def caseload_call(_):
            return [c.id for c in search.caseload(holder["user"])]

        def plain_caseload_call(_):
            # search.caseload reads the children with their cases (the home page names them): so does the baseline.
            user = holder["user"]
            return [
                r.case_id
                for r in db.session.execute(
                    PLAIN_CASELOAD_CHILDREN, {"communes": user.commune_codes, "worker": user.id}
                )
            ]

        ours, theirs = paired(caseload_call, plain_caseload_call, [None], iterations, before_caseload)
        same = all(a == b for a, b in zip(ours.answers, theirs.answers, strict=True))
        rows.append(
            Row(
                "caseload query, social worker (`search.caseload`: the cases and their children)",
                ours,
                theirs,
                f"{len(ours.answers[0])} cases{'' if same else '; the sides listed different cases'}",
            )
        )

        def caseload_names_call(_):
            return len([case.child.full_name for case in search.caseload(holder["user"])])

        def plain_names_call(_):
            user = holder["user"]
            return len(
                db.session.execute(
                    PLAIN_CASELOAD_NAMES, {"communes": user.commune_codes, "worker": user.id, "limit": CASELOAD_LIMIT}
                ).all()
            )

        ours, theirs = paired(caseload_names_call, plain_names_call, [None], iterations, before_caseload)
        rows.append(Row("caseload with the children's names", ours, theirs, f"{ours.answers[0]} names decrypted"))
        db.session.remove()

    client = app.test_client()
    sign_in(client, "worker")

    def get(path: str) -> Callable[[Any], int]:
        def call(_):
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"GET {path} answered {response.status_code}")
            return len(response.get_data())

        return call

    ours, theirs = paired(get("/"), get("/bench/home-plain"), [None], iterations)
    body = client.get("/").get_data(as_text=True)
    with app.app_context():
        shown = [c.case_number for c in search.caseload(db.session.get(User, ids["worker"])) if c.case_number in body]
    rows.append(
        Row(
            "caseload page `GET /`, rendered (test client, signed in)",
            ours,
            theirs,
            f"the social worker's home page lists {len(shown)} cases; baseline: the same template and context fed from "
            f"plaintext SQL (`GET /bench/home-plain`); pages of {ours.answers[0]:,} and {theirs.answers[0]:,} bytes",
        )
    )
    ours, theirs = paired(get("/bench/caseload"), get("/bench/caseload-plain"), [None], iterations)
    rows.append(
        Row(
            "caseload table, children loaded in one query (bench page)",
            ours,
            theirs,
            "`GET /bench/caseload` against `GET /bench/caseload-plain`: one minimal template, the same rows",
        )
    )
    facts["load_after"] = os.getloadavg()[0]
    return rows, facts


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {"cpu": cpu, "nproc": str(len(os.sched_getaffinity(0))), "memory": f"{kib / 1024 / 1024:.1f} GiB"}


def write_results(
    path: Path,
    *,
    cases: int,
    seed: int,
    iterations: int,
    rows: list[Row],
    facts: dict[str, Any],
    loads: dict[str, dict[str, float]],
    database: dict[str, str],
    command: str,
) -> None:
    m = machine()
    lines = [
        "# Search benchmark: results",
        "",
        f"- **Date**: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- **Machine**: {m['cpu']}, nproc {m['nproc']}, {m['memory']} memory; Python {platform.python_version()}",
        f"- **Database**: {database['version']} (throw-away cluster of `tests/services.py`: fsync off, otherwise "
        f"default settings; `VACUUM ANALYZE` after loading); blind_index_entries {database['entries']} rows, "
        f"{database['entries_size']} with indexes",
        f"- **Command**: `{command}`",
        f"- **Data**: {cases:,} demo cases (`casework demo --cases {cases} --seed {seed}`); the provincial officer's "
        f"province holds {facts['officer_cases']:,} of them, the social worker's commune "
        f"{facts['worker_commune_cases']:,} ({facts['worker_open_assigned']:,} open and assigned to them)",
        f"- **Method**: {iterations} timed calls per query and side after {WARMUP} warm-up calls, casework and "
        "baseline alternating on the same inputs, one client, a new database session for each call (as each request "
        "has), the loaded application frozen out of the garbage collector as `casework serve` does; milliseconds."
        f" Load average of the machine when measuring began and ended: {facts['load_before']:.2f}"
        f" and {facts['load_after']:.2f}",
        "",
        "Loading the demo data (`casework demo`, the generator's own time / the whole command):",
        "",
    ]
    for name, load in loads.items():
        lines.append(f"- {name}: {load['generate_s']:.1f} s / {load['command_s']:.1f} s")
    lines += [
        "",
        "| query | casework p50 | p95 | baseline p50 | p95 | ratio (p95) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {row.casework.p50:.1f} | {row.casework.p95:.1f} | {row.baseline.p50:.1f} | "
            f"{row.baseline.p95:.1f} | {row.casework.p95 / row.baseline.p95:.1f}× |"
        )
    lines += [
        "",
        "Means (casework / baseline) and what the queries returned:",
        "",
    ]
    for row in rows:
        lines.append(f"- {row.label}: {row.casework.mean:.1f} / {row.baseline.mean:.1f} ms; {row.note}")
    lines += ["", "What each side does: bench/README.md.", ""]
    # The statistics and load benchmarks keep their own sections of the same file.
    write_section(path, SEARCH, "\n".join(lines))


def main() -> None:
    cases = int(os.environ.get("BENCH_CASES", "100000"))
    iterations = int(os.environ.get("BENCH_ITERATIONS", "300"))
    seed = int(os.environ.get("BENCH_SEED", "1"))
    results = Path(os.environ.get("BENCH_RESULTS", RESULTS))
    settings = " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ) if k.startswith("BENCH_"))
    command = f"{settings} python -m bench.search_bench".strip()

    sys.path.insert(0, str(ROOT))
    from tests.harness import FreshContextClient, environment
    from tests.services import PostgresServer

    # Stopped from outside: still stop the PostgreSQL cluster and remove the temporary folder (finally, below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    server = PostgresServer()
    workdir = Path(tempfile.mkdtemp(prefix="casework-bench-"))
    try:
        server.start()
        env = {
            "CASEWORK_CONFIG": "embedded",
            "CASEWORK_INSTANCE": str(workdir / "instance"),
            "CASEWORK_DATABASE_URL": server.create_database("casework_bench"),
            "CASEWORK_SECRET_KEY": secrets.token_urlsafe(32),
            "CASEWORK_LOG_LEVEL": "WARNING",
        }
        loads = {}
        print(f"loading {cases} demo cases into PostgreSQL ...", flush=True)
        loads["PostgreSQL 15"] = load_demo(env, cases, seed)
        if os.environ.get("BENCH_SQLITE_LOAD") == "1":
            print(f"loading {cases} demo cases into SQLite ...", flush=True)
            sqlite_env = {**env, "CASEWORK_INSTANCE": str(workdir / "sqlite")}
            del sqlite_env["CASEWORK_DATABASE_URL"]
            loads["SQLite"] = load_demo(sqlite_env, cases, seed)
        print(f"loaded: {loads}", flush=True)

        with environment(env):
            from casework import create_app

            app = create_app()
        app.test_client_class = FreshContextClient
        add_bench_pages(app)
        with app.app_context():
            from casework.extensions import db
            from casework.security.fields import BlindIndexEntry

            copied = build_plain_copy()
            vacuum_analyze()
            database = {
                "version": "PostgreSQL " + db.session.scalar(text("SHOW server_version")),
                "entries": f"{db.session.scalar(select(func.count(BlindIndexEntry.id))):,}",
                "entries_size": db.session.scalar(
                    text("SELECT pg_size_pretty(pg_total_relation_size('blind_index_entries'))")
                ),
            }
            db.session.remove()
        print(f"plaintext copy of {copied} cases' names made; measuring ...", flush=True)
        # The loaded application's objects out of the garbage collector's reach, as `casework serve` does before
        # forking its workers: otherwise a full collection's pause (tens of ms) falls on whichever call allocated
        # most, casework's or the baseline's.
        gc.freeze()
        rows, facts = measure(app, iterations, seed)
        with app.app_context():
            from casework.extensions import db

            db.engine.dispose()
        write_results(
            results,
            cases=cases,
            seed=seed,
            iterations=iterations,
            rows=rows,
            facts=facts,
            loads=loads,
            database=database,
            command=command,
        )
        print(results.read_text())
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
