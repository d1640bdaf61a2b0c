# casework: the two commands are `make serve` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000
DEMO_CASES ?= 300
BENCH_CASES ?= 100000
BENCH_STATS_CASES ?= 1000000

.PHONY: serve test lint format install translations bench soak restore-test clean

$(STAMP): pyproject.toml constraints.txt
	@scripts/bootstrap-venv.sh "$(PYTHON)" "$(VENV)"
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

serve: install
	@$(BIN)/casework init
	@$(BIN)/casework demo --first-run --cases $(DEMO_CASES)
	@echo
	@echo "casework is serving on http://$(HOST):$(PORT)  (stop with Ctrl+C)"
	@echo
	@$(BIN)/casework serve --host $(HOST) --port $(PORT)

test: install
	@scripts/ensure-test-services.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check casework tests bench config.py scripts

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format casework tests bench config.py scripts

# Search and caseload latency with BENCH_CASES demo cases, a province's statistics with BENCH_STATS_CASES, and the
# pages under concurrent load (gunicorn, locust) with BENCH_CASES, each on a throw-away PostgreSQL 15 beside a
# baseline measured in the same run; all three write their section of bench/RESULTS.md.
bench: install
	@scripts/ensure-test-services.sh
	BENCH_CASES=$(BENCH_CASES) $(BIN)/python -m bench.search_bench
	BENCH_STATS_CASES=$(BENCH_STATS_CASES) $(BIN)/python -m bench.stats_bench
	BENCH_CASES=$(BENCH_CASES) $(BIN)/python -m bench.load_bench

# The long versions of the load and hostile-input tests: 50 users for CASEWORK_SOAK_SECONDS (600); schemathesis
# with 200 new examples per operation; sqlmap with time-based techniques, level 3, risk 2.
SOAK_SECONDS ?= 600
soak: install
	@scripts/ensure-test-services.sh
	CASEWORK_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m pytest -p no:cacheprovider -m soak tests/test_load_faults.py
	CASEWORK_FUZZ_EXAMPLES=200 CASEWORK_FUZZ_RANDOM=1 CASEWORK_SQLMAP_TECHNIQUE=BEUST CASEWORK_SQLMAP_LEVEL=3 \
		CASEWORK_SQLMAP_RISK=2 $(BIN)/python -m pytest -p no:cacheprovider tests/test_hostile_api.py tests/test_sqlmap.py

# Back up a demo database as docs/OPERATIONS.md says, restore it on a fresh PostgreSQL 15 with the key backup, check
# the audit trail and decrypt a sample (same fingerprint as the source); another master key must be refused.
# RESTORE_ARGS="--dump F --key-backup F --files DIR --checkpoints F --passphrase-file F" restores a real backup.
restore-test: install
	@scripts/ensure-test-services.sh
	$(BIN)/python scripts/restore_test.py $(RESTORE_ARGS)

# Extract messages, merge them into the Vietnamese and English catalogues, compile.
translations: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --omit-header -o /tmp/casework-messages.pot .
	$(BIN)/pybabel update -i /tmp/casework-messages.pot -d casework/translations -l vi --no-fuzzy-matching --width 120
	$(BIN)/pybabel compile -d casework/translations

clean:
	rm -rf $(VENV) .pytest_cache
