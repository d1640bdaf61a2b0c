"""The load benchmark's baselines: a tiny WSGI app served by gunicorn in the same shape as ``casework serve``.

- ``GET /hello``: a bare Flask "hello", the cost of a request through gunicorn and Flask and nothing else;
- ``GET /sql/search?q=...&scope=worker|officer``: the plaintext name search of :mod:`bench.search_bench` (the
  ``bench_plain_words`` table, the same scope, open cases, the same order, the count and a first page of 25), its
  rows returned as JSON;
- ``GET /sql/stats``: the floor of :mod:`bench.stats_bench`, every indicator family of the province for this year
  and the year before by hand-written SQL, as JSON.

It reads the CASEWORK_* environment casework reads, so the database URL and the engine's options
(:meth:`config.Settings.flask_config`) are casework's own; the scope comes from ``BENCH_WORKER_COMMUNES`` and
``BENCH_PROVINCE``. It holds no sign-in and no session: it is a floor, not a second casework. Run by
:mod:`bench.load_bench`::

    gunicorn --workers 2 --threads 4 --worker-class gthread bench.baseline_app:app
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask, jsonify, request
from sqlalchemy import create_engine

import config as casework_config
from bench.search_bench import plain_search
from bench.stats_bench import floor
from casework.security.text import words
from casework.stats.periods import Period

settings = casework_config.load()
flask_config = settings.flask_config()
# One engine per gunicorn worker (the app is imported after the fork), with casework's options.
engine = create_engine(flask_config["SQLALCHEMY_DATABASE_URI"], **flask_config["SQLALCHEMY_ENGINE_OPTIONS"])
SCOPES = {
    "worker": ("commune", {"communes": os.environ.get("BENCH_WORKER_COMMUNES", "06970").split(",")}),
    "officer": ("province", {"province": os.environ.get("BENCH_PROVINCE", "22")}),
}

app = Flask(__name__)
app.config["CASEWORK_TIMEZONE"] = settings.timezone  # the periods' bounds are days in Vietnam


@app.get("/hello")
def hello():
    return "hello"


@app.get("/sql/search")
def sql_search():
    scope, params = SCOPES[request.args.get("scope", "worker")]
    query_words = sorted(set(words(request.args.get("q", ""))))
    if not query_words:
        return jsonify(total=0, cases=[])
    statement, bound = plain_search(query_words, scope)
    with engine.connect() as connection:
        rows = connection.execute(statement, {**bound, **params}).mappings().all()
    return jsonify(
        total=rows[0]["total"] if rows else 0,
        cases=[{"number": row["case_number"], "stage": row["stage"], "commune": row["commune_code"]} for row in rows],
    )


@app.get("/sql/stats")
def sql_stats():
    moment = datetime.now(UTC)
    year = moment.astimezone(ZoneInfo(settings.timezone)).year
    with engine.connect() as connection:
        figures = {
            str(period.start.year): floor(connection, period, moment)
            for period in (Period.year(year), Period.year(year - 1))
        }
    return jsonify(
        {y: {"|".join(map(str, key)): value for key, value in found.items()} for y, found in figures.items()}
    )
