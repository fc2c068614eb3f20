# The two README commands: `make demo` (main job on built-in data) and `make test`.
# Both set up the machine first (system libraries, .venv, CPU torch) via scripts/setup.sh; `make test` also
# installs the tools the viewer/report tests drive (Xvfb, xdotool, ImageMagick, Chromium).
VENV := .venv
SL := $(VENV)/bin/shapelatent

.PHONY: setup demo test lint bench bench-quick

setup:
	bash scripts/setup.sh

demo: setup
	$(SL) demo --out runs/demo --force

# `make test` = the linters (ruff, then mypy with the [tool.mypy] settings of pyproject.toml), then pytest; any
# finding fails it. `make lint` runs the linters alone; .pre-commit-config.yaml runs the same two on commit.
LINT_PATHS := shapelatent viewers tests bench

test:
	bash scripts/setup.sh --test
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy

# `make bench`: every benchmark via bench/run_all.py, results in runs/bench/<date>_<time>/ (summary.md, summary.json).
# `make bench QUICK=1` (or `make bench-quick`): small sizes, a few minutes. More options: BENCH_ARGS="--with-large".
bench: setup
	$(VENV)/bin/python bench/run_all.py $(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)

bench-quick: setup
	$(VENV)/bin/python bench/run_all.py --quick $(BENCH_ARGS)
