# Newcomer entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sweeplab-installed

.PHONY: setup setup-ray demo test test-slow test-all clean

setup: $(STAMP)

# Re-install only when the project's requirements change, so `make setup` is quick when done.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[test]"
	touch $(STAMP)

# The optional Ray extra (`sweeplab run --executor ray`), which the Ray tests need; CI installs it.
setup-ray: setup
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[test,ray]"

# The quickstart study (digits, no download, about two minutes on 2 cores) and its report.
demo: setup
	$(VENV)/bin/sweeplab run quickstart --out runs/demo
	$(VENV)/bin/sweeplab report quickstart --out runs/demo
	@echo "open runs/demo/reports/quickstart/report.html (or report.md) to read the report"

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
