# Newcomer entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sweeplab-installed

.PHONY: setup demo test test-slow test-all clean

setup: $(STAMP)

# Re-install only when the project's requirements change, so `make setup` is quick when done.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[test]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/sweeplab train --dataset digits --model mlp --epochs 15 --batch-size 64 --lr 0.05 --out runs/demo

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
