# The two README commands: `make demo` (main job on built-in data) and `make test`.
# Both set up the machine first (system libraries, .venv, CPU torch) via scripts/setup.sh; `make test` also
# installs the tools the viewer/report tests drive (Xvfb, xdotool, ImageMagick, Chromium).
VENV := .venv
SL := $(VENV)/bin/shapelatent

.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	$(SL) demo --out runs/demo --force

test:
	bash scripts/setup.sh --test
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check shapelatent tests bench

bench: setup
	$(VENV)/bin/python bench/chamfer.py
