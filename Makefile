# Everyday targets. `make install` once, then `make test` / `make notebooks`.
PY ?= python
PROFILE ?= classroom

.PHONY: install test lint notebooks strip bench clean

install:  ## CPU torch first (a plain `torch` pulls a multi-GB CUDA build), then soralab with its extras
	$(PY) -m pip install torch==2.13.0 || $(PY) -m pip install torch
	$(PY) -m pip install -e ".[dev,notebooks]"

test: lint  ## what CI runs: lint, then every test (the notebooks in the smoke profile too)
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check soralab tests benchmarks

notebooks:  ## the notebook suite with papermill in $(PROFILE) (smoke | classroom | paper)
	SORALAB_PROFILE=$(PROFILE) $(PY) -m soralab.cli notebooks --profile $(PROFILE)

bench:
	$(PY) benchmarks/speed.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
