# Quick start: `make demo`, then `make test`. Both create .venv from the lock on first use;
# a second run with an unchanged lock installs nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned in requirements.lock and installed in the same pip command as everything
# else, so pip takes the CPU build instead of pulling a CUDA one.
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check --quiet
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
BENCH := $(VENV)/.installed-bench

.PHONY: demo test lint format bench bench-quick clean venv venv-dev

demo: $(RUNTIME)
	$(PY) -m siamese demo

test: $(DEV)
	@# pytest exits 5 when it collected no tests: that is a failure too.
	$(PY) -m pytest; status=$$?; \
	  if [ $$status -eq 5 ]; then echo 'pytest collected no tests: failing.' >&2; fi; \
	  exit $$status

lint: $(DEV)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format: $(DEV)
	$(PY) -m ruff check --fix src tests benchmarks
	$(PY) -m ruff format src tests benchmarks

# The recipes read the real datasets from SIAMESE_DATA_DIR (see ../shared/data/README.md).
bench: $(BENCH)
	$(PY) benchmarks/bench_demo.py
	$(PY) benchmarks/bench_losses.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_gallery.py
	$(PY) benchmarks/bench_recipe_choices.py
	$(PY) benchmarks/bench_recipes.py
	$(PY) benchmarks/bench_identification.py

# A few minutes: the quick recipes (the two tutorial reproductions and open-set ORL).
bench-quick: $(BENCH)
	$(PY) benchmarks/bench_recipes.py --quick

venv: $(RUNTIME)
venv-dev: $(DEV)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.lock pyproject.toml | $(PY)
	$(PIP_INSTALL) -r requirements.lock -e .
	touch $@

$(DEV): requirements.lock requirements-dev.lock pyproject.toml | $(PY)
	$(PIP_INSTALL) -r requirements.lock -r requirements-dev.lock -e .
	touch $@ $(RUNTIME)

$(BENCH): requirements.lock requirements-bench.lock pyproject.toml | $(PY)
	$(PIP_INSTALL) -r requirements.lock -r requirements-bench.lock -e .
	touch $@ $(RUNTIME)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
